//! Cross-site request forgery protection for the API.
//!
//! Writes (any method but GET/HEAD/OPTIONS) to `/api/*` are refused with 403 `csrf` when:
//! - the browser says the request is cross-site (`Sec-Fetch-Site` other than `same-origin` or
//!   `none`);
//! - an `Origin` header names another origin than this server (its public URL or the `Host`
//!   the request was sent to);
//! - the request carries one of our cookies (cookie-authenticated) or is a login, and lacks
//!   the custom header `X-Skaerm-CSRF: 1`. A cross-site page cannot add a custom header
//!   without a CORS preflight, which this server never grants.
//!
//! The citizen link exchange carries no cookie, so it needs no header (the web client sends it
//! anyway).

use crate::http::devices::DEVICE_COOKIE;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::{REFRESH_COOKIE, SESSION_COOKIE};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use std::sync::Arc;

/// The header every cookie-authenticated write must carry, with value `1`.
pub const CSRF_HEADER: &str = "x-skaerm-csrf";

fn refused(detail: &'static str) -> Response {
    Problem::new(StatusCode::FORBIDDEN, ErrorCode::Csrf, detail).into_response()
}

/// `scheme://host[:port]` of a URL, lowercased.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{}://{}", scheme, host).to_ascii_lowercase())
}

fn origin_allowed(origin: &str, headers: &HeaderMap, public_origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    if origin == public_origin {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// The middleware; `public_origin` is [`origin_of`] the public URL.
pub async fn guard(public_origin: Arc<str>, request: Request, next: Next) -> Response {
    let method = request.method();
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || !request.uri().path().starts_with("/api/")
    {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return refused("cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, headers, &public_origin));
        if !allowed {
            return refused("request from another origin refused");
        }
    }
    let jar = CookieJar::from_headers(headers);
    let cookie_authenticated = [SESSION_COOKIE, REFRESH_COOKIE, DEVICE_COOKIE]
        .iter()
        .any(|name| jar.get(name).is_some());
    let login = request.uri().path().starts_with("/api/session");
    if (cookie_authenticated || login)
        && headers.get(CSRF_HEADER).map(|v| v.as_bytes()) != Some(b"1")
    {
        return refused("missing X-Skaerm-CSRF header");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://Skaerm.Example.dk/j/abc").as_deref(),
            Some("https://skaerm.example.dk")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("nonsense"), None);
    }

    #[test]
    fn another_origin_is_not_allowed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        let public = "https://skaerm.example.dk";
        assert!(origin_allowed(
            "https://skaerm.example.dk",
            &headers,
            public
        ));
        assert!(origin_allowed("http://127.0.0.1:8080", &headers, public));
        assert!(!origin_allowed("https://evil.example", &headers, public));
        assert!(!origin_allowed("null", &headers, public));
        assert!(!origin_allowed("http://127.0.0.1:8081", &headers, public));
    }
}

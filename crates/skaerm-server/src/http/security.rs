//! Security headers on every response: a strict Content-Security-Policy (the web client has no
//! inline script or style), no sniffing, no framing, no referrer (citizen links carry a secret
//! in the path), camera/microphone only for our own origin, and HSTS when served over TLS.
//! API and sign-in responses (`/api/…`, `/auth/…`) are `Cache-Control: no-store` unless the
//! handler says otherwise: they carry tokens (session, refresh, media, guest, pairing, feed
//! links) and personal data that no browser or proxy cache may keep.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy for pages; API responses get it too (harmless, and one place to keep true).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
     connect-src 'self' ws: wss:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// HSTS on TLS responses: one year, subdomains included.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Paths whose responses are never stored by a cache.
const NO_STORE_PREFIXES: &[&str] = &["/api/", "/auth/"];

/// `Cache-Control: no-store` on API and sign-in responses that set no policy of their own.
async fn no_store(request: Request, next: Next) -> Response {
    let uncacheable = NO_STORE_PREFIXES
        .iter()
        .any(|prefix| request.uri().path().starts_with(prefix));
    let mut response = next.run(request).await;
    if uncacheable {
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Adds the security headers to every response of `router`; HSTS too when `tls`.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, tls: bool) -> Router<S> {
    let router = router.layer(axum::middleware::from_fn(no_store));
    let router = if tls {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        ))
    } else {
        router
    };
    let headers: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

//! `GET /metrics`: Prometheus text format, and who may read it.
//!
//! The numbers say how many calls a node carries and how they fare, nothing about people, but
//! they are still not for strangers: with `--metrics-token` a scraper must send it as a bearer
//! token; without one, only a direct loopback request is answered: no forwarding header of
//! any kind ([`FORWARDING_HEADERS`]), since a same-host reverse proxy may add any one of them
//! (nginx's `X-Real-IP` alone, say) and would otherwise make `/metrics` public.

pub use crate::config::MetricsAccess;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, TextEncoder};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

/// Headers a reverse proxy adds to a request it relays; any one of them means "not direct".
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "via",
];

/// Whether `headers` carry no sign of having been relayed by a proxy.
pub fn is_direct(headers: &HeaderMap) -> bool {
    !FORWARDING_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// What a request to `/metrics` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve the metrics.
    Allow,
    /// 401 with `WWW-Authenticate: Bearer`: a token is configured and this one is missing or
    /// wrong.
    Unauthorized,
    /// 403: no token configured and the request is not a direct loopback one.
    Forbidden,
}

impl MetricsAccess {
    /// Decides a request from its TCP peer and headers.
    pub fn decide(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Verdict {
        match self {
            MetricsAccess::Bearer(expected) => {
                let presented = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|token| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
                if presented.as_ref() == Some(expected) {
                    Verdict::Allow
                } else {
                    Verdict::Unauthorized
                }
            }
            MetricsAccess::LoopbackOnly => {
                if is_direct(headers) && peer.is_some_and(|ip| ip.is_loopback()) {
                    Verdict::Allow
                } else {
                    Verdict::Forbidden
                }
            }
        }
    }
}

/// All registered metrics, to whoever `MetricsAccess` lets in.
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match state.metrics_access.decide(peer, request.headers()) {
        Verdict::Allow => {}
        Verdict::Unauthorized => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the configured bearer token\n",
            )
                .into_response();
        }
        Verdict::Forbidden => {
            return (
                StatusCode::FORBIDDEN,
                "metrics are served to loopback only; set --metrics-token to scrape remotely\n",
            )
                .into_response();
        }
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(err) = encoder.encode(&state.registry.gather(), &mut body) {
        tracing::error!(%err, "metrics encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        body,
    )
        .into_response()
}

/// Prometheus metrics: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route("/metrics", get(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn without_a_token_only_direct_loopback_requests_are_served() {
        let rule = MetricsAccess::LoopbackOnly;
        assert_eq!(rule.decide(LOOPBACK, &HeaderMap::new()), Verdict::Allow);
        assert_eq!(rule.decide(REMOTE, &HeaderMap::new()), Verdict::Forbidden);
        assert_eq!(rule.decide(None, &HeaderMap::new()), Verdict::Forbidden);
        let proxied = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(rule.decide(LOOPBACK, &proxied), Verdict::Forbidden);
        for name in FORWARDING_HEADERS {
            let relayed = headers(&[(name, "203.0.113.9")]);
            assert_eq!(
                rule.decide(LOOPBACK, &relayed),
                Verdict::Forbidden,
                "{name}"
            );
        }
    }

    #[test]
    fn with_a_token_only_that_token_is_served_from_anywhere() {
        let rule = MetricsAccess::bearer("a-long-scrape-token-0123");
        let right = headers(&[("authorization", "Bearer a-long-scrape-token-0123")]);
        assert_eq!(rule.decide(REMOTE, &right), Verdict::Allow);
        for wrong in [
            "Bearer a-long-scrape-token-0124",
            "Bearer ",
            "Basic a-long-scrape-token-0123",
            "a-long-scrape-token-0123",
        ] {
            let h = headers(&[("authorization", wrong)]);
            assert_eq!(rule.decide(REMOTE, &h), Verdict::Unauthorized, "{wrong}");
        }
        // Loopback is no excuse once a token is configured.
        assert_eq!(
            rule.decide(LOOPBACK, &HeaderMap::new()),
            Verdict::Unauthorized
        );
    }
}

//! The client's address, for rate limits and the audit log: the TCP peer, or — when the peer
//! is one of the configured trusted proxies (`--trusted-proxy`) — the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy. A client cannot spoof it by sending
//! the header: from an untrusted peer the header is ignored.

use crate::http::problem::Problem;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::net::{IpAddr, SocketAddr};

/// Most `X-Forwarded-For` entries looked at.
const MAX_HOPS: usize = 16;

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client's address given the TCP `peer`, the request headers and the trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .take(MAX_HOPS)
        .map_while(|hop| hop.parse::<IpAddr>().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

/// The client's address from a request's parts (`None` without connection info).
pub fn from_parts(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    from_parts_with(parts, &state.trusted_proxies)
}

/// The client's address from a request's parts given the trusted proxies.
pub fn from_parts_with(parts: &Parts, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(client_ip(peer, &parts.headers, trusted))
}

impl<S> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        from_parts(parts, &state)
            .map(ClientIp)
            .ok_or_else(|| Problem::internal("no connection info"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let spoofed = headers("203.0.113.9, 192.0.2.7");
        assert_eq!(client_ip(proxy, &spoofed, &[proxy]), client);
        assert_eq!(
            client_ip(client, &spoofed, &[proxy]),
            client,
            "untrusted peer"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &headers("garbage"), &[proxy]), proxy);
        let chain = headers("192.0.2.7, 10.0.0.2");
        let two: [IpAddr; 2] = [proxy, "10.0.0.2".parse().unwrap()];
        assert_eq!(client_ip(proxy, &chain, &two), client);
    }
}

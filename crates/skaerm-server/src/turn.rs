//! TURN relay support: the configured coturn URLs and its shared secret, checked at start, and
//! the short-lived credentials handed to a participant with `joined`.
//!
//! Credentials follow coturn's REST API (`use-auth-secret` + `static-auth-secret`): the
//! username is `<unix expiry>:<opaque id>` and the password is
//! `base64(HMAC-SHA1(secret, username))`, so coturn checks them without asking Skærm. The
//! opaque id is random per issue: no participant id, name or citizen id ever reaches coturn's
//! logs.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use skaerm_sfu::protocol::IceServer;
use std::time::Duration;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Most TURN URLs accepted.
pub const MAX_TURN_URLS: usize = 8;
/// Fewest bytes of shared secret accepted (coturn accepts anything; a short one is guessable).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest accepted credential lifetime: a few hours, so a leaked credential dies soon.
pub const MAX_TTL: Duration = Duration::from_secs(6 * 3600);
/// Shortest accepted credential lifetime.
pub const MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest accepted URL.
const MAX_URL_LEN: usize = 512;

/// Why the TURN settings were refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TurnConfigError {
    /// A URL does not have the form `turn[s]:host[:port][?transport=udp|tcp]`.
    #[error("invalid TURN URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More URLs than [`MAX_TURN_URLS`].
    #[error("too many TURN URLs ({0}; at most {MAX_TURN_URLS})")]
    TooManyUrls(usize),
    /// URLs without a secret (coturn's REST-API credentials need one).
    #[error("--turn-url needs --turn-secret (coturn's static-auth-secret)")]
    MissingSecret,
    /// A secret without URLs.
    #[error("--turn-secret is set but no --turn-url is")]
    MissingUrls,
    /// The secret is too short.
    #[error("the TURN secret must be at least {MIN_SECRET_LEN} characters")]
    ShortSecret,
    /// The credential lifetime is outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("the TURN credential lifetime must be between 5 minutes and 6 hours (got {0} s)")]
    BadTtl(u64),
}

/// TURN servers and how to make credentials for them.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: String,
    ttl: Duration,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// TURN credentials for one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<unix expiry>:<opaque id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

impl Turn {
    /// The TURN settings from the flags: `None` when no TURN is configured, an error when they
    /// are incomplete or malformed.
    pub fn from_settings(
        urls: &[String],
        secret: Option<&str>,
        ttl_secs: u64,
    ) -> Result<Option<Turn>, TurnConfigError> {
        let urls: Vec<String> = urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        let secret = secret.filter(|s| !s.is_empty());
        match (urls.is_empty(), secret) {
            (true, None) => return Ok(None),
            (true, Some(_)) => return Err(TurnConfigError::MissingUrls),
            (false, None) => return Err(TurnConfigError::MissingSecret),
            (false, Some(_)) => {}
        }
        if urls.len() > MAX_TURN_URLS {
            return Err(TurnConfigError::TooManyUrls(urls.len()));
        }
        for url in &urls {
            validate_url(url)?;
        }
        let secret = secret.unwrap_or_default();
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(TurnConfigError::ShortSecret);
        }
        let ttl = Duration::from_secs(ttl_secs);
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(TurnConfigError::BadTtl(ttl_secs));
        }
        Ok(Some(Turn {
            urls,
            secret: secret.to_owned(),
            ttl,
        }))
    }

    /// The configured URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// A credential valid until `now_unix` + the lifetime, under a fresh random opaque id.
    pub fn credential(&self, now_unix: u64) -> Option<TurnCredential> {
        let opaque = uuid::Uuid::new_v4().simple().to_string();
        derive_credential(
            &self.secret,
            now_unix.saturating_add(self.ttl.as_secs()),
            &opaque,
        )
    }

    /// The ICE servers for one participant's `joined`: all URLs under one fresh credential.
    pub fn ice_servers(&self, now_unix: u64) -> Vec<IceServer> {
        let Some(TurnCredential {
            username,
            credential,
        }) = self.credential(now_unix)
        else {
            tracing::error!("could not make a TURN credential");
            return Vec::new();
        };
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

/// coturn's REST-API credential: username `<expiry>:<opaque>`, password
/// `base64(HMAC-SHA1(secret, username))`. (`None` only if HMAC refused the key, which it does
/// for no length.)
pub fn derive_credential(secret: &str, expiry_unix: u64, opaque: &str) -> Option<TurnCredential> {
    let username = format!("{expiry_unix}:{opaque}");
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Some(TurnCredential {
        username,
        credential,
    })
}

/// Checks `turn[s]:host[:port][?transport=udp|tcp]` (RFC 7065), as browsers accept it.
fn validate_url(url: &str) -> Result<(), TurnConfigError> {
    let bad = |reason| TurnConfigError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    if url.len() > MAX_URL_LEN {
        return Err(bad("longer than 512 characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let (secure, rest) = if let Some(rest) = url.strip_prefix("turns:") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("turn:") {
        (false, rest)
    } else {
        return Err(bad("must start with turn: or turns:"));
    };
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    if authority.starts_with("//") || authority.contains(['/', '@']) {
        return Err(bad(
            "must be turn:host[:port], without // or a path or user",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in an IPv6 address"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address inside [ ]"));
        }
        match after {
            "" => (host, None),
            port => (
                host,
                Some(port.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad("the host may hold only letters, digits, '-' and '.'"));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    match query {
        None => {}
        Some("transport=tcp") => {}
        Some("transport=udp") if !secure => {}
        Some("transport=udp") => {
            return Err(bad("turns: runs over TLS, so only ?transport=tcp"));
        }
        Some(_) => {
            return Err(bad(
                "the only query allowed is ?transport=udp or ?transport=tcp",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const SECRET: &str = "skaerm-test-secret-0123456789";

    /// The expected password was computed independently of this code, with Python's standard
    /// library:
    ///
    /// ```text
    /// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    ///   b"skaerm-test-secret-0123456789", b"1764000000:3f2a9c1e0b7d4e6f8a5c2d1e0f9b8a7c",
    ///   hashlib.sha1).digest()).decode())'
    /// ```
    #[test]
    fn the_credential_is_coturns_rest_api_hmac_of_the_username() {
        let credential =
            derive_credential(SECRET, 1_764_000_000, "3f2a9c1e0b7d4e6f8a5c2d1e0f9b8a7c")
                .expect("HMAC");
        assert_eq!(
            credential.username,
            "1764000000:3f2a9c1e0b7d4e6f8a5c2d1e0f9b8a7c"
        );
        assert_eq!(credential.credential, "eQ8S0qK6vZhYWAWMDwulI4jJ2aY=");
    }

    #[test]
    fn issued_credentials_expire_after_the_lifetime_and_carry_only_an_opaque_id() {
        let turn = Turn::from_settings(
            &urls(&["turn:turn.example.dk:3478?transport=udp"]),
            Some(SECRET),
            3 * 3600,
        )
        .expect("valid")
        .expect("configured");
        let participant = uuid::Uuid::new_v4();
        let first = turn.credential(1_764_000_000).expect("HMAC");
        let second = turn.credential(1_764_000_000).expect("HMAC");
        let (expiry, opaque) = first.username.split_once(':').expect("expiry:opaque");
        assert_eq!(expiry, (1_764_000_000u64 + 3 * 3600).to_string());
        assert_eq!(opaque.len(), 32);
        assert!(opaque.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!first.username.contains(&participant.to_string()));
        assert!(!first.username.contains(&participant.simple().to_string()));
        assert_ne!(
            first.username, second.username,
            "a fresh opaque id per issue"
        );
        // The password checks out the way coturn checks it.
        let again =
            derive_credential(SECRET, expiry.parse().expect("number"), opaque).expect("HMAC");
        assert_eq!(again, first);
        let servers = turn.ice_servers(1_764_000_000);
        assert_eq!(servers.len(), 1);
        assert_eq!(
            servers[0].urls,
            urls(&["turn:turn.example.dk:3478?transport=udp"])
        );
    }

    #[test]
    fn good_urls_are_accepted() {
        let good = urls(&[
            "turn:turn.example.dk:3478?transport=udp",
            "turn:turn.example.dk:3478?transport=tcp",
            "turns:turn.example.dk:443?transport=tcp",
            "turn:turn.example.dk",
            "turn:127.0.0.1:3478",
            "turn:[2001:db8::1]:3478?transport=udp",
        ]);
        let turn = Turn::from_settings(&good, Some(SECRET), 3600)
            .expect("valid")
            .expect("configured");
        assert_eq!(turn.urls(), good.as_slice());
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        for url in [
            "stun:turn.example.dk:3478",
            "https://turn.example.dk",
            "turn://turn.example.dk:3478",
            "turn:",
            "turn::3478",
            "turn:turn.example.dk:0",
            "turn:turn.example.dk:70000",
            "turn:turn.example.dk:3478?transport=sctp",
            "turns:turn.example.dk:443?transport=udp",
            "turn:user@turn.example.dk",
            "turn:turn.example.dk/path",
            "turn:turn example.dk",
            "turn:[2001:db8::1:3478",
        ] {
            let err = Turn::from_settings(&urls(&[url]), Some(SECRET), 3600).expect_err(url);
            assert!(
                matches!(err, TurnConfigError::BadUrl { .. }),
                "{url}: {err}"
            );
            assert!(
                err.to_string().contains(url),
                "the message names the URL: {err}"
            );
        }
        let one = urls(&["turn:turn.example.dk"]);
        assert_eq!(
            Turn::from_settings(&one, None, 3600).expect_err("no secret"),
            TurnConfigError::MissingSecret
        );
        assert_eq!(
            Turn::from_settings(&[], Some(SECRET), 3600).expect_err("no url"),
            TurnConfigError::MissingUrls
        );
        assert_eq!(
            Turn::from_settings(&one, Some("short"), 3600).expect_err("short"),
            TurnConfigError::ShortSecret
        );
        assert_eq!(
            Turn::from_settings(&one, Some(SECRET), 24 * 3600).expect_err("a day"),
            TurnConfigError::BadTtl(24 * 3600)
        );
        assert_eq!(
            Turn::from_settings(&one, Some(SECRET), 10).expect_err("seconds"),
            TurnConfigError::BadTtl(10)
        );
        let many = vec!["turn:turn.example.dk".to_owned(); MAX_TURN_URLS + 1];
        assert_eq!(
            Turn::from_settings(&many, Some(SECRET), 3600).expect_err("many"),
            TurnConfigError::TooManyUrls(MAX_TURN_URLS + 1)
        );
        assert!(matches!(Turn::from_settings(&[], None, 3600), Ok(None)));
    }
}

//! Citizen link secrets: the random part of `https://…/j/<secret>` that lets a citizen into
//! one visit without an account. 160 bits from the OS's CSPRNG, base64url; stored only as its
//! SHA-256, never logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Random bytes in a secret.
const SECRET_BYTES: usize = 20;
/// Characters of an encoded secret.
pub const SECRET_LEN: usize = 27;

/// A link secret. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct CitizenLinkSecret(String);

/// The stored form of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkHash(pub [u8; 32]);

/// A link's id, derived from its hash (so it needs no column and reveals nothing of the
/// secret): what a media token from the link names, to die with the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkRef(pub uuid::Uuid);

/// A string that cannot be a link secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a link secret")]
pub struct NotASecret;

impl CitizenLinkSecret {
    /// A fresh secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        CitizenLinkSecret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only strings shaped like a secret (length and alphabet), so hostile input never
    /// reaches a lookup.
    pub fn parse(text: &str) -> Result<Self, NotASecret> {
        let shaped = text.len() == SECRET_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if shaped
            && URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|b| b.len() == SECRET_BYTES)
        {
            Ok(CitizenLinkSecret(text.to_owned()))
        } else {
            Err(NotASecret)
        }
    }

    /// Its hash, the only form stored.
    pub fn hash(&self) -> LinkHash {
        LinkHash::of(&self.0)
    }

    /// The secret itself, to put in the URL given to the citizen.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CitizenLinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CitizenLinkSecret(<redacted>)")
    }
}

impl LinkHash {
    /// SHA-256 of a secret's text.
    pub fn of(secret: &str) -> LinkHash {
        LinkHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// The link's id: the first 16 bytes of SHA-256 over a fixed label and the hash.
    pub fn link_ref(&self) -> LinkRef {
        let digest = Sha256::new()
            .chain_update(b"skaerm citizen link id\0")
            .chain_update(self.0)
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        LinkRef(uuid::Uuid::from_bytes(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_differ() {
        let a = CitizenLinkSecret::generate();
        let b = CitizenLinkSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert_eq!(CitizenLinkSecret::parse(a.expose()), Ok(a.clone()));
        assert_eq!(a.hash(), LinkHash::of(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().link_ref(), LinkHash::of(a.expose()).link_ref());
        assert_ne!(a.hash().link_ref(), b.hash().link_ref());
    }

    #[test]
    fn hostile_strings_are_not_secrets() {
        let good = CitizenLinkSecret::generate();
        let too_long = format!("{}A", good.expose());
        for text in [
            "",
            "short",
            too_long.as_str(),
            "../../../../etc/passwd/xxxxx",
            "<script>alert(1)</script>xx",
            "ÆØÅæøåÆØÅæøåÆØÅæøåÆØÅæøåæ",
        ] {
            assert_eq!(CitizenLinkSecret::parse(text), Err(NotASecret), "{text:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = CitizenLinkSecret::generate();
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}

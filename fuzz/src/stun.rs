//! A STUN binding request as a controlling ICE agent sends it (RFC 8445 §7.1.1): USERNAME,
//! PRIORITY, ICE-CONTROLLING, optionally USE-CANDIDATE and extra (fuzzed) attributes, then
//! MESSAGE-INTEGRITY (HMAC-SHA1 over the relay's password) and FINGERPRINT.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const ATTR_ICE_CONTROLLING: u16 = 0x802A;

/// What goes into the request.
#[derive(Debug, Clone)]
pub struct BindingRequest<'a> {
    /// `relay_ufrag:client_ufrag`.
    pub username: &'a str,
    /// The relay's ICE password (the key of MESSAGE-INTEGRITY).
    pub password: &'a str,
    /// Transaction id.
    pub transaction: [u8; 12],
    /// Nominate the pair.
    pub use_candidate: bool,
    /// Raw bytes appended after the standard attributes, before the integrity (may be garbage).
    pub extra: &'a [u8],
    /// Write a wrong integrity (a check that must be refused).
    pub corrupt_integrity: bool,
}

fn attr(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    out.extend_from_slice(&typ.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn set_length(out: &mut [u8], body_len: usize) {
    out[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl BindingRequest<'_> {
    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.extra.len());
        out.extend_from_slice(&0x0001u16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction);
        attr(&mut out, ATTR_USERNAME, self.username.as_bytes());
        attr(&mut out, ATTR_PRIORITY, &0x6E00_1EFFu32.to_be_bytes());
        attr(
            &mut out,
            ATTR_ICE_CONTROLLING,
            &0x1234_5678_9ABC_DEF0u64.to_be_bytes(),
        );
        if self.use_candidate {
            attr(&mut out, ATTR_USE_CANDIDATE, &[]);
        }
        // Extra bytes only where they keep the attribute framing (a length that fits).
        let extra = &self.extra[..self.extra.len().min(512) & !3];
        out.extend_from_slice(extra);
        // MESSAGE-INTEGRITY covers the header with the length up to and including itself.
        let len_with_integrity = out.len() - 20 + 24;
        set_length(&mut out, len_with_integrity);
        let mut mac = Hmac::<Sha1>::new_from_slice(self.password.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(&out);
        let mut digest = mac.finalize().into_bytes().to_vec();
        if self.corrupt_integrity {
            digest[0] ^= 0xff;
        }
        attr(&mut out, ATTR_MESSAGE_INTEGRITY, &digest);
        // FINGERPRINT covers everything before it, with the length including itself.
        let len_with_fingerprint = out.len() - 20 + 8;
        set_length(&mut out, len_with_fingerprint);
        let fingerprint = crc32(&out) ^ 0x5354_554E;
        attr(&mut out, ATTR_FINGERPRINT, &fingerprint.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

//! Which peer connection an inbound datagram on a worker's UDP port belongs to.
//!
//! All peers share one port, so the relay tells them apart itself:
//! - a datagram from a known 5-tuple goes to the peer bound to that address (O(1) map);
//! - a STUN binding request from an unknown address is routed by the local half of its
//!   `USERNAME` attribute (`<relay ufrag>:<client ufrag>`), which names one peer (the ufrag of
//!   its current ICE session: an ICE restart replaces it, and the old one routes nowhere);
//! - anything else from an unknown address is dropped and counted.
//!
//! The address is bound to the peer only after that peer's ICE agent has answered the check
//! (it verified the message integrity with the peer's password), so a forged check cannot
//! steal another participant's media path.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{CLASS_REQUEST, METHOD_BINDING, Message, is_stun_message};

/// What kind of packet a datagram is, by its first byte (RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatagramKind {
    /// STUN (ICE connectivity checks).
    Stun,
    /// DTLS (handshake, alerts).
    Dtls,
    /// SRTP or SRTCP.
    Rtp,
    /// Anything else: not ours.
    Unknown,
}

/// Classifies a datagram by its first byte.
pub(crate) fn classify(datagram: &[u8]) -> DatagramKind {
    match datagram.first() {
        Some(0..=3) if is_stun_message(datagram) => DatagramKind::Stun,
        Some(20..=63) => DatagramKind::Dtls,
        Some(128..=191) if datagram.len() >= 12 => DatagramKind::Rtp,
        _ => DatagramKind::Unknown,
    }
}

/// The relay-side ufrag named by a STUN binding request, if it is one.
///
/// Returns `None` for anything that is not a well-formed binding request with a
/// `USERNAME` of the form `local:remote`.
pub(crate) fn binding_request_ufrag(datagram: &[u8]) -> Option<String> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut message = Message {
        raw: datagram.to_vec(),
        ..Message::default()
    };
    message.decode().ok()?;
    if message.typ.method != METHOD_BINDING || message.typ.class != CLASS_REQUEST {
        return None;
    }
    let username = message.get(ATTR_USERNAME).ok()?;
    let username = std::str::from_utf8(&username).ok()?;
    let (local, _remote) = username.split_once(':')?;
    if local.is_empty() || local.len() > 256 {
        return None;
    }
    Some(local.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{BINDING_REQUEST, Setter, TransactionId};
    use rtc::stun::textattrs::Username;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, username.to_owned())),
        ];
        m.build(&setters).unwrap();
        m.raw
    }

    #[test]
    fn binding_request_names_the_local_ufrag() {
        let raw = binding_request("relayUfrag:clientUfrag");
        assert_eq!(classify(&raw), DatagramKind::Stun);
        assert_eq!(binding_request_ufrag(&raw).as_deref(), Some("relayUfrag"));
    }

    #[test]
    fn username_without_colon_is_not_routable() {
        let raw = binding_request("nocolon");
        assert_eq!(binding_request_ufrag(&raw), None);
    }

    #[test]
    fn classification_follows_rfc7983() {
        assert_eq!(classify(&[22, 254, 253, 0]), DatagramKind::Dtls);
        let mut rtp = vec![0x80u8; 12];
        rtp[1] = 96;
        assert_eq!(classify(&rtp), DatagramKind::Rtp);
        assert_eq!(
            classify(&[0x80, 96]),
            DatagramKind::Unknown,
            "too short for RTP"
        );
        assert_eq!(classify(&[]), DatagramKind::Unknown);
        assert_eq!(classify(&[255, 1, 2]), DatagramKind::Unknown);
        // Starts like STUN but is not: no magic cookie.
        assert_eq!(classify(&[0, 1, 0, 0, 1, 2, 3, 4]), DatagramKind::Unknown);
    }

    #[test]
    fn truncated_or_garbage_stun_never_panics() {
        let raw = binding_request("a:b");
        for len in 0..raw.len() {
            let _ = binding_request_ufrag(&raw[..len]);
        }
        let mut flipped = raw.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = binding_request_ufrag(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}

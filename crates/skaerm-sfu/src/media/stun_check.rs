//! The relay's own check of an ICE connectivity check before `rtc` sees it.
//!
//! A STUN datagram reaching a participant's connection must be a binding request for that
//! participant's current ICE session: `USERNAME` `<relay ufrag>:…` and a `MESSAGE-INTEGRITY`
//! made with the relay-side password. `rtc`'s agent checks the same, but a refusal there is
//! invisible to the relay (swallowed in its pipeline) and logged at WARN twice per datagram with
//! the sender's address: anyone who knows or spoofs a participant's address could fill the log.
//! Checked here, a forged or broken check is a counted drop by reason and never reaches `rtc`.
//! `rtc`'s lite agent also checks the client now and then (consent); the client's success
//! responses carry an integrity made with the client's password (from its answer) and are
//! verified with that. Indications, which carry no integrity, pass through as before.

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_BINDING, Message,
    is_stun_message,
};

/// Why a STUN datagram was not handed to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StunRefusal {
    /// Not a decodable STUN message, or not a binding request/indication.
    Malformed,
    /// A binding request for another (or a past) ICE session, or whose integrity does not
    /// verify with the relay-side password.
    BadIntegrity,
}

/// The ICE credentials a connection's checks are verified with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveCredentials<'a> {
    /// Relay-side ufrag of the current ICE session.
    pub(crate) local_ufrag: &'a str,
    /// Relay-side password (requests from the client are signed with it).
    pub(crate) local_pwd: &'a str,
    /// The client's password from its answer (its responses are signed with it); empty until
    /// an answer is applied.
    pub(crate) remote_pwd: &'a str,
}

/// Checks one STUN datagram against the connection's live credentials.
pub(crate) fn check_binding(
    datagram: &[u8],
    credentials: LiveCredentials<'_>,
    crypto: &dyn RTCCrypto,
) -> Result<(), StunRefusal> {
    let LiveCredentials {
        local_ufrag,
        local_pwd,
        remote_pwd,
    } = credentials;
    if !is_stun_message(datagram) {
        return Err(StunRefusal::Malformed);
    }
    let mut message = Message {
        raw: datagram.to_vec(),
        ..Message::default()
    };
    message.decode().map_err(|_| StunRefusal::Malformed)?;
    if message.typ.method != METHOD_BINDING {
        return Err(StunRefusal::Malformed);
    }
    if message.typ.class == CLASS_INDICATION {
        return Ok(());
    }
    if message.typ.class == CLASS_SUCCESS_RESPONSE {
        if remote_pwd.is_empty() {
            return Err(StunRefusal::BadIntegrity);
        }
        return MessageIntegrity::check(&mut message, remote_pwd.as_bytes(), crypto)
            .map_err(|_| StunRefusal::BadIntegrity);
    }
    if message.typ.class != CLASS_REQUEST {
        return Err(StunRefusal::Malformed);
    }
    if local_ufrag.is_empty() || local_pwd.is_empty() {
        return Err(StunRefusal::BadIntegrity);
    }
    let username = message
        .get(ATTR_USERNAME)
        .map_err(|_| StunRefusal::BadIntegrity)?;
    let names_this_session = username
        .strip_prefix(local_ufrag.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b':'));
    if !names_this_session {
        return Err(StunRefusal::BadIntegrity);
    }
    MessageIntegrity::check(&mut message, local_pwd.as_bytes(), crypto)
        .map_err(|_| StunRefusal::BadIntegrity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Setter, TransactionId};
    use rtc::stun::textattrs::Username;

    fn request(username: &str, pwd: &str, crypto: &dyn RTCCrypto) -> Vec<u8> {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, username.to_owned())),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                crypto,
            )),
        ];
        m.build(&setters).unwrap();
        m.raw
    }

    fn check(
        datagram: &[u8],
        local_ufrag: &str,
        local_pwd: &str,
        crypto: &dyn RTCCrypto,
    ) -> Result<(), StunRefusal> {
        check_binding(
            datagram,
            LiveCredentials {
                local_ufrag,
                local_pwd,
                remote_pwd: "clientpasswordclientpassword",
            },
            crypto,
        )
    }

    #[test]
    fn only_a_request_for_the_live_session_with_its_password_passes() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let good = request("relay:client", "secretsecretsecret", crypto);
        assert_eq!(check(&good, "relay", "secretsecretsecret", crypto), Ok(()));
        assert_eq!(
            check(&good, "relay", "othersecretothersecret", crypto),
            Err(StunRefusal::BadIntegrity)
        );
        assert_eq!(
            check(&good, "relay2", "secretsecretsecret", crypto),
            Err(StunRefusal::BadIntegrity),
            "an old ufrag after a restart"
        );
        let prefixed = request("relayX:client", "secretsecretsecret", crypto);
        assert_eq!(
            check(&prefixed, "relay", "secretsecretsecret", crypto),
            Err(StunRefusal::BadIntegrity)
        );
        // A success response must be signed with the client's password.
        let response = |pwd: &str| {
            let mut response = Message::new();
            let setters: Vec<Box<dyn Setter + '_>> = vec![
                Box::new(BINDING_SUCCESS),
                Box::new(TransactionId::new()),
                Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                    pwd.to_owned(),
                    crypto,
                )),
            ];
            response.build(&setters).unwrap();
            response.raw
        };
        assert_eq!(
            check(
                &response("clientpasswordclientpassword"),
                "relay",
                "secretsecretsecret",
                crypto
            ),
            Ok(())
        );
        assert_eq!(
            check(&response("forged"), "relay", "secretsecretsecret", crypto),
            Err(StunRefusal::BadIntegrity)
        );
        let mut broken = good.clone();
        broken.truncate(30);
        assert!(check(&broken, "relay", "secretsecretsecret", crypto).is_err());
    }
}

//! Client signalling messages: every text frame (here: each line of the input) goes through
//! `parse_client_message` as the WebSocket handler does; what parses is, apart from `join`
//! (its token is checked elsewhere), applied to a media core with two joined participants as
//! the signalling task forwards it: the room's state machine (admission, offers and answers,
//! ICE restarts, candidates, mute, chat, leave) driven by hostile messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skaerm_fuzz::relay::Relay;
use skaerm_sfu::media::core::Command;
use skaerm_sfu::protocol::{ClientMessage, LeaveReason, Muted, ParseError, parse_client_message};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A round trip first: whatever parses must serialise and parse back to itself.
    if let Ok(message) = parse_client_message(text) {
        let again = serde_json::to_string(&message).expect("a parsed message serialises");
        assert_eq!(parse_client_message(&again), Ok(message));
    }
    if let Err(ParseError::UnknownType(t)) = parse_client_message(text) {
        assert!(t.chars().count() <= 40, "the echoed type is bounded");
    }
    let mut relay = Relay::new(2);
    relay.answer_all_but(None);
    for (n, line) in text.lines().take(32).enumerate() {
        let Ok(message) = parse_client_message(line) else {
            continue;
        };
        let peer = n % 2;
        let session = relay.peers[peer].session;
        let command = match message {
            ClientMessage::Join { .. } => continue,
            ClientMessage::Answer { sdp, revision } => {
                relay.answer(peer, sdp, Some(revision));
                continue;
            }
            ClientMessage::Candidate { candidate } => Command::Candidate { session, candidate },
            ClientMessage::Publish { audio, video } => Command::Publish {
                session,
                publish: skaerm_sfu::protocol::Publish { audio, video },
            },
            ClientMessage::Mute { audio, video } => Command::Mute {
                session,
                muted: Muted { audio, video },
            },
            ClientMessage::Leave => Command::Leave {
                session,
                reason: LeaveReason::Left,
            },
            ClientMessage::RestartIce => Command::RestartIce { session },
            ClientMessage::Admit { participant_id } => Command::Admit {
                session,
                participant: participant_id,
            },
            ClientMessage::Deny { participant_id } => Command::Deny {
                session,
                participant: participant_id,
            },
            ClientMessage::Chat { text } => Command::Chat {
                session,
                text,
                at: 0,
            },
        };
        relay.core.handle_command(relay.now, command);
        relay.pump();
    }
    relay.advance(Duration::from_millis(500));
});

//! The signalling protocol's messages as Rust types (see `PROTOCOL.md`, the contract).
//!
//! Parsing is strict about what matters (types, required fields) and lenient about the rest
//! (unknown fields are ignored), so old clients keep working when fields are added.

use crate::ids::{ParticipantId, RoomId};
use serde::{Deserialize, Serialize};

/// The only protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client says it will send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Publish {
    /// Sends a microphone track.
    pub audio: bool,
    /// Sends a camera track.
    pub video: bool,
}

/// Mute state of a participant (true = muted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Muted {
    /// Microphone muted.
    pub audio: bool,
    /// Camera off.
    pub video: bool,
}

/// A trickled ICE candidate, as the browser's `RTCIceCandidate.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientCandidate {
    /// The `candidate:` line; empty means end of candidates.
    #[serde(default)]
    pub candidate: String,
    /// Media id the candidate belongs to.
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    /// Media line index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    /// ICE username fragment.
    #[serde(default, rename = "usernameFragment")]
    pub username_fragment: Option<String>,
}

/// Why the relay paused video to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoPauseReason {
    /// The client's estimated bandwidth stayed below the relay's floor: audio only until it
    /// recovers.
    LowBandwidth,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Enter a room with a media token.
    Join {
        /// Protocol version; must be [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Media token (JWT) from the HTTP API.
        token: String,
        /// What this client will send.
        #[serde(default)]
        publish: Publish,
        /// The room (visit) the client means to enter. When given and the token is for
        /// another room, the join is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// Answer to the server's offer.
    Answer {
        /// SDP text.
        sdp: String,
        /// The offer's revision.
        revision: u32,
    },
    /// A trickled client candidate.
    Candidate {
        /// The candidate.
        candidate: ClientCandidate,
    },
    /// Change what this client sends.
    Publish {
        /// Sends microphone audio.
        audio: bool,
        /// Sends camera video.
        video: bool,
    },
    /// Tell the others about a local mute.
    Mute {
        /// Microphone muted.
        audio: bool,
        /// Camera off.
        video: bool,
    },
    /// Leave the room.
    Leave,
    /// Ask the relay for an ICE restart: the client's network changed or its media path broke.
    /// The relay answers with an `offer` carrying fresh ICE credentials (same session).
    RestartIce,
    /// A host lets a waiting participant in.
    Admit {
        /// Who (from `participant_waiting` or `joined.waiting`).
        participant_id: ParticipantId,
    },
    /// A host turns a waiting participant away.
    Deny {
        /// Who.
        participant_id: ParticipantId,
    },
    /// A chat message to everyone in the room (admitted participants only).
    Chat {
        /// Plain text: trimmed, 1 to 1000 characters, no control characters but newline.
        text: String,
    },
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Stable participant id; also the id of the `MediaStream` carrying their tracks.
    pub id: ParticipantId,
    /// `host` (staff) or `guest`.
    pub role: RoomRole,
    /// Plain text; clients must escape it.
    pub display_name: String,
    /// Their mute state.
    pub muted: Muted,
}

/// A STUN/TURN server the client may use for its peer connection (a WebRTC `RTCIceServer`).
/// The application hands these out with `joined` (Skærm: coturn with short-lived credentials);
/// the relay itself stays ICE-lite and never uses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `turn:`/`turns:` (or `stun:`) URLs sharing these credentials.
    pub urls: Vec<String>,
    /// TURN username (for coturn's REST-API credentials: `<unix expiry>:<opaque id>`).
    pub username: String,
    /// TURN password.
    pub credential: String,
}

/// What a participant may do in a room: host or guest (the application's staff access roles
/// are another idea, with their own type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomRole {
    /// Staff running the visit.
    Host,
    /// Citizen or invited guest.
    Guest,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They said `leave`.
    Left,
    /// Their WebSocket or media connection dropped.
    Disconnected,
    /// They joined again from somewhere else.
    Replaced,
    /// The room was closed.
    Removed,
    /// A host turned them away from the waiting room.
    Denied,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Staff ended the visit.
    VisitEnded,
    /// The same participant joined from another session.
    Replaced,
    /// The server is shutting down.
    ServerShutdown,
    /// The media connection failed and could not recover.
    MediaFailed,
    /// A host turned this participant away from the waiting room.
    Denied,
    /// Staff revoked this participant's invitation: the session ends and must not rejoin.
    AccessRevoked,
    /// Staff cancelled the visit (before it began): do not rejoin.
    Cancelled,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Joined {
        /// Protocol version spoken.
        protocol: u32,
        /// The joining participant.
        you: ParticipantInfo,
        /// The room.
        room: RoomId,
        /// Everyone else present.
        participants: Vec<ParticipantInfo>,
        /// Who is in the waiting room (hosts only; empty for guests).
        #[serde(default)]
        waiting: Vec<ParticipantInfo>,
        /// TURN servers for this participant's peer connection; absent when none are configured.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// This participant is in the waiting room until a host admits them: no offer yet.
    Waiting {
        /// The room.
        room: RoomId,
        /// The waiting participant.
        you: ParticipantInfo,
    },
    /// (Hosts only.) Someone entered the waiting room.
    ParticipantWaiting {
        /// Who.
        participant: ParticipantInfo,
    },
    /// An offer to answer.
    Offer {
        /// SDP text.
        sdp: String,
        /// Increases by one per new offer.
        revision: u32,
    },
    /// Someone entered.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        participant_id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone's state changed.
    ParticipantUpdated {
        /// Their new state.
        participant: ParticipantInfo,
    },
    /// A participant is in the room but its media connection did not come up: its picture
    /// and sound are not arriving at the relay (e.g. its network blocks UDP).
    MediaNotArriving {
        /// Whose media.
        participant_id: ParticipantId,
    },
    /// After `media_not_arriving`: that participant's media connection is up now.
    MediaArriving {
        /// Whose media.
        participant_id: ParticipantId,
    },
    /// The relay stopped forwarding a participant's video to this client (audio continues).
    VideoPaused {
        /// Whose video.
        participant_id: ParticipantId,
        /// Why.
        reason: VideoPauseReason,
    },
    /// The relay forwards a participant's video to this client again (starting with a
    /// keyframe).
    VideoResumed {
        /// Whose video.
        participant_id: ParticipantId,
    },
    /// A chat message, relayed to everyone in the room including its sender, in the relay's
    /// order. Not stored anywhere.
    Chat {
        /// The sender's participant id.
        from: ParticipantId,
        /// Plain text; clients must escape it.
        text: String,
        /// When the relay received it, milliseconds since the Unix epoch.
        at: u64,
    },
    /// The session is over.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// A request was refused.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Technical English for logs.
        message: String,
        /// The server closes the socket after a fatal error.
        fatal: bool,
    },
}

impl ServerMessage {
    /// An error message; `fatal` follows from the code.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            fatal: code.is_fatal(),
        }
    }
}

/// Error codes of `PROTOCOL.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, binary, or a field of the wrong type.
    BadMessage,
    /// Unknown message type.
    UnknownType,
    /// Unsupported protocol version.
    UnsupportedProtocol,
    /// A message other than `join` before joining.
    NotJoined,
    /// A second `join`.
    AlreadyJoined,
    /// Forged, malformed or foreign token.
    TokenInvalid,
    /// Expired or not yet valid token.
    TokenExpired,
    /// Valid token, but no access to this visit now.
    Forbidden,
    /// The room is full.
    RoomFull,
    /// An answer that could not be applied.
    BadSdp,
    /// An answer to an old offer.
    StaleRevision,
    /// The media connection failed.
    MediaFailed,
    /// Overloaded.
    ServerBusy,
    /// A server fault.
    Internal,
    /// `admit`/`deny` named nobody in this room's waiting room.
    UnknownParticipant,
    /// Too many messages of one kind in a short time (chat, ICE restarts, candidates,
    /// answers, admit/deny, refused messages…); the message was dropped.
    RateLimited,
    /// More trickled candidates than the relay takes in one ICE session; the rest are
    /// ignored (sent once per ICE session).
    TooManyCandidates,
}

impl ErrorCode {
    /// Whether the server closes the session after this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedProtocol
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::Forbidden
                | ErrorCode::RoomFull
                | ErrorCode::MediaFailed
                | ErrorCode::ServerBusy
                | ErrorCode::Internal
        )
    }

    /// The snake_case name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::BadSdp => "bad_sdp",
            ErrorCode::StaleRevision => "stale_revision",
            ErrorCode::MediaFailed => "media_failed",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::Internal => "internal",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyCandidates => "too_many_candidates",
        }
    }
}

/// Why a text frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object with a string `type`, or a known type with bad fields.
    Bad(String),
    /// A JSON object whose `type` this server does not know.
    UnknownType(String),
}

/// The known client message types, to tell "unknown type" from "bad fields".
const CLIENT_TYPES: &[&str] = &[
    "join",
    "answer",
    "candidate",
    "publish",
    "mute",
    "leave",
    "restart_ice",
    "admit",
    "deny",
    "chat",
];

/// Parses one text frame.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => Ok(message),
        Err(err) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| ParseError::Bad(format!("not JSON: {e}")))?;
            match value.get("type").and_then(|t| t.as_str()) {
                Some(t) if !CLIENT_TYPES.contains(&t) => {
                    // Never echo more than a little of hostile input.
                    Err(ParseError::UnknownType(t.chars().take(40).collect()))
                }
                Some(_) => Err(ParseError::Bad(err.to_string())),
                None => Err(ParseError::Bad("missing string field `type`".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parses_with_defaults() {
        let m = parse_client_message(r#"{"type":"join","protocol":1,"token":"t"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Join {
                protocol: 1,
                token: "t".into(),
                publish: Publish::default(),
                room: None,
            }
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let m = parse_client_message(r#"{"type":"leave","future":42}"#).unwrap();
        assert_eq!(m, ClientMessage::Leave);
        let m = parse_client_message(r#"{"type":"restart_ice","future":42}"#).unwrap();
        assert_eq!(m, ClientMessage::RestartIce);
    }

    #[test]
    fn garbage_is_bad_message() {
        assert!(matches!(
            parse_client_message("not json"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_client_message("[1,2]"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":7}"#),
            Err(ParseError::Bad(_))
        ));
    }

    #[test]
    fn known_type_with_bad_fields_is_bad_message() {
        assert!(matches!(
            parse_client_message(r#"{"type":"answer","sdp":5,"revision":1}"#),
            Err(ParseError::Bad(_))
        ));
    }

    #[test]
    fn unknown_type_is_reported_truncated() {
        let long = "x".repeat(500);
        let err = parse_client_message(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
        match err {
            ParseError::UnknownType(t) => assert_eq!(t.len(), 40),
            other => panic!("expected UnknownType, got {other:?}"),
        }
    }

    #[test]
    fn admit_and_deny_parse_and_bad_ids_are_bad_messages() {
        let id = uuid::Uuid::new_v4();
        let m = parse_client_message(&format!(r#"{{"type":"admit","participant_id":"{id}"}}"#))
            .unwrap();
        assert_eq!(
            m,
            ClientMessage::Admit {
                participant_id: ParticipantId(id)
            }
        );
        let m =
            parse_client_message(&format!(r#"{{"type":"deny","participant_id":"{id}"}}"#)).unwrap();
        assert_eq!(
            m,
            ClientMessage::Deny {
                participant_id: ParticipantId(id)
            }
        );
        for bad in [
            r#"{"type":"admit"}"#,
            r#"{"type":"admit","participant_id":"not-a-uuid"}"#,
            r#"{"type":"deny","participant_id":7}"#,
        ] {
            assert!(
                matches!(parse_client_message(bad), Err(ParseError::Bad(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn room_roles_serialise_as_host_and_guest() {
        assert_eq!(serde_json::to_string(&RoomRole::Host).unwrap(), r#""host""#);
        assert_eq!(
            serde_json::to_string(&RoomRole::Guest).unwrap(),
            r#""guest""#
        );
        assert_eq!(
            serde_json::from_str::<RoomRole>(r#""host""#).unwrap(),
            RoomRole::Host
        );
    }

    #[test]
    fn waiting_room_messages_serialise_as_documented() {
        let you = ParticipantInfo {
            id: ParticipantId(uuid::Uuid::nil()),
            role: RoomRole::Guest,
            display_name: "Ingrid".into(),
            muted: Muted::default(),
        };
        let room = RoomId(uuid::Uuid::nil());
        let json = serde_json::to_value(ServerMessage::Waiting {
            room,
            you: you.clone(),
        })
        .unwrap();
        assert_eq!(json["type"], "waiting");
        assert_eq!(json["you"]["display_name"], "Ingrid");
        let json = serde_json::to_value(ServerMessage::ParticipantWaiting {
            participant: you.clone(),
        })
        .unwrap();
        assert_eq!(json["type"], "participant_waiting");
        assert_eq!(json["participant"]["role"], "guest");
        let json = serde_json::to_value(ServerMessage::Joined {
            protocol: 1,
            you: you.clone(),
            room,
            participants: vec![],
            waiting: vec![you.clone()],
            ice_servers: vec![],
        })
        .unwrap();
        assert_eq!(json["waiting"][0]["display_name"], "Ingrid");
        assert!(
            json.get("ice_servers").is_none(),
            "no TURN configured: `joined` is unchanged"
        );
        let json = serde_json::to_value(ServerMessage::Joined {
            protocol: 1,
            you,
            room,
            participants: vec![],
            waiting: vec![],
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example.dk:3478?transport=tcp".into()],
                username: "1764000000:abc".into(),
                credential: "c2VjcmV0".into(),
            }],
        })
        .unwrap();
        assert_eq!(
            json["ice_servers"][0]["urls"][0],
            "turn:turn.example.dk:3478?transport=tcp"
        );
        assert_eq!(json["ice_servers"][0]["username"], "1764000000:abc");
        assert_eq!(json["ice_servers"][0]["credential"], "c2VjcmV0");
        let json = serde_json::to_value(ServerMessage::Ended {
            reason: EndReason::Denied,
        })
        .unwrap();
        assert_eq!(json["reason"], "denied");
        let json = serde_json::to_value(ServerMessage::error(
            ErrorCode::UnknownParticipant,
            "nobody",
        ))
        .unwrap();
        assert_eq!(json["code"], "unknown_participant");
        assert_eq!(json["fatal"], false);
    }

    #[test]
    fn chat_messages_parse_and_serialise_as_documented() {
        let m = parse_client_message(r#"{"type":"chat","text":"hej"}"#).unwrap();
        assert_eq!(m, ClientMessage::Chat { text: "hej".into() });
        assert!(matches!(
            parse_client_message(r#"{"type":"chat"}"#),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"chat","text":5}"#),
            Err(ParseError::Bad(_))
        ));
        let id = ParticipantId(uuid::Uuid::nil());
        let json = serde_json::to_value(ServerMessage::Chat {
            from: id,
            text: "<b>".into(),
            at: 1_700_000_000_000,
        })
        .unwrap();
        assert_eq!(json["type"], "chat");
        assert_eq!(json["from"], id.to_string());
        assert_eq!(json["text"], "<b>");
        assert_eq!(json["at"], 1_700_000_000_000u64);
        let json = serde_json::to_value(ServerMessage::error(ErrorCode::RateLimited, "slow down"))
            .unwrap();
        assert_eq!(json["code"], "rate_limited");
        assert_eq!(json["fatal"], false);
    }

    #[test]
    fn server_messages_serialise_as_documented() {
        let json = serde_json::to_value(ServerMessage::error(ErrorCode::RoomFull, "full")).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "room_full");
        assert_eq!(json["fatal"], true);
        let json = serde_json::to_value(ServerMessage::Offer {
            sdp: "v=0".into(),
            revision: 3,
        })
        .unwrap();
        assert_eq!(json["type"], "offer");
        assert_eq!(json["revision"], 3);
        let id = ParticipantId(uuid::Uuid::nil());
        let json = serde_json::to_value(ServerMessage::VideoPaused {
            participant_id: id,
            reason: VideoPauseReason::LowBandwidth,
        })
        .unwrap();
        assert_eq!(json["type"], "video_paused");
        assert_eq!(json["reason"], "low_bandwidth");
        assert_eq!(json["participant_id"], id.to_string());
        let json =
            serde_json::to_value(ServerMessage::VideoResumed { participant_id: id }).unwrap();
        assert_eq!(json["type"], "video_resumed");
        assert_eq!(json["participant_id"], id.to_string());
    }
}

//! Admission: what the relay needs to know to let someone into a room, and who decides it.
//!
//! The relay does not read tokens or visits itself. The application implements
//! [`JoinAuthorizer`]; the relay calls it with the token from `join` and gets back either a
//! [`JoinGrant`] naming the room and participant, or a [`JoinRefusal`].

use crate::ids::{ParticipantId, RoomId};
use crate::protocol::{ErrorCode, IceServer, RoomRole};
use futures_util::future::BoxFuture;

/// Admission to one room as one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGrant {
    /// The room (the visit).
    pub room: RoomId,
    /// Who joins.
    pub participant: ParticipantId,
    /// Host (staff) or guest.
    pub role: RoomRole,
    /// Shown to the others as plain text.
    pub display_name: String,
    /// Waits in the room's waiting room until a host admits them (the application's policy:
    /// guests do, hosts never). The relay ignores it for hosts and for a participant it has
    /// already admitted to this room (a rejoin after a network cut skips the lobby).
    pub needs_admission: bool,
    /// The host on whose behalf the application already admitted this participant (a tablet
    /// answering that host's call): instead of waiting, the participant goes straight in and
    /// the relay reports `ParticipantAdmitted` by that host, as if they had pressed admit.
    /// Only read when the participant would otherwise wait.
    pub admitted_by: Option<ParticipantId>,
    /// What the participant proved who they are with (the application's id of a citizen link,
    /// a tablet, an invite; `None` for hosts). A host's admission is remembered for this
    /// participant *with this credential*: a rejoin skips the waiting room, or takes over a
    /// session in the call, only with the same one (a token from a re-issued link does not).
    pub credential: Option<uuid::Uuid>,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// The token is forged, malformed, for another audience or signed by an unknown key.
    #[error("token invalid")]
    TokenInvalid,
    /// The token is expired or not yet valid.
    #[error("token expired or not yet valid")]
    TokenExpired,
    /// The token is valid but does not admit its holder now (visit over, link revoked, …).
    #[error("access to this visit is not allowed now")]
    Forbidden,
    /// The decision could not be made (for example the database is down).
    #[error("admission could not be checked")]
    Unavailable,
}

impl JoinRefusal {
    /// The protocol error code sent to the client.
    pub fn code(self) -> ErrorCode {
        match self {
            JoinRefusal::TokenInvalid => ErrorCode::TokenInvalid,
            JoinRefusal::TokenExpired => ErrorCode::TokenExpired,
            JoinRefusal::Forbidden => ErrorCode::Forbidden,
            JoinRefusal::Unavailable => ErrorCode::ServerBusy,
        }
    }
}

/// Decides who may join which room. Implemented by the application.
pub trait JoinAuthorizer: Send + Sync + 'static {
    /// Checks a media token presented in `join`.
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<JoinGrant, JoinRefusal>>;

    /// STUN/TURN servers (with fresh credentials) for a participant whose join went through:
    /// sent in its `joined`, i.e. only once it is in the room (after the waiting room). The
    /// relay stays ICE-lite and does not use them. Default: none.
    fn ice_servers(&self, grant: &JoinGrant) -> Vec<IceServer> {
        let _ = grant;
        Vec::new()
    }
}

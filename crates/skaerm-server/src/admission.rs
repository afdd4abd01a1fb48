//! Admission to a visit's room: the relay's [`JoinAuthorizer`].
//!
//! A media token proves who the holder is and which visit it was issued for; admission then
//! checks the visit as it is *now*: it exists in the token's tenant, it is not over, the staff
//! member owns or co-hosts it, and a citizen or invited guest is inside the link's time window
//! (an invited guest's invite, whose id is its participant id, must still be for this visit and
//! not revoked).
//!
//! A participant let into the room gets the configured TURN servers with fresh credentials
//! (`crate::turn`) in its `joined`.

use crate::state::Services;
use crate::turn::Turn;
use chrono::Utc;
use futures_util::future::BoxFuture;
use skaerm_auth::tokens::{MediaRole, TokenError};
use skaerm_scheduling::{GuestLinkId, StaffId, StoreError, VisitId};
use skaerm_sfu::grant::{JoinAuthorizer, JoinGrant, JoinRefusal};
use skaerm_sfu::ids::{ParticipantId, RoomId};
use skaerm_sfu::protocol::{IceServer, Role};

/// Decides joins from media tokens and the visit's current state.
pub struct Admission {
    services: Services,
    turn: Option<Turn>,
}

impl Admission {
    /// Admission over these services; `turn`: the TURN servers handed to admitted participants.
    pub fn new(services: Services, turn: Option<Turn>) -> Self {
        Admission { services, turn }
    }

    /// Whether `participant` is an invite to this visit that has not been revoked.
    async fn invited(&self, visit: VisitId, participant: uuid::Uuid) -> Result<bool, JoinRefusal> {
        match self
            .services
            .store
            .get_guest_link(GuestLinkId(participant))
            .await
        {
            Ok(invite) => Ok(invite.visit == visit && invite.revoked_at.is_none()),
            Err(StoreError::NotFound) => Ok(false),
            Err(err) => {
                tracing::error!(%err, "admission could not read the invite");
                Err(JoinRefusal::Unavailable)
            }
        }
    }

    async fn check(&self, token: &str) -> Result<JoinGrant, JoinRefusal> {
        let now = Utc::now();
        let tokens = &self.services.tokens;
        let claims = match tokens.verify_media(token, now) {
            // Another node may have rotated the key.
            Err(TokenError::UnknownKid) if self.services.reload_keys_for_unknown_kid().await => {
                tokens.verify_media(token, now)
            }
            verified => verified,
        }
        .map_err(|err| match err {
            TokenError::Expired | TokenError::NotYetValid => JoinRefusal::TokenExpired,
            _ => JoinRefusal::TokenInvalid,
        })?;
        let visit = match self.services.store.get_visit(VisitId(claims.visit.0)).await {
            Ok(visit) => visit,
            Err(StoreError::NotFound) => return Err(JoinRefusal::Forbidden),
            Err(err) => {
                tracing::error!(%err, "admission could not read the visit");
                return Err(JoinRefusal::Unavailable);
            }
        };
        if visit.tenant_id.0 != claims.tenant.0 || visit.status.is_final() {
            return Err(JoinRefusal::Forbidden);
        }
        let role = match claims.role {
            MediaRole::Host => {
                let staff = StaffId(claims.participant.0);
                if visit.staff_id != staff && visit.co_host_id != Some(staff) {
                    return Err(JoinRefusal::Forbidden);
                }
                Role::Host
            }
            MediaRole::Guest => {
                if visit.citizen_id.0 != claims.participant.0
                    && !self.invited(visit.id, claims.participant.0).await?
                {
                    return Err(JoinRefusal::Forbidden);
                }
                if self.services.link_window.check(&visit, now).is_err() {
                    return Err(JoinRefusal::Forbidden);
                }
                Role::Guest
            }
        };
        Ok(JoinGrant {
            room: RoomId(visit.id.0),
            participant: ParticipantId(claims.participant.0),
            role,
            display_name: claims.name,
            // Policy: guests (the citizen, an invited relative) wait in the waiting room until
            // the visit's staff member admits them; staff never wait.
            needs_admission: role == Role::Guest,
        })
    }
}

impl JoinAuthorizer for Admission {
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<JoinGrant, JoinRefusal>> {
        Box::pin(self.check(token))
    }

    fn ice_servers(&self, _grant: &JoinGrant) -> Vec<IceServer> {
        // The credential names no one: its id is random (see `crate::turn`).
        match &self.turn {
            Some(turn) => turn.ice_servers(Utc::now().timestamp().max(0).unsigned_abs()),
            None => Vec::new(),
        }
    }
}

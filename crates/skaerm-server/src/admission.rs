//! Admission to a visit's room: the relay's [`JoinAuthorizer`].
//!
//! A media token proves who the holder is and which visit it was issued for; admission then
//! checks the visit as it is *now*: it exists in the token's tenant, it is not over, the staff
//! member owns or co-hosts it, and a citizen is inside the link's time window.

use crate::state::Services;
use chrono::Utc;
use futures_util::future::BoxFuture;
use skaerm_auth::tokens::{MediaRole, TokenError};
use skaerm_scheduling::{StaffId, StoreError, VisitId};
use skaerm_sfu::grant::{JoinAuthorizer, JoinGrant, JoinRefusal};
use skaerm_sfu::ids::{ParticipantId, RoomId};
use skaerm_sfu::protocol::Role;

/// Decides joins from media tokens and the visit's current state.
pub struct Admission {
    services: Services,
}

impl Admission {
    /// Admission over these services.
    pub fn new(services: Services) -> Self {
        Admission { services }
    }

    async fn check(&self, token: &str) -> Result<JoinGrant, JoinRefusal> {
        let now = Utc::now();
        let claims = self
            .services
            .tokens
            .verify_media(token, now)
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
                    || self.services.link_window.check(&visit, now).is_err()
                {
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
        })
    }
}

impl JoinAuthorizer for Admission {
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<JoinGrant, JoinRefusal>> {
        Box::pin(self.check(token))
    }
}

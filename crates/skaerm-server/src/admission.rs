//! Admission to a visit's room: the relay's [`JoinAuthorizer`].
//!
//! A media token proves who the holder is and which visit it was issued for; admission then
//! checks the visit as it is *now*: it exists in the token's tenant, it is not over, the staff
//! member owns or co-hosts it, and a citizen or invited guest is inside the link's time window
//! (an invited guest's invite, whose id is its participant id, must still be for this visit and
//! not revoked).
//!
//! Guests wait in the waiting room until a host admits them, except a tablet answering a
//! staff member's call: its token names the answered call (set only by `GET /api/device/call`),
//! and while that call rings for this visit, the tablet is still paired to the visit's
//! citizen and the caller runs the visit, the answer *is* the admission — the relay lets it
//! straight in and reports it as admitted by the calling staff member (audited as such).
//!
//! Every token must also still rest on a live credential (`crate::live_credentials`): a
//! citizen's link not re-issued or revoked, a tablet still paired, a host's login not ended.
//! The relay remembers an admission for that credential only.
//!
//! A participant let into the room gets the configured TURN servers with fresh credentials
//! (`crate::turn`) in its `joined`.

use crate::ids::IdInto;
use crate::services::Services;
use crate::turn::Turn;
use chrono::Utc;
use futures_util::future::BoxFuture;
use skaerm_auth::tokens::{AnsweredCall, MediaClaims, TokenError};
use skaerm_scheduling::{GuestLinkId, StaffId, StoreError, Visit, VisitId, VisitStatus};
use skaerm_sfu::grant::{JoinAuthorizer, JoinGrant, JoinRefusal};
use skaerm_sfu::protocol::{IceServer, RoomRole};

/// Decides joins from media tokens and the visit's current state.
pub struct Admission {
    services: Services,
    /// The TURN servers handed to admitted participants.
    turn: Option<Turn>,
}

impl Admission {
    /// Admission over these services (with the tablet calls ringing on this node) and the
    /// TURN servers handed to admitted participants.
    pub fn new(services: Services, turn: Option<Turn>) -> Self {
        Admission { services, turn }
    }

    /// The staff member on whose behalf a tablet's answered call admits it: the token names
    /// a call; the guest is the visit's citizen; the visit is in progress and run by the
    /// caller; the call still rings for this visit; and the tablet is still paired to this
    /// citizen in this municipality. `None` (wait like any guest) otherwise.
    async fn answered_call(
        &self,
        claims: &MediaClaims,
        visit: &Visit,
    ) -> Result<Option<StaffId>, JoinRefusal> {
        let Some(AnsweredCall { device, by }) = claims.answered_call else {
            return Ok(None);
        };
        if visit.citizen_id.0 != claims.participant.0
            || visit.status != VisitStatus::InProgress
            || visit.staff_id.0 != by.0
        {
            return Ok(None);
        }
        if self.services.tablet_calls.ringing(device) != Some(visit.id) {
            return Ok(None);
        }
        match self
            .services
            .devices
            .get(visit.tenant_id.id_into(), device)
            .await
        {
            Ok(Some(paired)) if paired.citizen == visit.citizen_id.0 => Ok(Some(visit.staff_id)),
            Ok(_) => Ok(None),
            Err(err) => {
                tracing::error!(%err, "admission could not read the tablet");
                Err(JoinRefusal::Unavailable)
            }
        }
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
        let visit = match self.services.store.get_visit(claims.visit.id_into()).await {
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
        let mut admitted_by = None;
        let mut credential = None;
        let role: RoomRole = claims.role.id_into();
        match role {
            RoomRole::Host => {
                let staff = claims.participant.id_into();
                if visit.staff_id != staff && visit.co_host_id != Some(staff) {
                    return Err(JoinRefusal::Forbidden);
                }
                crate::live_credentials::host_session_live(&self.services, &claims, now).await?;
            }
            RoomRole::Guest => {
                if visit.citizen_id.0 == claims.participant.0 {
                    credential = Some(
                        crate::live_credentials::citizen_credential(
                            &self.services,
                            &claims,
                            &visit,
                        )
                        .await?,
                    );
                } else if self.invited(visit.id, claims.participant.0).await? {
                    credential = Some(claims.participant.0);
                } else {
                    return Err(JoinRefusal::Forbidden);
                }
                if self.services.link_window.check(&visit, now).is_err() {
                    return Err(JoinRefusal::Forbidden);
                }
                admitted_by = self.answered_call(&claims, &visit).await?;
            }
        }
        Ok(JoinGrant {
            room: visit.id.id_into(),
            participant: claims.participant.id_into(),
            role,
            display_name: claims.name,
            // Policy: guests (the citizen, an invited relative) wait in the waiting room until
            // the visit's staff member admits them; staff never wait. A tablet answering the
            // staff member's call was admitted by that answer.
            needs_admission: role == RoomRole::Guest,
            admitted_by: admitted_by.map(|staff| staff.id_into()),
            credential,
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

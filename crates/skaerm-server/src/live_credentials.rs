//! Whether what a media token was issued on is still live, checked at every join (see
//! [`crate::admission`]): a token dies with its credential instead of living out its ten
//! minutes.
//!
//! - A citizen's token from a link names the link ([`IssuedOn::Link`]): it must still be the
//!   visit's (or its series') active link; re-issuing or revoking the link kills the token.
//! - A tablet's token names its answered call's tablet: the tablet must still be paired to
//!   the visit's citizen in the visit's municipality; unpairing kills the token.
//! - A host's token names the staff login ([`IssuedOn::Session`]): the session must still be
//!   live; logout and a change of roles (which ends every session of the person) kill it.
//!
//! The id of the credential goes into the relay's grant, so the waiting room remembers an
//! admission for that credential only.

use crate::services::Services;
use chrono::{DateTime, Utc};
use skaerm_auth::citizen_link::LinkHash;
use skaerm_auth::refs::TenantRef;
use skaerm_auth::tokens::{IssuedOn, MediaClaims};
use skaerm_scheduling::Visit;
use skaerm_sfu::grant::JoinRefusal;
use uuid::Uuid;

/// The host's login is live. Refused when the token names none or a dead one.
pub(crate) async fn host_session_live(
    services: &Services,
    claims: &MediaClaims,
    now: DateTime<Utc>,
) -> Result<(), JoinRefusal> {
    let Some(IssuedOn::Session(session)) = claims.issued_on else {
        return Err(JoinRefusal::Forbidden);
    };
    match services.sessions.is_live(session, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(JoinRefusal::Forbidden),
        Err(err) => {
            tracing::error!(%err, "admission could not read the staff session");
            Err(JoinRefusal::Unavailable)
        }
    }
}

/// The id of the live credential a citizen's token was issued on (its link's id, or its
/// tablet's id). Refused when the link was re-issued or revoked, the tablet unpaired or
/// paired to someone else, or the token names neither.
pub(crate) async fn citizen_credential(
    services: &Services,
    claims: &MediaClaims,
    visit: &Visit,
) -> Result<Uuid, JoinRefusal> {
    if let Some(IssuedOn::Link(link)) = claims.issued_on {
        let live = services
            .store
            .live_link_hashes(visit)
            .await
            .map_err(|err| {
                tracing::error!(%err, "admission could not read the citizen links");
                JoinRefusal::Unavailable
            })?;
        return if live.into_iter().any(|h| LinkHash(h).link_ref() == link) {
            Ok(link.0)
        } else {
            Err(JoinRefusal::Forbidden)
        };
    }
    let Some(call) = claims.answered_call else {
        return Err(JoinRefusal::Forbidden);
    };
    match services
        .devices
        .get(TenantRef(visit.tenant_id.0), call.device)
        .await
    {
        Ok(Some(paired)) if paired.citizen == visit.citizen_id.0 => Ok(call.device.0),
        Ok(_) => Err(JoinRefusal::Forbidden),
        Err(err) => {
            tracing::error!(%err, "admission could not read the tablet");
            Err(JoinRefusal::Unavailable)
        }
    }
}

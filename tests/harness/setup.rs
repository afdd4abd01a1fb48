//! The setup the end-to-end tests share: a staff member's signed-in tab, what a synthetic
//! participant publishes and sends, a join that must get in, and media tokens signed directly
//! with the server's own key (what the link exchange hands out, or what someone holding the key
//! could forge).

use crate::participant::{JoinOutcome, Participant};
use crate::server::{Browser, Municipality, PASSWORD, TestServer};
use anyhow::Result;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use skaerm_auth::tokens::{AnsweredCall, MediaGrantRequest, MediaRole};
use skaerm_scheduling::Visit;
use skaerm_server::ids::IdInto;
use skaerm_sfu::protocol::Publish;
use std::time::Duration;

/// A participant publishing camera and microphone.
pub const AUDIO_AND_VIDEO: Publish = Publish {
    audio: true,
    video: true,
};

/// A participant publishing its microphone only.
pub const AUDIO_ONLY: Publish = Publish {
    audio: true,
    video: false,
};

/// The `i`th RTP payload of `kind` from the sender tagged `tag`, at realistic sizes (~160
/// bytes of Opus, ~1100 bytes of video): `<tag>-<kind>-<i>-....`, so a receiver can tell
/// whose packet arrived.
pub fn payload(tag: &str, kind: RtpCodecKind, i: usize) -> Bytes {
    let size = if kind == RtpCodecKind::Audio {
        160
    } else {
        1100
    };
    let mut text = format!("{tag}-{kind}-{i:05}-").into_bytes();
    text.resize(size, b'.');
    Bytes::from(text)
}

impl JoinOutcome {
    /// The participant of a join that must get in (admitted or waiting); panics, naming the
    /// refusal, otherwise.
    pub fn joined(self) -> Participant {
        match self {
            JoinOutcome::Joined(p) => *p,
            JoinOutcome::Refused { code, close } => {
                panic!("join refused: {code} (close {close:?})")
            }
        }
    }
}

impl TestServer {
    /// A fresh browser signed in as `username` (password [`PASSWORD`]).
    pub async fn signed_in(&self, username: &str) -> Result<Browser> {
        let tab = Browser::new(&self.url())?;
        tab.login(username, PASSWORD).await?;
        Ok(tab)
    }

    /// Joins `visit`'s room with `token`, publishing `publish`; panics, naming the refusal,
    /// unless the participant gets in (admitted or waiting).
    pub async fn join_visit(
        &self,
        token: &str,
        publish: Publish,
        visit: &Visit,
    ) -> Result<Participant> {
        Ok(
            Participant::join(&self.ws_url(), token, publish, Some(visit.id.id_into()))
                .await?
                .joined(),
        )
    }

    /// A call between the visit's staff member and citizen: both join its room with
    /// `publish`, the staff member lets the citizen in from the waiting room, and both peer
    /// connections are up (within 10 s each).
    pub async fn connected_call(
        &self,
        staff_token: &str,
        citizen_token: &str,
        publish: Publish,
        visit: &Visit,
    ) -> Result<(Participant, Participant)> {
        let staff = self.join_visit(staff_token, publish, visit).await?;
        let citizen = self.join_visit(citizen_token, publish, visit).await?;
        staff.let_in(&citizen).await?;
        staff.wait_connected(Duration::from_secs(10)).await?;
        citizen.wait_connected(Duration::from_secs(10)).await?;
        Ok((staff, citizen))
    }

    /// A media token for `m`'s citizen in `visit` under `name`, signed at `at` with the
    /// server's own key; `answered_call` is the tablet call it claims to answer (a claim only
    /// the tablet's answer path sets).
    pub fn sign_citizen_token(
        &self,
        m: &Municipality,
        visit: &Visit,
        name: &str,
        answered_call: Option<AnsweredCall>,
        at: DateTime<Utc>,
    ) -> Result<String> {
        Ok(self.server.state().services.tokens.issue_media(
            &MediaGrantRequest {
                participant: m.citizen.id.id_into(),
                visit: visit.id.id_into(),
                tenant: m.tenant.id.id_into(),
                role: MediaRole::Guest,
                name: name.to_owned(),
                answered_call,
                issued_on: None,
            },
            at,
        )?)
    }
}

//! One participant's connection inside a media worker: the `rtc` peer connection and what the
//! relay knows about it — what it publishes, what it receives, and how its packets are routed.

use crate::ids::{PeerKey, RoomId, SessionId};
use crate::media::bandwidth::{Estimate, Fallback};
use crate::media::candidates::RemoteCandidates;
use crate::media::early_checks::EarlyChecks;
use crate::media::feedback::NackSwitch;
use crate::media::negotiation::Negotiation;
use crate::media::restart::RestartBudget;
use crate::media::rewrite::RewritePlan;
use crate::media::rtcp_reports::RtcpReportCells;
use crate::media::simulcast::{Continuity, LayerSelector};
use crate::protocol::{ParticipantInfo, Publish};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Most client addresses bound to one peer at a time (one per network path it has tried).
pub(crate) const MAX_ADDRS_PER_PEER: usize = 4;

/// A media track a participant sends to the relay.
#[derive(Debug)]
pub(crate) struct Publication {
    /// `rtc`'s id of the inbound track (from the client's SDP).
    pub(crate) track_id: String,
    /// The receiver carrying it.
    pub(crate) receiver: RTCRtpReceiverId,
    /// Audio or video.
    pub(crate) kind: RtpCodecKind,
    /// The publisher's SSRC for it (0 until known).
    pub(crate) media_ssrc: u32,
    /// Extension ids on the publisher's leg for the forwarded extensions: `(uri, id)`.
    pub(crate) extension_ids: Vec<(&'static str, u8)>,
    /// When a keyframe was last requested from the publisher for this track.
    pub(crate) last_keyframe_request: Option<Instant>,
    /// A keyframe request arrived inside the throttle window and is still owed.
    pub(crate) keyframe_owed: bool,
    /// SSRC of each simulcast layer (rid q, h, f), 0 until seen.
    pub(crate) layer_ssrcs: [u32; 3],
    /// The SSRC of a publisher sending one encoding (no rid), once seen.
    pub(crate) plain_ssrc: u32,
}

/// A track of another participant that this participant receives.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Who publishes it.
    pub(crate) publisher: PeerKey,
    /// The publisher's track id.
    pub(crate) source_track: String,
    /// Our sender on this participant's connection.
    pub(crate) sender: RTCRtpSenderId,
    /// Our sender's track id (subscriber RTCP names it).
    pub(crate) track_id: String,
    /// Audio or video.
    pub(crate) kind: RtpCodecKind,
    /// How to rewrite packets for this leg; `None` until the subscriber's answer negotiated it.
    pub(crate) plan: Option<RewritePlan>,
    /// Sequence numbers and timestamps of this leg (video: continuous across a pause).
    pub(crate) continuity: Continuity,
    /// Video resumes at the next keyframe: nothing is forwarded until one arrives.
    pub(crate) awaiting_keyframe: bool,
    /// Which simulcast layer this subscriber receives (created at the first layered packet).
    pub(crate) layers: Option<LayerSelector>,
}

/// Transceivers on which the relay receives this participant's media.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    /// For the microphone.
    pub(crate) audio: Option<usize>,
    /// For the camera.
    pub(crate) video: Option<usize>,
}

/// One participant's connection.
pub(crate) struct Peer {
    /// The signalling session that owns it.
    pub(crate) session: SessionId,
    /// Its room.
    pub(crate) room: RoomId,
    /// Who it is, as shown to others.
    pub(crate) info: ParticipantInfo,
    /// What they proved who they are with ([`crate::grant::JoinGrant::credential`]).
    pub(crate) credential: Option<uuid::Uuid>,
    /// What it said it sends.
    pub(crate) publish: Publish,
    /// The `rtc` connection.
    pub(crate) pc: RTCPeerConnection,
    /// Relay-side ICE ufrag of the current ICE session (routes first contact); empty until the
    /// first offer, replaced by an ICE restart.
    pub(crate) ufrag: String,
    /// Relay-side ICE password of the current ICE session (checks are verified with it before
    /// `rtc` sees them, `stun_check`); empty until the first offer.
    pub(crate) ice_pwd: String,
    /// The client's ICE password from its latest answer (its check responses are signed with
    /// it); empty until an answer is applied.
    pub(crate) remote_ice_pwd: String,
    /// The candidates the client trickled in the current ICE session (bounded).
    pub(crate) remote_candidates: RemoteCandidates,
    /// How many more ICE restarts this participant may ask for.
    pub(crate) restarts: RestartBudget,
    /// Client addresses bound to this peer, oldest first.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Offer/answer state.
    pub(crate) negotiation: Negotiation,
    /// A client answer has been applied (the ICE agent knows the client's credentials).
    pub(crate) answered: bool,
    /// ICE checks that arrived before the first answer, fed to `pc` once it is applied.
    pub(crate) early_checks: EarlyChecks,
    /// DTLS is up: media can flow to it.
    pub(crate) connected: bool,
    /// When it entered the room (past the waiting room).
    pub(crate) joined_at: Instant,
    /// The others were told its media is not arriving (and will be told when it does).
    pub(crate) told_not_arriving: bool,
    /// The deadline this peer is registered under in the worker's timer heap.
    pub(crate) armed: Option<Instant>,
    /// What it publishes.
    pub(crate) publications: Vec<Publication>,
    /// What it receives.
    pub(crate) subscriptions: Vec<Subscription>,
    /// Where its own media comes in.
    pub(crate) inbound: Inbound,
    /// A counter to make our sender track ids unique on this connection.
    pub(crate) next_track: u32,
    /// The send-side bandwidth estimate of this connection.
    pub(crate) estimate: Estimate,
    /// Whether video to this participant is paused for lack of bandwidth.
    pub(crate) fallback: Fallback,
    /// Closed while its video is paused: its NACKs are then not answered.
    pub(crate) nacks: NackSwitch,
    /// What RTCP reports say about its path (for the quality snapshot).
    pub(crate) rtcp_reports: Arc<RtcpReportCells>,
}

impl Peer {
    /// The subscription for `publisher`'s `source_track`, if any.
    pub(crate) fn subscription_for(&self, publisher: PeerKey, source_track: &str) -> Option<usize> {
        self.subscriptions
            .iter()
            .position(|s| s.publisher == publisher && s.source_track == source_track)
    }

    /// The publication with `track_id`, if any.
    pub(crate) fn publication(&mut self, track_id: &str) -> Option<&mut Publication> {
        self.publications
            .iter_mut()
            .find(|p| p.track_id == track_id)
    }
}

//! The media core of one worker: every peer connection and room it owns, as a plain state
//! machine of input and time.
//!
//! Inputs: datagrams from the worker's UDP port ([`MediaCore::handle_datagram`]), commands from
//! signalling ([`MediaCore::handle_command`]) and the clock ([`MediaCore::handle_timeout`]).
//! Outputs: datagrams to send ([`MediaCore::poll_transmit`]), messages for signalling sessions
//! and room events ([`MediaCore::poll_output`]), and the next deadline
//! ([`MediaCore::poll_timeout`]). The core opens no socket and reads no clock, so tests drive
//! it with real `rtc` client peers and a virtual clock.

use crate::grant::JoinGrant;
use crate::ids::{PeerKey, RoomId, SessionId};
use crate::media::bandwidth::{Fallback, FallbackPolicy, Transition};
use crate::media::candidates::CandidateVerdict;
use crate::media::counters::{Counters, DropReason};
use crate::media::demux::{DatagramKind, binding_request_ufrag, classify};
use crate::media::early_checks::EarlyCheck;
use crate::media::engine::{
    EngineError, FORWARDED_EXTENSIONS, PeerFactory, codec_for, local_ice_pwd, local_ufrag,
};
use crate::media::lobby::{Lobby, LobbyFull, Waiting};
use crate::media::negotiation::AnswerVerdict;
use crate::media::peer::{Inbound, MAX_ADDRS_PER_PEER, Peer, Publication, Subscription};
use crate::media::quality::{LinkState, ParticipantQuality, QualitySlice, RoomQuality, kbps};
use crate::media::restart::RestartBudget;
use crate::media::rewrite::RewritePlan;
use crate::media::simulcast::{
    Continuity, LAYER_RIDS, LayerSelector, LayerVerdict, SIMULCAST_LAYER_BITRATES,
    vp8_keyframe_start,
};
use crate::media::stun_check::{LiveCredentials, StunRefusal, check_binding};
use crate::protocol::{
    ClientCandidate, EndReason, ErrorCode, LeaveReason, Muted, ParticipantInfo, Publish, RoomRole,
    ServerMessage, VideoPauseReason,
};
use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A request from signalling to the media worker.
#[derive(Debug)]
pub enum Command {
    /// Admit a session to a room (the grant is already checked).
    Join {
        /// The session.
        session: SessionId,
        /// Who joins where.
        grant: JoinGrant,
        /// What the client sends.
        publish: Publish,
    },
    /// The client answered an offer.
    Answer {
        /// The session.
        session: SessionId,
        /// SDP text.
        sdp: String,
        /// Revision of the offer answered.
        revision: u32,
    },
    /// The client trickled a candidate.
    Candidate {
        /// The session.
        session: SessionId,
        /// The candidate.
        candidate: ClientCandidate,
    },
    /// The client asks for an ICE restart (its network changed or its media path broke): the
    /// relay answers with an offer carrying fresh ICE credentials, rate limited per participant.
    RestartIce {
        /// The session.
        session: SessionId,
    },
    /// The client changes what it sends.
    Publish {
        /// The session.
        session: SessionId,
        /// New intent.
        publish: Publish,
    },
    /// The client changed its mute state.
    Mute {
        /// The session.
        session: SessionId,
        /// New state.
        muted: Muted,
    },
    /// The session is gone (left or disconnected).
    Leave {
        /// The session.
        session: SessionId,
        /// Why.
        reason: LeaveReason,
    },
    /// A host lets a waiting participant in.
    Admit {
        /// The host's session.
        session: SessionId,
        /// Who.
        participant: crate::ids::ParticipantId,
    },
    /// A host turns a waiting participant away.
    Deny {
        /// The host's session.
        session: SessionId,
        /// Who.
        participant: crate::ids::ParticipantId,
    },
    /// Relay a chat message (already validated and rate limited by signalling) to the room.
    Chat {
        /// The sender's session.
        session: SessionId,
        /// The text.
        text: String,
        /// Receive time, milliseconds since the Unix epoch.
        at: u64,
    },
    /// Take one participant out of a room (in the call or in its waiting room), e.g. because
    /// staff revoked the invitation it joined with; it is told `reason` and closed, the others
    /// see it leave as `removed`, and the room forgets it was ever admitted.
    RemoveParticipant {
        /// The room.
        room: RoomId,
        /// Who.
        participant: crate::ids::ParticipantId,
        /// Told to the participant.
        reason: EndReason,
    },
    /// End a room for everyone in it.
    CloseRoom {
        /// The room.
        room: RoomId,
        /// Told to everyone.
        reason: EndReason,
    },
}

/// Something a room did, for the application (visit status, audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant's media session started.
    ParticipantJoined {
        /// Where.
        room: RoomId,
        /// Who.
        participant: crate::ids::ParticipantId,
        /// In which role.
        role: RoomRole,
    },
    /// A participant's media session ended.
    ParticipantLeft {
        /// Where.
        room: RoomId,
        /// Who.
        participant: crate::ids::ParticipantId,
        /// In which role.
        role: RoomRole,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant entered the waiting room and waits for a host to admit them. (They
    /// leave it with `ParticipantJoined` when admitted, or `ParticipantLeft` when they go or
    /// are denied.)
    ParticipantWaiting {
        /// Where.
        room: RoomId,
        /// Who.
        participant: crate::ids::ParticipantId,
        /// In which role.
        role: RoomRole,
    },
    /// A host let a waiting participant into the room (their `ParticipantJoined` came just
    /// before).
    ParticipantAdmitted {
        /// Where.
        room: RoomId,
        /// Who was let in.
        participant: crate::ids::ParticipantId,
        /// In which role.
        role: RoomRole,
        /// The host who let them in.
        by: crate::ids::ParticipantId,
    },
    /// The last participant left.
    RoomClosed {
        /// Which.
        room: RoomId,
    },
}

/// How to close a signalling session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClose {
    /// WebSocket close code.
    pub code: u16,
    /// Close reason text.
    pub reason: &'static str,
}

impl SessionClose {
    /// Normal end (1000).
    pub const NORMAL: SessionClose = SessionClose {
        code: 1000,
        reason: "bye",
    };
    /// Refused by policy (1008).
    pub const POLICY: SessionClose = SessionClose {
        code: 1008,
        reason: "refused",
    };
    /// Server error (1011).
    pub const SERVER_ERROR: SessionClose = SessionClose {
        code: 1011,
        reason: "server error",
    };
}

/// Output for signalling or the application.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreOutput {
    /// Send a message to a session.
    Signal(SessionId, ServerMessage),
    /// Close a session after its queued messages.
    Close(SessionId, SessionClose),
    /// Tell the application.
    Room(RoomEvent),
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Our local (announced) address it belongs to.
    pub from: SocketAddr,
    /// Bytes.
    pub payload: BytesMut,
}

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Host candidates announced (same port on each).
    pub local_addrs: Vec<SocketAddr>,
    /// Most participants per room.
    pub max_participants_per_room: usize,
    /// Most peers in this worker.
    pub max_peers: usize,
    /// Minimum time between keyframe requests to one publisher track.
    pub keyframe_request_interval: Duration,
    /// When a subscriber falls back to audio only.
    pub fallback: FallbackPolicy,
    /// Ask publishers for three simulcast layers (rid `q`, `h`, `f`).
    pub simulcast: bool,
}

/// Datagrams of a batch read before the touched connections are drained. Draining less often
/// saves pipeline sweeps, but every `rtc` handler queue of a connection grows to what one drain
/// carries and never shrinks (~200 B per queued message in each of ~10 queues), so it is kept
/// small: at 8, a participant's queues stay near 20 KiB.
const DRAIN_EVERY: usize = 8;

/// How often subscribers' bandwidth estimates are looked at.
const BANDWIDTH_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A packet read from a publisher, waiting to be forwarded.
struct Pending {
    publisher: PeerKey,
    track_id: String,
    /// The simulcast layer it belongs to (`None`: the publisher sends one encoding).
    layer: Option<usize>,
    packet: rtc::rtp::Packet,
}

/// The media state of one worker.
pub struct MediaCore {
    config: CoreConfig,
    factory: PeerFactory,
    peers: FastMap<PeerKey, Peer>,
    next_key: u64,
    sessions: FastMap<SessionId, PeerKey>,
    rooms: FastMap<RoomId, Vec<PeerKey>>,
    by_ufrag: FastMap<String, PeerKey>,
    by_addr: FastMap<SocketAddr, PeerKey>,
    timers: BinaryHeap<Reverse<(Instant, PeerKey)>>,
    outputs: VecDeque<CoreOutput>,
    transmits: VecDeque<Transmit>,
    counters: Counters,
    /// Peers whose outputs must be drained before returning to the caller.
    dirty: Vec<PeerKey>,
    /// Publisher packets read but not yet forwarded (reused buffer).
    pending: Vec<Pending>,
    /// Forwarding targets of one packet (reused buffer).
    targets: Vec<(PeerKey, usize)>,
    /// Keyframe requests postponed by the throttle: (publisher, track, due).
    owed_keyframes: Vec<(PeerKey, String, Instant)>,
    /// When subscribers' bandwidth estimates are next looked at (while there are peers).
    next_bandwidth_check: Option<Instant>,
    /// Subscribers' first simulcast layers, whose keyframes are to be requested.
    layer_keyframes_wanted: Vec<(PeerKey, String, usize)>,
    /// Waiting rooms and who was admitted.
    lobby: Lobby,
    /// Per peer, the previous quality sample (for bit rates over the interval).
    quality_samples: FastMap<PeerKey, QualitySample>,
    /// Verifies the integrity of ICE checks before they reach a connection (`stun_check`).
    crypto: std::sync::Arc<dyn rtc::crypto::RTCCryptoProvider>,
}

/// The core's maps, looked up several times per packet: foldhash (seeded per map, so a client
/// choosing its source addresses cannot aim at collisions) instead of SipHash.
type FastMap<K, V> = foldhash::HashMap<K, V>;

/// A participant whose media connection is not up this long after the first quality snapshot
/// that saw it is counted as a failed join (`ice_timeout`), once.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(15);

/// A participant whose media connection is not up this long after joining the room: the others
/// are told its picture and sound are not arriving (`media_not_arriving`), before a browser
/// gives up and rejoins (about 11 s), so staff hear it while it happens.
pub const MEDIA_ARRIVAL_WAIT: Duration = Duration::from_secs(6);

/// What the previous quality snapshot saw of one peer.
struct QualitySample {
    /// When the first snapshot saw it.
    first_seen: Instant,
    /// It was counted as an ICE timeout.
    timed_out: bool,
    /// When this sample was taken.
    at: Instant,
    /// RTP bytes (header + payload) received from it so far.
    bytes_in: u64,
    /// RTP bytes sent to it so far.
    bytes_out: u64,
}

impl MediaCore {
    /// A core with no peers.
    pub fn new(config: CoreConfig) -> Result<Self, EngineError> {
        Ok(MediaCore {
            lobby: Lobby::new(config.max_peers),
            config,
            factory: PeerFactory::new()?,
            peers: FastMap::default(),
            next_key: 1,
            sessions: FastMap::default(),
            rooms: FastMap::default(),
            by_ufrag: FastMap::default(),
            by_addr: FastMap::default(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            transmits: VecDeque::new(),
            counters: Counters::default(),
            dirty: Vec::new(),
            pending: Vec::new(),
            targets: Vec::new(),
            owed_keyframes: Vec::new(),
            next_bandwidth_check: None,
            layer_keyframes_wanted: Vec::new(),
            quality_samples: FastMap::default(),
            crypto: rtc::crypto::default_provider()
                .map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?,
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a drop that happened outside the core (e.g. the socket refused a send).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.counters.drop(reason);
    }

    /// Counts a datagram the I/O layer sent.
    pub fn count_sent(&mut self, bytes: usize) {
        self.counters.datagrams_out += 1;
        self.counters.bytes_out += bytes as u64;
    }

    /// Rooms with at least one participant.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Participants (peer connections) in this worker.
    pub fn participant_count(&self) -> usize {
        self.peers.len()
    }

    /// Participants waiting for a host's admission in this worker.
    pub fn waiting_count(&self) -> usize {
        self.lobby.len()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next message for signalling or the application.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.outputs.pop_front()
    }

    /// The next instant [`MediaCore::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peer = self.timers.peek().map(|Reverse((t, _))| *t);
        let owed = self.owed_keyframes.iter().map(|(_, _, due)| *due).min();
        [peer, owed, self.next_bandwidth_check]
            .into_iter()
            .flatten()
            .min()
    }

    /// One datagram arrived on the shared port. `dst_ip` is the local address it was sent to,
    /// when the socket reports it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst_ip: Option<IpAddr>,
        payload: BytesMut,
    ) {
        self.read_datagram(now, from, dst_ip, payload);
        self.drain(now);
    }

    /// A batch of datagrams that arrived together (one `recvmmsg`): `(from, dst_ip, payload)`
    /// as for [`MediaCore::handle_datagram`]. They are read into their connections and the
    /// connections drained every [`DRAIN_EVERY`] datagrams and at the end: a publisher's burst
    /// (a video frame) is forwarded, and each subscriber's share encrypted, in one sweep of each
    /// `rtc` pipeline instead of one sweep per packet. The batch's datagrams go out together
    /// anyway. A STUN check is drained at once, so the address it binds routes the rest of the
    /// batch.
    pub fn handle_datagrams(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = (SocketAddr, Option<IpAddr>, BytesMut)>,
    ) {
        let mut undrained = 0;
        for (from, dst_ip, payload) in datagrams {
            undrained += 1;
            if self.read_datagram(now, from, dst_ip, payload) == DatagramKind::Stun
                || undrained == DRAIN_EVERY
            {
                self.drain(now);
                undrained = 0;
            }
        }
        self.drain(now);
    }

    /// Hands one datagram to its peer's connection (or holds or drops it) and marks the peer
    /// for draining. Returns the datagram's kind.
    fn read_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst_ip: Option<IpAddr>,
        payload: BytesMut,
    ) -> DatagramKind {
        self.counters.datagrams_in += 1;
        self.counters.bytes_in += payload.len() as u64;
        let kind = classify(&payload);
        if kind == DatagramKind::Unknown {
            self.counters.drop(DropReason::Malformed);
            return kind;
        }
        let key = match self.by_addr.get(&from) {
            Some(key) => *key,
            None => {
                if kind != DatagramKind::Stun {
                    self.counters.drop(DropReason::UnknownSource);
                    return kind;
                }
                match binding_request_ufrag(&payload).and_then(|u| self.by_ufrag.get(&u)) {
                    Some(key) => *key,
                    None => {
                        self.counters.drop(DropReason::UnknownUfrag);
                        return kind;
                    }
                }
            }
        };
        let local_addr = self.local_addr_for(dst_ip);
        let Some(peer) = self.peers.get_mut(&key) else {
            self.counters.drop(DropReason::UnknownSource);
            return kind;
        };
        let credentials = LiveCredentials {
            local_ufrag: &peer.ufrag,
            local_pwd: &peer.ice_pwd,
            remote_pwd: &peer.remote_ice_pwd,
        };
        if kind == DatagramKind::Stun
            && let Err(refusal) = check_binding(&payload, credentials, self.crypto.crypto())
        {
            self.counters.drop(match refusal {
                StunRefusal::BadIntegrity => DropReason::StunBadIntegrity,
                StunRefusal::Malformed => DropReason::StunMalformed,
            });
            return kind;
        }
        let transport = TransportContext {
            local_addr,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        };
        if !peer.answered {
            // A check that beat the client's answer: `rtc` would refuse it (no remote
            // credentials yet) and the client would retry only at its next tick. Held and fed
            // to the connection right after the answer (`early_checks`).
            let dropped = peer.early_checks.hold(EarlyCheck {
                at: now,
                transport,
                datagram: payload,
            });
            self.counters.drop_many(DropReason::EarlyCheck, dropped);
            return kind;
        }
        let read = peer.pc.handle_read(TaggedBytesMut {
            now,
            transport,
            message: payload,
        });
        // A refusal inside the connection's pipeline (bad SRTP authentication, a broken DTLS
        // record) is counted there, not returned (vendored `rtc` patch).
        let refused = peer.pc.take_read_errors() + u64::from(read.is_err());
        self.counters
            .drop_many(DropReason::PeerRejected, refused as usize);
        self.mark_dirty(key);
        kind
    }

    /// A command from signalling.
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Join {
                session,
                grant,
                publish,
            } => self.join(now, session, grant, publish),
            Command::Answer {
                session,
                sdp,
                revision,
            } => self.answer(now, session, sdp, revision),
            Command::Candidate { session, candidate } => self.candidate(session, candidate),
            Command::Publish { session, publish } => self.publish(now, session, publish),
            Command::RestartIce { session } => self.restart_ice(now, session),
            Command::Mute { session, muted } => self.mute(session, muted),
            Command::Chat { session, text, at } => self.chat(session, text, at),
            Command::Leave { session, reason } => {
                if let Some(key) = self.sessions.get(&session).copied() {
                    self.remove_peer(now, key, reason, None);
                } else if let Some(waiting) = self.lobby.remove_session(session) {
                    self.left_lobby(&waiting, reason);
                }
            }
            Command::Admit {
                session,
                participant,
            } => self.admit(now, session, participant),
            Command::Deny {
                session,
                participant,
            } => self.deny(session, participant),
            Command::RemoveParticipant {
                room,
                participant,
                reason,
            } => self.remove_participant(now, room, participant, reason),
            Command::CloseRoom { room, reason } => {
                let members = self.rooms.get(&room).cloned().unwrap_or_default();
                for key in members {
                    self.remove_peer(now, key, LeaveReason::Removed, Some(reason));
                }
                for waiting in self.lobby.close_room(room) {
                    self.signal(waiting.session, ServerMessage::Ended { reason });
                    self.outputs
                        .push_back(CoreOutput::Close(waiting.session, SessionClose::NORMAL));
                    self.room_left_event(&waiting, LeaveReason::Removed);
                }
            }
        }
        self.drain(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((deadline, key))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.armed != Some(deadline) {
                continue; // superseded by an earlier registration
            }
            peer.armed = None;
            if let Err(err) = peer.pc.handle_timeout(now) {
                tracing::debug!(peer = %key, %err, "timeout handling failed");
            }
            self.mark_dirty(key);
        }
        let mut owed = std::mem::take(&mut self.owed_keyframes);
        owed.retain(|(publisher, track, due)| {
            if *due <= now {
                self.send_keyframe_request(now, *publisher, track);
                false
            } else {
                true
            }
        });
        owed.append(&mut self.owed_keyframes);
        self.owed_keyframes = owed;
        if self.next_bandwidth_check.is_some_and(|due| due <= now) {
            self.check_bandwidth(now);
        }
        self.drain(now);
    }

    // ---- quality --------------------------------------------------------------------------

    /// A quality snapshot of the rooms in `slice` and their participants, for operations.
    /// Meant to cover each room about once a second (bit rates are over the time since the
    /// room's previous sample). Reads the report probe's cells (round trip, loss, jitter, bytes
    /// and feedback counters; never `rtc`'s `get_stats`, which cost ~75 µs per connection) and
    /// the GCC estimate. No display names.
    pub fn quality_snapshot(&mut self, now: Instant, slice: QualitySlice) -> Vec<RoomQuality> {
        let mut rooms = Vec::new();
        for (room, members) in &self.rooms {
            if !slice.contains(*room) {
                continue;
            }
            let mut participants = Vec::with_capacity(members.len());
            let mut oldest = now;
            for key in members {
                let Some(peer) = self.peers.get_mut(key) else {
                    continue;
                };
                let r = peer.rtcp_reports.read();
                let (bytes_in, bytes_out) = (r.rtp_bytes_in, r.rtp_bytes_out);
                let previous = self.quality_samples.insert(
                    *key,
                    QualitySample {
                        first_seen: now,
                        timed_out: false,
                        at: now,
                        bytes_in,
                        bytes_out,
                    },
                );
                let (bitrate_in_kbps, bitrate_out_kbps) = match &previous {
                    Some(p) => {
                        let elapsed = now.saturating_duration_since(p.at);
                        (
                            kbps(bytes_in.saturating_sub(p.bytes_in), elapsed),
                            kbps(bytes_out.saturating_sub(p.bytes_out), elapsed),
                        )
                    }
                    None => (0.0, 0.0),
                };
                if let Some(p) = previous
                    && let Some(sample) = self.quality_samples.get_mut(key)
                {
                    sample.first_seen = p.first_seen;
                    sample.timed_out = p.timed_out;
                    oldest = oldest.min(p.first_seen);
                    if !peer.connected
                        && !p.timed_out
                        && now.saturating_duration_since(p.first_seen) >= ICE_TIMEOUT
                    {
                        sample.timed_out = true;
                        self.counters.ice_timeouts += 1;
                    }
                }
                let ms =
                    |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0);
                let worst = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let rtt_ms = ms(r.rtt);
                let jitter_ms = worst(ms(r.down_jitter), ms(r.up_jitter));
                let loss_pct = worst(r.down_loss, r.up_loss).map(|f| (f * 1000.0).round() / 10.0);
                let video_paused = peer.fallback.is_paused();
                let layer = peer
                    .subscriptions
                    .iter()
                    .filter_map(|s| s.layers.as_ref().and_then(LayerSelector::current))
                    .max()
                    .and_then(|l| LAYER_RIDS.get(l).copied());
                participants.push(ParticipantQuality {
                    participant_id: peer.info.id,
                    role: peer.info.role,
                    state: if peer.connected {
                        LinkState::Connected
                    } else {
                        LinkState::Connecting
                    },
                    quality: crate::media::quality::classify(
                        peer.connected,
                        loss_pct,
                        rtt_ms,
                        jitter_ms,
                        video_paused,
                    ),
                    rtt_ms,
                    jitter_ms,
                    loss_pct,
                    bitrate_in_kbps,
                    bitrate_out_kbps,
                    estimate_kbps: peer.estimate.get().map(|bps| (bps / 100) as f64 / 10.0),
                    layer,
                    video_paused,
                    nacks_received: r.nacks,
                    keyframe_requests_received: r.keyframe_requests,
                    nacks_sent: r.nacks_sent,
                    plis_sent: r.keyframe_requests_sent,
                });
            }
            rooms.push(RoomQuality {
                room: *room,
                age: now.saturating_duration_since(oldest),
                participants,
            });
        }
        let peers = &self.peers;
        self.quality_samples
            .retain(|key, _| peers.contains_key(key));
        rooms.sort_by_key(|r| std::cmp::Reverse(r.age));
        rooms
    }

    // ---- bandwidth -----------------------------------------------------------------------

    /// Looks at every connected subscriber's estimate and pauses or resumes its video.
    fn check_bandwidth(&mut self, now: Instant) {
        self.next_bandwidth_check =
            (!self.peers.is_empty()).then(|| now + BANDWIDTH_CHECK_INTERVAL);
        let mut changes: Vec<(PeerKey, Transition)> = Vec::new();
        let mut layer_requests: Vec<(PeerKey, String, usize)> = Vec::new();
        let mut not_arriving: Vec<(PeerKey, RoomId, crate::ids::ParticipantId)> = Vec::new();
        for (key, peer) in &mut self.peers {
            if !peer.connected {
                if !peer.told_not_arriving
                    && now.saturating_duration_since(peer.joined_at) >= MEDIA_ARRIVAL_WAIT
                {
                    peer.told_not_arriving = true;
                    not_arriving.push((*key, peer.room, peer.info.id));
                }
                continue;
            }
            let estimate = peer.estimate.get();
            if let Some(t) = peer.fallback.update(now, estimate) {
                // Nothing is resent to a subscriber whose video is paused.
                peer.nacks.set_closed(t == Transition::Pause);
                changes.push((*key, t));
            }
            for subscription in &mut peer.subscriptions {
                if let Some(layer) = subscription
                    .layers
                    .as_mut()
                    .and_then(|selector| selector.choose(estimate))
                {
                    layer_requests.push((
                        subscription.publisher,
                        subscription.source_track.clone(),
                        layer,
                    ));
                }
            }
        }
        for (publisher, track, layer) in layer_requests {
            self.request_layer_keyframe(now, publisher, &track, layer);
        }
        for (key, room, participant_id) in not_arriving {
            tracing::info!(peer = %key, "media not arriving");
            self.signal_room(
                room,
                key,
                &ServerMessage::MediaNotArriving { participant_id },
            );
        }
        for (key, transition) in changes {
            let Some(peer) = self.peers.get(&key) else {
                continue;
            };
            let session = peer.session;
            let sources: Vec<(PeerKey, String)> = peer
                .subscriptions
                .iter()
                .filter(|s| s.kind == RtpCodecKind::Video)
                .map(|s| (s.publisher, s.source_track.clone()))
                .collect();
            let mut publishers: Vec<crate::ids::ParticipantId> = Vec::new();
            for (publisher, _) in &sources {
                if let Some(id) = self.peers.get(publisher).map(|p| p.info.id)
                    && !publishers.contains(&id)
                {
                    publishers.push(id);
                }
            }
            tracing::info!(peer = %key, ?transition, estimate = ?self.peers.get(&key).and_then(|p| p.estimate.get()), "audio-only fallback");
            match transition {
                Transition::Pause => {
                    self.counters.video_pauses += 1;
                    for participant_id in publishers {
                        self.signal(
                            session,
                            ServerMessage::VideoPaused {
                                participant_id,
                                reason: VideoPauseReason::LowBandwidth,
                            },
                        );
                    }
                }
                Transition::Resume => {
                    self.counters.video_resumes += 1;
                    // Video restarts at the next keyframe, numbered on from where it stopped.
                    if let Some(peer) = self.peers.get_mut(&key) {
                        for subscription in &mut peer.subscriptions {
                            if subscription.kind == RtpCodecKind::Video {
                                subscription.awaiting_keyframe = true;
                                if let Some(selector) = subscription.layers.as_mut() {
                                    selector.restart();
                                }
                            }
                        }
                    }
                    for participant_id in publishers {
                        self.signal(session, ServerMessage::VideoResumed { participant_id });
                    }
                    for (publisher, track) in sources {
                        self.request_keyframe(now, publisher, &track);
                    }
                }
            }
        }
    }

    fn local_addr_for(&self, dst_ip: Option<IpAddr>) -> SocketAddr {
        let first = self
            .config
            .local_addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        match dst_ip {
            Some(ip) => self
                .config
                .local_addrs
                .iter()
                .find(|a| a.ip() == ip)
                .copied()
                .unwrap_or(first),
            None => first,
        }
    }

    fn mark_dirty(&mut self, key: PeerKey) {
        if !self.dirty.contains(&key) {
            self.dirty.push(key);
        }
    }

    fn signal(&mut self, session: SessionId, message: ServerMessage) {
        self.outputs.push_back(CoreOutput::Signal(session, message));
    }

    fn signal_room(&mut self, room: RoomId, except: PeerKey, message: &ServerMessage) {
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        for key in members {
            if key == except {
                continue;
            }
            if let Some(peer) = self.peers.get(&key) {
                let session = peer.session;
                self.signal(session, message.clone());
            }
        }
    }

    // ---- joining and leaving -------------------------------------------------------------

    fn join(&mut self, now: Instant, session: SessionId, grant: JoinGrant, publish: Publish) {
        if self.sessions.contains_key(&session) || self.lobby.by_session_mut(session).is_some() {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::AlreadyJoined, "already joined"),
            );
            return;
        }
        // The same participant waiting from another session (a reconnect while waiting): the
        // new session takes its place.
        if let Some(old) = self.lobby.remove_participant(grant.room, grant.participant) {
            self.signal(
                old.session,
                ServerMessage::Ended {
                    reason: EndReason::Replaced,
                },
            );
            self.outputs
                .push_back(CoreOutput::Close(old.session, SessionClose::NORMAL));
            self.left_lobby(&old, LeaveReason::Replaced);
        }
        if self.needs_to_wait(&grant) {
            match grant.admitted_by {
                Some(by) => self.enter_admitted(now, session, grant, publish, by),
                None => self.wait(now, session, grant, publish),
            }
            return;
        }
        self.enter_room(now, session, grant, publish);
    }

    /// A participant the application admitted on a host's behalf: straight into the room,
    /// remembered as admitted (a rejoin skips the lobby too) and reported as admitted by
    /// that host.
    fn enter_admitted(
        &mut self,
        now: Instant,
        session: SessionId,
        grant: JoinGrant,
        publish: Publish,
        by: crate::ids::ParticipantId,
    ) {
        let (room, participant, role) = (grant.room, grant.participant, grant.role);
        let admitted = grant.clone();
        self.enter_room(now, session, grant, publish);
        if self.sessions.contains_key(&session) {
            tracing::info!(%room, %participant, %by, "admitted on a host's behalf");
            self.lobby.remember_admitted(&admitted);
            self.outputs
                .push_back(CoreOutput::Room(RoomEvent::ParticipantAdmitted {
                    room,
                    participant,
                    role,
                    by,
                }));
        }
    }

    /// Whether this join goes to the waiting room: the application asked for admission, the
    /// participant is no host, and no host admitted them to this room before with the same
    /// credential (a rejoin after a network cut, or a second device on the same link while
    /// they are in the call, goes straight in; a re-issued link's holder waits).
    fn needs_to_wait(&self, grant: &JoinGrant) -> bool {
        grant.needs_admission
            && grant.role != RoomRole::Host
            && !self.lobby.was_admitted(grant)
            && !self.rooms.get(&grant.room).is_some_and(|members| {
                members.iter().any(|k| {
                    self.peers.get(k).is_some_and(|p| {
                        p.info.id == grant.participant && p.credential == grant.credential
                    })
                })
            })
    }

    /// Puts a session in its room's waiting room: `waiting` to it, `participant_waiting` to the
    /// hosts present, an event for the application. No peer connection yet.
    fn wait(&mut self, now: Instant, session: SessionId, grant: JoinGrant, publish: Publish) {
        let waiting = Waiting {
            session,
            grant,
            publish,
            muted: Muted::default(),
            since: now,
        };
        let info = waiting.info();
        let room = waiting.grant.room;
        match self.lobby.enter(waiting) {
            Ok(()) => {}
            Err(LobbyFull::Room) => {
                self.refuse(session, ErrorCode::RoomFull, "the waiting room is full");
                return;
            }
            Err(LobbyFull::Worker) => {
                self.refuse(session, ErrorCode::ServerBusy, "media worker is full");
                return;
            }
        }
        self.signal(
            session,
            ServerMessage::Waiting {
                room,
                you: info.clone(),
            },
        );
        self.signal_hosts(
            room,
            &ServerMessage::ParticipantWaiting {
                participant: info.clone(),
            },
        );
        self.outputs
            .push_back(CoreOutput::Room(RoomEvent::ParticipantWaiting {
                room,
                participant: info.id,
                role: info.role,
            }));
    }

    /// Sends a message to every host in the room.
    fn signal_hosts(&mut self, room: RoomId, message: &ServerMessage) {
        let hosts: Vec<SessionId> = self
            .rooms
            .get(&room)
            .into_iter()
            .flatten()
            .filter_map(|k| self.peers.get(k))
            .filter(|p| p.info.role == RoomRole::Host)
            .map(|p| p.session)
            .collect();
        for session in hosts {
            self.signal(session, message.clone());
        }
    }

    /// A waiting participant is gone from the lobby: hosts and the application hear it.
    fn left_lobby(&mut self, waiting: &Waiting, reason: LeaveReason) {
        self.signal_hosts(
            waiting.grant.room,
            &ServerMessage::ParticipantLeft {
                participant_id: waiting.grant.participant,
                reason,
            },
        );
        self.room_left_event(waiting, reason);
    }

    fn room_left_event(&mut self, waiting: &Waiting, reason: LeaveReason) {
        self.outputs
            .push_back(CoreOutput::Room(RoomEvent::ParticipantLeft {
                room: waiting.grant.room,
                participant: waiting.grant.participant,
                role: waiting.grant.role,
                reason,
            }));
    }

    /// The host in `session`, if it is one; otherwise tells the session why not.
    fn host_room(&mut self, session: SessionId) -> Option<RoomId> {
        let Some(peer) = self.sessions.get(&session).and_then(|k| self.peers.get(k)) else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return None;
        };
        if peer.info.role != RoomRole::Host {
            // Refused, but not fatal: a citizen is not thrown out of the call for this.
            self.signal(
                session,
                ServerMessage::Error {
                    code: ErrorCode::Forbidden,
                    message: "only a host can admit or deny".into(),
                    fatal: false,
                },
            );
            return None;
        }
        Some(peer.room)
    }

    fn unknown_waiting(&mut self, session: SessionId) {
        self.signal(
            session,
            ServerMessage::error(
                ErrorCode::UnknownParticipant,
                "nobody with that id waits in this room",
            ),
        );
    }

    fn admit(&mut self, now: Instant, session: SessionId, participant: crate::ids::ParticipantId) {
        let Some(room) = self.host_room(session) else {
            return;
        };
        let Some(host) = self
            .sessions
            .get(&session)
            .and_then(|k| self.peers.get(k))
            .map(|p| p.info.id)
        else {
            return;
        };
        let Some(waiting) = self.lobby.remove_participant(room, participant) else {
            self.unknown_waiting(session);
            return;
        };
        tracing::info!(%room, %participant, waited = ?now.saturating_duration_since(waiting.since), "admitted from the waiting room");
        self.lobby.remember_admitted(&waiting.grant);
        let guest = waiting.session;
        self.enter_room(now, guest, waiting.grant.clone(), waiting.publish);
        if let Some(key) = self.sessions.get(&guest).copied() {
            if waiting.muted != Muted::default() {
                self.mute(guest, waiting.muted);
            }
            self.mark_dirty(key);
            self.outputs
                .push_back(CoreOutput::Room(RoomEvent::ParticipantAdmitted {
                    room,
                    participant,
                    role: waiting.grant.role,
                    by: host,
                }));
        } else {
            // Refused on the way in (room or worker full): the hosts' list must not keep them.
            self.left_lobby(&waiting, LeaveReason::Removed);
        }
    }

    fn deny(&mut self, session: SessionId, participant: crate::ids::ParticipantId) {
        let Some(room) = self.host_room(session) else {
            return;
        };
        let Some(waiting) = self.lobby.remove_participant(room, participant) else {
            self.unknown_waiting(session);
            return;
        };
        tracing::info!(%room, %participant, "denied from the waiting room");
        self.signal(
            waiting.session,
            ServerMessage::Ended {
                reason: EndReason::Denied,
            },
        );
        self.outputs
            .push_back(CoreOutput::Close(waiting.session, SessionClose::NORMAL));
        self.left_lobby(&waiting, LeaveReason::Denied);
    }

    /// Takes `participant` out of `room`: out of the call or out of the waiting room.
    fn remove_participant(
        &mut self,
        now: Instant,
        room: RoomId,
        participant: crate::ids::ParticipantId,
        reason: EndReason,
    ) {
        self.lobby.forget_admitted(room, participant);
        let member = self.rooms.get(&room).and_then(|members| {
            members
                .iter()
                .copied()
                .find(|k| self.peers.get(k).is_some_and(|p| p.info.id == participant))
        });
        if let Some(key) = member {
            tracing::info!(%room, %participant, ?reason, "participant removed from the call");
            self.remove_peer(now, key, LeaveReason::Removed, Some(reason));
        }
        if let Some(waiting) = self.lobby.remove_participant(room, participant) {
            tracing::info!(%room, %participant, ?reason, "participant removed from the waiting room");
            self.signal(waiting.session, ServerMessage::Ended { reason });
            self.outputs
                .push_back(CoreOutput::Close(waiting.session, SessionClose::NORMAL));
            self.left_lobby(&waiting, LeaveReason::Removed);
        }
    }

    /// Builds the peer connection and enters the room (a join that needs no admission, or an
    /// admitted one).
    fn enter_room(&mut self, now: Instant, session: SessionId, grant: JoinGrant, publish: Publish) {
        // The same participant joining again replaces their old session (a reconnect, or a
        // second device): one participant, one connection.
        let existing = self.rooms.get(&grant.room).and_then(|members| {
            members.iter().copied().find(|k| {
                self.peers
                    .get(k)
                    .is_some_and(|p| p.info.id == grant.participant)
            })
        });
        if let Some(old) = existing {
            self.remove_peer(now, old, LeaveReason::Replaced, Some(EndReason::Replaced));
        }
        let room_size = self.rooms.get(&grant.room).map_or(0, Vec::len);
        if room_size >= self.config.max_participants_per_room {
            self.refuse(session, ErrorCode::RoomFull, "the room is full");
            return;
        }
        if self.peers.len() >= self.config.max_peers {
            self.refuse(session, ErrorCode::ServerBusy, "media worker is full");
            return;
        }

        let key = PeerKey(self.next_key);
        self.next_key += 1;
        let (mut pc, estimate, rtcp_reports, nacks) =
            match self.factory.build(now, self.config.fallback.floor_bps / 2) {
                Ok(built) => built,
                Err(err) => {
                    tracing::error!(%err, "could not create a peer connection");
                    self.refuse(session, ErrorCode::Internal, "could not create connection");
                    return;
                }
            };
        if let Err(err) = self.add_local_candidates(&mut pc) {
            tracing::error!(%err, "could not add local candidates");
            self.refuse(session, ErrorCode::Internal, "could not create connection");
            return;
        }
        let mut inbound = Inbound::default();
        for (wanted, kind, slot) in [
            (publish.audio, RtpCodecKind::Audio, &mut inbound.audio),
            (publish.video, RtpCodecKind::Video, &mut inbound.video),
        ] {
            if wanted {
                match pc.add_transceiver_from_kind(kind, Some(recvonly())) {
                    Ok(id) => *slot = Some(id),
                    Err(err) => tracing::warn!(%err, "could not add a receiving transceiver"),
                }
            }
        }

        let info = ParticipantInfo {
            id: grant.participant,
            role: grant.role,
            display_name: grant.display_name.clone(),
            muted: Muted::default(),
        };
        let others: Vec<PeerKey> = self.rooms.get(&grant.room).cloned().unwrap_or_default();
        let participants = others
            .iter()
            .filter_map(|k| self.peers.get(k).map(|p| p.info.clone()))
            .collect();
        let waiting = if grant.role == RoomRole::Host {
            self.lobby
                .waiting_in(grant.room)
                .iter()
                .map(Waiting::info)
                .collect()
        } else {
            Vec::new()
        };

        // The ufrag routes first contact once the first offer has made it known (`send_offer`).
        self.sessions.insert(session, key);
        self.rooms.entry(grant.room).or_default().push(key);
        self.peers.insert(
            key,
            Peer {
                session,
                room: grant.room,
                info: info.clone(),
                credential: grant.credential,
                publish,
                pc,
                ufrag: String::new(),
                ice_pwd: String::new(),
                joined_at: now,
                told_not_arriving: false,
                remote_ice_pwd: String::new(),
                remote_candidates: Default::default(),
                restarts: RestartBudget::new(now),
                addrs: Vec::new(),
                negotiation: Default::default(),
                answered: false,
                early_checks: Default::default(),
                connected: false,
                armed: None,
                publications: Vec::new(),
                subscriptions: Vec::new(),
                inbound,
                next_track: 0,
                estimate,
                fallback: Fallback::new(self.config.fallback),
                nacks,
                rtcp_reports,
            },
        );
        if self.next_bandwidth_check.is_none() {
            self.next_bandwidth_check = Some(now + BANDWIDTH_CHECK_INTERVAL);
        }
        // Receive what the others already publish.
        for other in &others {
            let tracks: Vec<(String, RtpCodecKind)> = self
                .peers
                .get(other)
                .map(|p| {
                    p.publications
                        .iter()
                        .map(|publication| (publication.track_id.clone(), publication.kind))
                        .collect()
                })
                .unwrap_or_default();
            for (track, kind) in tracks {
                self.subscribe(key, *other, &track, kind);
            }
        }

        self.signal(
            session,
            ServerMessage::Joined {
                protocol: crate::protocol::PROTOCOL_VERSION,
                you: info.clone(),
                room: grant.room,
                participants,
                waiting,
                // Filled in by signalling from the application (see `JoinAuthorizer`).
                ice_servers: Vec::new(),
            },
        );
        self.signal_room(
            grant.room,
            key,
            &ServerMessage::ParticipantJoined {
                participant: info.clone(),
            },
        );
        self.outputs
            .push_back(CoreOutput::Room(RoomEvent::ParticipantJoined {
                room: grant.room,
                participant: info.id,
                role: info.role,
            }));
        self.request_negotiation(now, key);
        self.mark_dirty(key);
    }

    fn refuse(&mut self, session: SessionId, code: ErrorCode, message: &str) {
        self.signal(session, ServerMessage::error(code, message));
        let close = if code == ErrorCode::Internal || code == ErrorCode::ServerBusy {
            SessionClose::SERVER_ERROR
        } else {
            SessionClose::POLICY
        };
        self.outputs.push_back(CoreOutput::Close(session, close));
    }

    fn add_local_candidates(
        &self,
        pc: &mut rtc::peer_connection::RTCPeerConnection,
    ) -> Result<(), rtc::shared::error::Error> {
        for addr in &self.config.local_addrs {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()?;
            pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        }
        pc.add_local_candidate(RTCIceCandidateInit::default())
    }

    /// Removes a peer: tells the others, renegotiates their connections, closes its own, and
    /// when `end` is given tells its session why and closes it.
    fn remove_peer(
        &mut self,
        now: Instant,
        key: PeerKey,
        reason: LeaveReason,
        end: Option<EndReason>,
    ) {
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        self.counters
            .drop_many(DropReason::EarlyCheck, peer.early_checks.len());
        if self.by_ufrag.get(&peer.ufrag) == Some(&key) {
            self.by_ufrag.remove(&peer.ufrag);
        }
        for addr in &peer.addrs {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        self.sessions.remove(&peer.session);
        self.owed_keyframes.retain(|(p, _, _)| *p != key);
        self.dirty.retain(|k| *k != key);

        let room = peer.room;
        let mut room_now_empty = false;
        if let Some(members) = self.rooms.get_mut(&room) {
            members.retain(|k| *k != key);
            room_now_empty = members.is_empty();
        }
        let others = self.rooms.get(&room).cloned().unwrap_or_default();
        for other in others {
            let changed = self.unsubscribe_all_from(other, key);
            if changed {
                self.request_negotiation(now, other);
            }
            if let Some(o) = self.peers.get(&other) {
                let session = o.session;
                self.signal(
                    session,
                    ServerMessage::ParticipantLeft {
                        participant_id: peer.info.id,
                        reason,
                    },
                );
            }
        }

        // Close its connection and flush the DTLS close_notify, so the client learns at once.
        let _ = peer.pc.close();
        while let Some(out) = peer.pc.poll_write() {
            self.transmits.push_back(Transmit {
                to: out.transport.peer_addr,
                from: out.transport.local_addr,
                payload: out.message,
            });
        }
        if let Some(end) = end {
            self.signal(peer.session, ServerMessage::Ended { reason: end });
            self.outputs
                .push_back(CoreOutput::Close(peer.session, SessionClose::NORMAL));
        }
        self.outputs
            .push_back(CoreOutput::Room(RoomEvent::ParticipantLeft {
                room,
                participant: peer.info.id,
                role: peer.info.role,
                reason,
            }));
        if room_now_empty {
            self.rooms.remove(&room);
            self.outputs
                .push_back(CoreOutput::Room(RoomEvent::RoomClosed { room }));
        }
    }

    // ---- negotiation ---------------------------------------------------------------------

    fn request_negotiation(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // An offer without media sections is not valid SDP: a participant who sends nothing
        // and has nothing to receive yet gets its first offer when there is something.
        if peer.pc.get_transceivers().next().is_none() {
            return;
        }
        if peer.negotiation.request() {
            self.send_offer(now, key);
        }
    }

    fn send_offer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let options = peer
            .negotiation
            .next_offer_restarts()
            .then_some(RTCOfferOptions { ice_restart: true });
        // Applying an ICE restart offer installs its fresh credentials at once: checks with the
        // old ufrag fail integrity from now on.
        let offer = peer
            .pc
            .create_offer(options)
            .and_then(|offer| peer.pc.set_local_description(now, offer));
        // `rtc` refuses a local description other than the offer it created, so simulcast
        // reception is added to the text the client gets only; the answer's rids are what
        // `rtc` binds the layers by.
        let sdp = peer.pc.local_description().map(|d| {
            if self.config.simulcast {
                crate::media::simulcast::offer_simulcast_recv(&d.sdp)
            } else {
                d.sdp
            }
        });
        match (offer, sdp) {
            (Ok(()), Some(sdp)) => {
                // First contact is routed by the ufrag of the current ICE session only: a new
                // one (the first offer, an ICE restart) replaces the old in the routing table.
                if let Some(ufrag) = local_ufrag(&sdp)
                    && ufrag != peer.ufrag
                {
                    if self.by_ufrag.get(&peer.ufrag) == Some(&key) {
                        self.by_ufrag.remove(&peer.ufrag);
                    }
                    peer.ufrag = ufrag.to_owned();
                    self.by_ufrag.insert(peer.ufrag.clone(), key);
                    // A new ICE session: the client trickles its candidates afresh.
                    peer.remote_candidates.reset();
                }
                if let Some(pwd) = local_ice_pwd(&sdp) {
                    pwd.clone_into(&mut peer.ice_pwd);
                }
                let revision = peer.negotiation.offer_sent();
                let session = peer.session;
                self.signal(session, ServerMessage::Offer { sdp, revision });
                self.mark_dirty(key);
            }
            (result, _) => {
                tracing::error!(peer = %key, ?result, "could not create an offer");
                let session = peer.session;
                self.refuse(session, ErrorCode::Internal, "could not create an offer");
                self.remove_peer(now, key, LeaveReason::Disconnected, None);
            }
        }
    }

    fn answer(&mut self, now: Instant, session: SessionId, sdp: String, revision: u32) {
        let Some(key) = self.sessions.get(&session).copied() else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.negotiation.judge_answer(revision) == AnswerVerdict::Stale {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::StaleRevision, "answer to an old offer"),
            );
            return;
        }
        let remote_pwd = local_ice_pwd(&sdp).map(str::to_owned);
        let applied = RTCSessionDescription::answer(sdp)
            .and_then(|answer| peer.pc.set_remote_description(now, answer));
        if let Err(err) = applied {
            tracing::info!(peer = %key, %err, "answer refused");
            let offer = peer.pc.local_description().map(|d| d.sdp);
            self.signal(
                session,
                ServerMessage::error(ErrorCode::BadSdp, format!("answer not applied: {err}")),
            );
            if let Some(sdp) = offer {
                self.signal(session, ServerMessage::Offer { sdp, revision });
            }
            return;
        }
        if let Some(pwd) = remote_pwd {
            peer.remote_ice_pwd = pwd; // the client's responses to consent checks are signed with it
        }
        let wanted = peer.negotiation.answer_applied();
        if !peer.answered {
            peer.answered = true;
            // The client's first checks may have come before its answer: answer them now.
            let (held, expired) = peer.early_checks.release(now);
            self.counters.drop_many(DropReason::EarlyCheck, expired);
            for check in held {
                let read = peer.pc.handle_read(TaggedBytesMut {
                    now,
                    transport: check.transport,
                    message: check.datagram,
                });
                if read.is_ok() {
                    self.counters.early_checks_replayed += 1;
                } else {
                    self.counters.drop(DropReason::PeerRejected);
                }
            }
        }
        let newly_active = self.activate_subscriptions(key);
        if self.peers.get(&key).is_some_and(|p| p.connected) {
            for (publisher, track) in newly_active {
                self.request_keyframe(now, publisher, &track);
            }
        }
        if wanted {
            self.send_offer(now, key);
        }
        self.mark_dirty(key);
    }

    /// The client asks for an ICE restart. Bounded per participant ([`RestartBudget`]); a
    /// restart already on its way to the client absorbs a second ask; with an offer
    /// outstanding it waits for the answer like any renegotiation.
    fn restart_ice(&mut self, now: Instant, session: SessionId) {
        let Some(key) = self.sessions.get(&session).copied() else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // Nothing offered yet means no ICE session to restart; the first offer is on its way.
        if peer.ufrag.is_empty() || peer.negotiation.restart_under_way() {
            return;
        }
        if !peer.restarts.allow(now) {
            self.counters.ice_restarts_refused += 1;
            self.signal(
                session,
                ServerMessage::error(
                    ErrorCode::RateLimited,
                    "too many ICE restarts; wait a moment",
                ),
            );
            return;
        }
        self.counters.ice_restarts += 1;
        tracing::debug!(peer = %key, "ICE restart requested");
        if peer.negotiation.request_restart() {
            self.send_offer(now, key);
        }
        self.mark_dirty(key);
    }

    fn candidate(&mut self, session: SessionId, candidate: ClientCandidate) {
        let Some(peer) = self
            .sessions
            .get(&session)
            .and_then(|k| self.peers.get_mut(k))
        else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return;
        };
        // Bounded and deduplicated (`candidates`): whatever a client sends, its connection's
        // agent holds at most a handful, so no candidate costs more than a small constant.
        match peer.remote_candidates.admit(&candidate.candidate) {
            CandidateVerdict::Add => {}
            CandidateVerdict::EndOfCandidates => return,
            CandidateVerdict::Ignore => {
                self.counters.drop(DropReason::CandidateIgnored);
                return;
            }
            CandidateVerdict::OverLimit => {
                self.counters.drop(DropReason::CandidateOverLimit);
                if !peer.remote_candidates.told_over_limit {
                    peer.remote_candidates.told_over_limit = true;
                    self.signal(
                        session,
                        ServerMessage::error(
                            ErrorCode::TooManyCandidates,
                            "too many candidates; the rest are ignored",
                        ),
                    );
                }
                return;
            }
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
            ..Default::default()
        };
        if let Err(err) = peer.pc.add_remote_candidate(init) {
            tracing::debug!(%err, "remote candidate ignored");
        }
    }

    fn publish(&mut self, now: Instant, session: SessionId, publish: Publish) {
        if let Some(waiting) = self.lobby.by_session_mut(session) {
            waiting.publish = publish; // used when admitted
            return;
        }
        let Some(key) = self.sessions.get(&session).copied() else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let mut changed = false;
        for (wanted, kind) in [
            (publish.audio, RtpCodecKind::Audio),
            (publish.video, RtpCodecKind::Video),
        ] {
            let slot = match kind {
                RtpCodecKind::Audio => &mut peer.inbound.audio,
                _ => &mut peer.inbound.video,
            };
            match (*slot, wanted) {
                (None, true) => {
                    if let Ok(id) = peer.pc.add_transceiver_from_kind(kind, Some(recvonly())) {
                        *slot = Some(id);
                        changed = true;
                    }
                }
                (Some(id), wanted) => {
                    if let Some(mut transceiver) = peer.pc.rtp_transceiver(id) {
                        let has_send = transceiver.direction().has_send();
                        let direction =
                            RTCRtpTransceiverDirection::from_send_recv(has_send, wanted);
                        if transceiver.direction() != direction {
                            transceiver.set_direction(direction);
                            changed = true;
                        }
                    }
                }
                (None, false) => {}
            }
        }
        peer.publish = publish;
        if changed {
            self.request_negotiation(now, key);
        }
    }

    fn mute(&mut self, session: SessionId, muted: Muted) {
        if let Some(waiting) = self.lobby.by_session_mut(session) {
            waiting.muted = muted; // shown when admitted
            return;
        }
        let Some(key) = self.sessions.get(&session).copied() else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not joined"),
            );
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.info.muted == muted {
            return; // nothing changed: the others are not told again
        }
        peer.info.muted = muted;
        let (room, info) = (peer.room, peer.info.clone());
        self.signal_room(
            room,
            key,
            &ServerMessage::ParticipantUpdated { participant: info },
        );
    }

    /// Relays a chat message to everyone in the sender's room, the sender included. Waiting
    /// guests are not in a room yet and are refused. The text is neither logged nor kept.
    fn chat(&mut self, session: SessionId, text: String, at: u64) {
        let Some((room, from)) = self
            .sessions
            .get(&session)
            .and_then(|key| self.peers.get(key))
            .map(|peer| (peer.room, peer.info.id))
        else {
            self.signal(
                session,
                ServerMessage::error(ErrorCode::NotJoined, "not admitted to the call"),
            );
            return;
        };
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        for key in members {
            if let Some(peer) = self.peers.get(&key) {
                let member = peer.session;
                self.signal(
                    member,
                    ServerMessage::Chat {
                        from,
                        text: text.clone(),
                        at,
                    },
                );
            }
        }
    }

    // ---- subscriptions -------------------------------------------------------------------

    /// Adds a sender for `publisher`'s `track` to `subscriber`'s connection. Negotiation is the
    /// caller's business.
    fn subscribe(
        &mut self,
        subscriber: PeerKey,
        publisher: PeerKey,
        track: &str,
        kind: RtpCodecKind,
    ) {
        let Some(publisher_id) = self.peers.get(&publisher).map(|p| p.info.id) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        if peer.subscription_for(publisher, track).is_some() {
            return;
        }
        peer.next_track += 1;
        let track_id = format!("{publisher_id}-{}", peer.next_track);
        let sender_track = MediaStreamTrack::new(
            publisher_id.to_string(),
            track_id.clone(),
            track_id.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random::<u32>()),
                    // Retransmissions answered from the send cache go out as RTX on their own
                    // SSRC when the subscriber negotiates it (RFC 4588).
                    rtx: (kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters {
                        ssrc: rand::random::<u32>(),
                    }),
                    ..Default::default()
                },
                active: true,
                codec: codec_for(kind),
                ..Default::default()
            }],
        );
        if kind == RtpCodecKind::Video && peer.fallback.is_paused() {
            // Already in audio-only fallback: this video waits for the resume too.
            let session = peer.session;
            self.outputs.push_back(CoreOutput::Signal(
                session,
                ServerMessage::VideoPaused {
                    participant_id: publisher_id,
                    reason: VideoPauseReason::LowBandwidth,
                },
            ));
        }
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        // With simulcast, the relay's receiving video m-lines carry `a=simulcast:recv`, so its
        // sending must stay on m-lines of their own: a shared (sendrecv) m-line would make the
        // client expect rid-tagged packets from the relay too.
        let added = if self.config.simulcast {
            peer.pc
                .add_transceiver_from_track(
                    sender_track,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .map(RTCRtpSenderId::from)
        } else {
            peer.pc.add_track(sender_track)
        };
        match added {
            Ok(sender) => peer.subscriptions.push(Subscription {
                publisher,
                source_track: track.to_owned(),
                sender,
                track_id,
                kind,
                plan: None,
                continuity: Continuity::new(codec_for(kind).clock_rate),
                awaiting_keyframe: false,
                layers: None,
            }),
            Err(err) => tracing::warn!(%err, "could not add a sender"),
        }
    }

    /// Removes every subscription of `subscriber` to `publisher`. Returns whether any existed.
    fn unsubscribe_all_from(&mut self, subscriber: PeerKey, publisher: PeerKey) -> bool {
        self.unsubscribe_where(subscriber, |s| s.publisher == publisher)
    }

    fn unsubscribe_where(
        &mut self,
        subscriber: PeerKey,
        matches: impl Fn(&Subscription) -> bool,
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return false;
        };
        let mut removed = false;
        let mut kept = Vec::with_capacity(peer.subscriptions.len());
        for subscription in peer.subscriptions.drain(..) {
            if matches(&subscription) {
                if let Err(err) = peer.pc.remove_track(subscription.sender) {
                    tracing::debug!(%err, "remove_track failed");
                }
                removed = true;
            } else {
                kept.push(subscription);
            }
        }
        peer.subscriptions = kept;
        removed
    }

    /// After an answer: computes the rewrite plan of every negotiated, not yet active
    /// subscription. Returns the (publisher, track) pairs that just became active.
    fn activate_subscriptions(&mut self, key: PeerKey) -> Vec<(PeerKey, String)> {
        let publisher_extensions: HashMap<(PeerKey, String), Vec<(&'static str, u8)>> = {
            let Some(peer) = self.peers.get(&key) else {
                return Vec::new();
            };
            peer.subscriptions
                .iter()
                .filter(|s| s.plan.is_none())
                .filter_map(|s| {
                    let publisher = self.peers.get(&s.publisher)?;
                    let publication = publisher
                        .publications
                        .iter()
                        .find(|p| p.track_id == s.source_track)?;
                    Some((
                        (s.publisher, s.source_track.clone()),
                        publication.extension_ids.clone(),
                    ))
                })
                .collect()
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        let mut activated = Vec::new();
        for index in 0..peer.subscriptions.len() {
            if peer.subscriptions[index].plan.is_some() {
                continue;
            }
            let sender = peer.subscriptions[index].sender;
            let Some(plan) = rewrite_plan(&mut peer.pc, sender, {
                let s = &peer.subscriptions[index];
                publisher_extensions
                    .get(&(s.publisher, s.source_track.clone()))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            }) else {
                continue;
            };
            let subscription = &mut peer.subscriptions[index];
            subscription.plan = Some(plan);
            activated.push((subscription.publisher, subscription.source_track.clone()));
        }
        activated
    }

    // ---- keyframes -----------------------------------------------------------------------

    /// Asks `publisher` for a keyframe of `track`, at most once per configured interval; a
    /// request inside the interval is owed and sent when it ends.
    fn request_keyframe(&mut self, now: Instant, publisher: PeerKey, track: &str) {
        let interval = self.config.keyframe_request_interval;
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(publication) = peer.publication(track) else {
            return;
        };
        if publication.kind != RtpCodecKind::Video {
            return;
        }
        match publication.last_keyframe_request {
            Some(last) if now < last + interval => {
                if !publication.keyframe_owed {
                    publication.keyframe_owed = true;
                    self.owed_keyframes
                        .push((publisher, track.to_owned(), last + interval));
                }
            }
            _ => self.send_keyframe_request(now, publisher, track),
        }
    }

    fn send_keyframe_request(&mut self, now: Instant, publisher: PeerKey, track: &str) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(publication) = peer.publications.iter_mut().find(|p| p.track_id == track) else {
            return;
        };
        publication.last_keyframe_request = Some(now);
        publication.keyframe_owed = false;
        let receiver = publication.receiver;
        // A simulcast publisher is asked on every layer it sends; otherwise on its one SSRC.
        let ssrcs: Vec<u32> = if publication.layer_ssrcs.iter().any(|s| *s != 0) {
            publication
                .layer_ssrcs
                .iter()
                .copied()
                .filter(|s| *s != 0)
                .collect()
        } else if publication.media_ssrc != 0 {
            vec![publication.media_ssrc]
        } else {
            return;
        };
        self.send_plis(now, publisher, receiver, &ssrcs);
    }

    /// Asks `publisher` for a keyframe of one simulcast layer (a subscriber's pending switch
    /// waits for it). Not throttled: a target changes at most once per bandwidth check.
    fn request_layer_keyframe(
        &mut self,
        now: Instant,
        publisher: PeerKey,
        track: &str,
        layer: usize,
    ) {
        let Some(peer) = self.peers.get(&publisher) else {
            return;
        };
        let Some(publication) = peer.publications.iter().find(|p| p.track_id == track) else {
            return;
        };
        let (receiver, ssrc) = (publication.receiver, publication.layer_ssrcs[layer]);
        if ssrc != 0 {
            self.send_plis(now, publisher, receiver, &[ssrc]);
        }
    }

    fn send_plis(
        &mut self,
        now: Instant,
        publisher: PeerKey,
        receiver: RTCRtpReceiverId,
        ssrcs: &[u32],
    ) {
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if let Some(mut receiver) = peer.pc.rtp_receiver(receiver) {
            let plis: Vec<Box<dyn rtc::rtcp::Packet>> = ssrcs
                .iter()
                .map(|ssrc| {
                    Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: *ssrc,
                    }) as Box<dyn rtc::rtcp::Packet>
                })
                .collect();
            if receiver.write_rtcp(now, plis).is_ok() {
                self.counters.keyframe_requests += 1;
            }
        }
        self.mark_dirty(publisher);
    }

    // ---- draining peers ------------------------------------------------------------------

    /// Drains every dirty peer: outbound datagrams, events, inbound media (forwarded), and
    /// re-arms its timer. Forwarding dirties subscribers, so this loops until quiet.
    fn drain(&mut self, now: Instant) {
        while let Some(key) = self.dirty.pop() {
            let ice_connected = self.drain_events(now, key);
            self.drain_reads(now, key);
            self.forward_pending(now);
            self.drain_writes(key);
            if ice_connected {
                self.flush_dtls_handshake(now, key);
            }
            self.arm(key);
        }
    }

    /// ICE has just selected a pair, and `rtc` has started the DTLS handshake (the relay is the
    /// DTLS client) — but it leaves the ClientHello in its DTLS endpoint until the connection's
    /// next timeout, its ICE check tick up to 200 ms away, which delayed every join by ~200 ms.
    /// A timeout call now moves it out (every other timer of the connection fires only when
    /// due). Called after the connectivity check's response has been drained, so the
    /// ClientHello leaves after it: a client drops DTLS that arrives before its own ICE agent
    /// has seen that response.
    fn flush_dtls_handshake(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Err(err) = peer.pc.handle_timeout(now) {
            tracing::debug!(peer = %key, %err, "flushing the DTLS handshake failed");
        }
        self.drain_writes(key);
    }

    fn drain_writes(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let mut new_addrs: Vec<SocketAddr> = Vec::new();
        while let Some(out) = peer.pc.poll_write() {
            let to = out.transport.peer_addr;
            if !peer.addrs.contains(&to) && !new_addrs.contains(&to) {
                new_addrs.push(to);
            }
            self.transmits.push_back(Transmit {
                to,
                from: out.transport.local_addr,
                payload: out.message,
            });
        }
        for addr in new_addrs {
            self.bind_addr(key, addr);
        }
    }

    /// Routes datagrams from `addr` to peer `key` from now on. Called when the peer's ICE agent
    /// sends to `addr`, which it only does after a check from there passed integrity.
    fn bind_addr(&mut self, key: PeerKey, addr: SocketAddr) {
        if let Some(previous) = self.by_addr.insert(addr, key)
            && previous != key
            && let Some(other) = self.peers.get_mut(&previous)
        {
            other.addrs.retain(|a| *a != addr);
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.addrs.len() >= MAX_ADDRS_PER_PEER {
            let oldest = peer.addrs.remove(0);
            if self.by_addr.get(&oldest) == Some(&key) {
                self.by_addr.remove(&oldest);
            }
        }
        peer.addrs.push(addr);
    }

    /// Handles the peer's events; returns whether its ICE agent has just connected.
    fn drain_events(&mut self, now: Instant, key: PeerKey) -> bool {
        let mut ice_connected = false;
        loop {
            let Some(peer) = self.peers.get_mut(&key) else {
                return ice_connected;
            };
            let Some(event) = peer.pc.poll_event() else {
                return ice_connected;
            };
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.on_track_open(now, key, init.track_id, init.receiver_id);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                    self.on_track_close(now, key, &track_id);
                }
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) => ice_connected = true,
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(peer = %key, %state, "connection state");
                    match state {
                        RTCPeerConnectionState::Connected => self.on_connected(now, key),
                        RTCPeerConnectionState::Failed => {
                            if let Some(session) = self.peers.get(&key).map(|p| p.session) {
                                self.signal(
                                    session,
                                    ServerMessage::error(
                                        ErrorCode::MediaFailed,
                                        "the media connection failed",
                                    ),
                                );
                                self.outputs
                                    .push_back(CoreOutput::Close(session, SessionClose::NORMAL));
                            }
                            self.remove_peer(now, key, LeaveReason::Disconnected, None);
                            return false;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    fn on_connected(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.connected = true;
        if std::mem::take(&mut peer.told_not_arriving) {
            let (room, participant_id) = (peer.room, peer.info.id);
            self.signal_room(room, key, &ServerMessage::MediaArriving { participant_id });
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let wanted: Vec<(PeerKey, String)> = peer
            .subscriptions
            .iter()
            .filter(|s| s.plan.is_some())
            .map(|s| (s.publisher, s.source_track.clone()))
            .collect();
        for (publisher, track) in wanted {
            self.request_keyframe(now, publisher, &track);
        }
    }

    fn on_track_open(
        &mut self,
        now: Instant,
        key: PeerKey,
        track_id: String,
        receiver_id: RTCRtpReceiverId,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver_id) else {
            return;
        };
        let kind = receiver.track().kind();
        let media_ssrc = receiver.track().ssrcs().next().unwrap_or(0);
        let extension_ids = receiver
            .get_parameters()
            .rtp_parameters
            .header_extensions
            .iter()
            .filter_map(|h| {
                let uri = FORWARDED_EXTENSIONS.iter().find(|u| **u == h.uri)?;
                Some((*uri, u8::try_from(h.id).ok()?))
            })
            .collect();
        if peer.publication(&track_id).is_some() {
            return;
        }
        tracing::debug!(peer = %key, %track_id, ?kind, "publication opened");
        peer.publications.push(Publication {
            track_id: track_id.clone(),
            receiver: receiver_id,
            kind,
            media_ssrc,
            extension_ids,
            last_keyframe_request: None,
            keyframe_owed: false,
            layer_ssrcs: [0; 3],
            plain_ssrc: 0,
        });
        let room = peer.room;
        let others: Vec<PeerKey> = self
            .rooms
            .get(&room)
            .map(|m| m.iter().copied().filter(|k| *k != key).collect())
            .unwrap_or_default();
        for other in others {
            self.subscribe(other, key, &track_id, kind);
            self.request_negotiation(now, other);
        }
    }

    fn on_track_close(&mut self, now: Instant, key: PeerKey, track_id: &str) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.publications.retain(|p| p.track_id != track_id);
        let room = peer.room;
        let others: Vec<PeerKey> = self
            .rooms
            .get(&room)
            .map(|m| m.iter().copied().filter(|k| *k != key).collect())
            .unwrap_or_default();
        for other in others {
            if self.unsubscribe_where(other, |s| s.publisher == key && s.source_track == track_id) {
                self.request_negotiation(now, other);
            }
        }
    }

    fn drain_reads(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let mut feedback: Vec<String> = Vec::new();
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let mut layer = None;
                    if let Some(index) = peer
                        .publications
                        .iter()
                        .position(|p| p.track_id == track_id)
                    {
                        let ssrc = packet.header.ssrc;
                        if peer.publications[index].media_ssrc == 0 {
                            peer.publications[index].media_ssrc = ssrc;
                        }
                        layer = layer_of(peer, index, ssrc);
                    }
                    self.pending.push(Pending {
                        publisher: key,
                        track_id,
                        layer,
                        packet,
                    });
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    // NACKs were answered by the connection's NACK responder on their way
                    // here; only counted.
                    self.counters.nacks_received += packets
                        .iter()
                        .filter(|p| p.as_any().is::<TransportLayerNack>())
                        .count() as u64;
                    let wants_keyframe = packets.iter().any(|p| {
                        p.as_any().is::<PictureLossIndication>()
                            || p.as_any().is::<FullIntraRequest>()
                    });
                    if wants_keyframe {
                        feedback.push(track_id);
                    }
                }
                _ => {}
            }
        }
        // A subscriber asked for a keyframe on one of our senders: relay it to the publisher.
        for sender_track in feedback {
            let source = self.peers.get(&key).and_then(|p| {
                p.subscriptions
                    .iter()
                    .find(|s| s.track_id == sender_track)
                    .map(|s| (s.publisher, s.source_track.clone()))
            });
            if let Some((publisher, track)) = source {
                self.request_keyframe(now, publisher, &track);
            }
        }
    }

    fn forward_pending(&mut self, now: Instant) {
        let mut pending = std::mem::take(&mut self.pending);
        for Pending {
            publisher,
            track_id,
            layer,
            packet,
        } in pending.drain(..)
        {
            let Some(room) = self.peers.get(&publisher).map(|p| p.room) else {
                continue;
            };
            self.targets.clear();
            if let Some(members) = self.rooms.get(&room) {
                for member in members {
                    if *member == publisher {
                        continue;
                    }
                    if let Some(index) = self
                        .peers
                        .get(member)
                        .and_then(|s| s.subscription_for(publisher, &track_id))
                    {
                        self.targets.push((*member, index));
                    }
                }
            }
            let count = self.targets.len();
            let mut packet = Some(packet);
            for i in 0..count {
                let (subscriber, index) = self.targets[i];
                // The last target takes the packet itself; earlier ones get a copy (the payload
                // is shared, only the header is copied).
                let mut copy = if i + 1 == count {
                    match packet.take() {
                        Some(p) => p,
                        None => break,
                    }
                } else {
                    match &packet {
                        Some(p) => p.clone(),
                        None => break,
                    }
                };
                let Some(peer) = self.peers.get_mut(&subscriber) else {
                    continue;
                };
                let paused = peer.fallback.is_paused();
                let subscription = &mut peer.subscriptions[index];
                let Some(plan) = subscription.plan.as_ref().filter(|_| peer.connected) else {
                    self.counters.drop(DropReason::SubscriberNotReady);
                    continue;
                };
                if subscription.kind == RtpCodecKind::Video {
                    if paused {
                        self.counters.drop(DropReason::VideoPaused);
                        continue;
                    }
                    if let Some(layer) = layer {
                        if subscription.layers.is_none() {
                            let mut selector =
                                LayerSelector::new(SIMULCAST_LAYER_BITRATES.to_vec());
                            let target = selector.choose(peer.estimate.get()).unwrap_or_default();
                            self.layer_keyframes_wanted.push((
                                publisher,
                                subscription.source_track.clone(),
                                target,
                            ));
                            subscription.layers = Some(selector);
                        }
                        let Some(selector) = subscription.layers.as_mut() else {
                            continue;
                        };
                        match selector.accept(layer, vp8_keyframe_start(&copy.payload)) {
                            LayerVerdict::Forward => {}
                            LayerVerdict::SwitchHere => subscription.continuity.switch(),
                            LayerVerdict::Skip => {
                                self.counters.drop(DropReason::LayerNotSelected);
                                continue;
                            }
                        }
                    } else if subscription.awaiting_keyframe {
                        if !vp8_keyframe_start(&copy.payload) {
                            self.counters.drop(DropReason::AwaitingKeyframe);
                            continue;
                        }
                        subscription.awaiting_keyframe = false;
                        subscription.continuity.switch();
                    }
                }
                if plan.apply(&mut copy).is_err() {
                    self.counters.drop(DropReason::PayloadType);
                    continue;
                }
                let header = &mut copy.header;
                match subscription
                    .continuity
                    .rewrite(now, header.sequence_number, header.timestamp)
                {
                    Some((seq, ts)) => {
                        header.sequence_number = seq;
                        header.timestamp = ts;
                    }
                    None => {
                        self.counters.drop(DropReason::BeforeSwitch);
                        continue;
                    }
                }
                let written = peer.pc.handle_write(TaggedRTCMessage {
                    now,
                    message: RTCMessage::RtpPacket(String::new(), copy),
                });
                if written.is_ok() {
                    self.counters.rtp_forwarded += 1;
                } else {
                    self.counters.drop(DropReason::ForwardFailed);
                }
                self.mark_dirty(subscriber);
            }
        }
        // Keep the allocation for the next round.
        self.pending = pending;
        for (publisher, track, layer) in std::mem::take(&mut self.layer_keyframes_wanted) {
            self.request_layer_keyframe(now, publisher, &track, layer);
        }
    }

    /// Registers the peer's next deadline in the timer heap. Only an earlier deadline is pushed;
    /// a later one is picked up when the current entry fires (firing early is harmless).
    fn arm(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(next) = peer.pc.poll_timeout() else {
            return;
        };
        if peer.armed.is_none_or(|armed| next < armed) {
            peer.armed = Some(next);
            self.timers.push(Reverse((next, key)));
        }
    }
}

/// The simulcast layer of a publisher's packet, by its SSRC: learned from the rid `rtc` bound
/// the SSRC to (once per SSRC), `None` for a publisher sending one encoding.
fn layer_of(peer: &mut Peer, index: usize, ssrc: u32) -> Option<usize> {
    let publication = &peer.publications[index];
    if publication.plain_ssrc == ssrc {
        return None;
    }
    if let Some(layer) = publication.layer_ssrcs.iter().position(|s| *s == ssrc) {
        return Some(layer);
    }
    let receiver = publication.receiver;
    let rid = peer
        .pc
        .rtp_receiver(receiver)
        .and_then(|r| r.track().rid(ssrc).cloned());
    let publication = &mut peer.publications[index];
    match rid.and_then(|rid| LAYER_RIDS.iter().position(|r| *r == rid)) {
        Some(layer) => {
            publication.layer_ssrcs[layer] = ssrc;
            Some(layer)
        }
        None => {
            publication.plain_ssrc = ssrc;
            None
        }
    }
}

fn recvonly() -> RTCRtpTransceiverInit {
    RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        streams: vec![],
        send_encodings: vec![],
    }
}

/// The rewrite plan of one negotiated sender, or `None` when the subscriber did not accept it.
fn rewrite_plan(
    pc: &mut rtc::peer_connection::RTCPeerConnection,
    sender: RTCRtpSenderId,
    publisher_extensions: &[(&'static str, u8)],
) -> Option<RewritePlan> {
    let transceiver_id: usize = sender.into();
    let mid = {
        let transceiver = pc.rtp_transceiver(transceiver_id)?;
        if !transceiver.current_direction().has_send() {
            return None;
        }
        transceiver.mid().clone()?
    };
    let mut rtp_sender = pc.rtp_sender(sender)?;
    let ssrc = rtp_sender.track().ssrcs().next()?;
    let parameters = rtp_sender.get_parameters();
    let ext_id = |uri: &str| {
        parameters
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|h| h.uri == uri)
            .and_then(|h| u8::try_from(h.id).ok())
    };
    let mut plan = RewritePlan {
        ssrc,
        mid: ext_id(rtc::sdp::extmap::SDES_MID_URI).map(|id| (id, Bytes::from(mid.into_bytes()))),
        extension_ids: publisher_extensions
            .iter()
            .filter_map(|(uri, from)| Some((*from, ext_id(uri)?)))
            .collect(),
        payload_types: 0,
    };
    for codec in &parameters.rtp_parameters.codecs {
        plan.allow_payload_type(codec.payload_type);
    }
    Some(plan)
}

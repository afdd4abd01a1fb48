//! A media core with joined peers, as the worker holds it, driven without I/O: joins go in as
//! commands, the relay's offers are answered by a real `rtc` client (computed once and reused:
//! the relay's offers to a fresh participant are alike but for their ICE credentials and
//! fingerprint), and datagrams go in through `MediaCore::handle_datagrams` — the entry the
//! worker calls per `recvmmsg` batch. What the relay sends is drained and dropped.

use crate::stun::BindingRequest;
use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use skaerm_sfu::grant::JoinGrant;
use skaerm_sfu::ids::{ParticipantId, RoomId, SessionId};
use skaerm_sfu::media::bandwidth::FallbackPolicy;
use skaerm_sfu::media::core::{Command, CoreConfig, CoreOutput, MediaCore};
use skaerm_sfu::protocol::{Publish, RoomRole, ServerMessage};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The relay's announced address.
pub const RELAY: &str = "10.0.0.1:50000";
/// The joined peers' addresses.
pub const PEERS: [&str; 2] = ["192.168.1.10:40000", "192.168.1.20:40000"];
/// The client's ICE ufrag in the cached answer.
const CLIENT_UFRAG_PREFIX: &str = "a=ice-ufrag:";

/// One joined participant.
#[derive(Debug)]
pub struct Peer {
    /// Its signalling session.
    pub session: SessionId,
    /// Its participant id.
    pub participant: ParticipantId,
    /// Where its datagrams come from.
    pub addr: SocketAddr,
    /// The last offer the relay sent it, and its revision.
    pub offer: Option<(String, u32)>,
    /// The client ufrag of the answer it gave (for STUN usernames).
    pub client_ufrag: String,
}

/// The core and its peers on a virtual clock.
pub struct Relay {
    /// Virtual time.
    pub now: Instant,
    /// The core under test.
    pub core: MediaCore,
    /// Joined participants, in join order.
    pub peers: Vec<Peer>,
    /// The room.
    pub room: RoomId,
}

fn sdp_attr<'a>(sdp: &'a str, prefix: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix(prefix))
}

/// A real `rtc` client's answer to `offer` (audio and video to send, one host candidate).
fn answer_with_rtc_client(offer: &str) -> String {
    let now = Instant::now();
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_default_codecs()
        .expect("default codecs");
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).expect("interceptors");
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .expect("client peer connection");
    for (kind, mime, rate, channels) in [
        (RtpCodecKind::Audio, "audio/opus", 48000, 2),
        (RtpCodecKind::Video, "video/VP8", 90000, 0),
    ] {
        let track = MediaStreamTrack::new(
            "stream-fuzz".to_owned(),
            format!("{kind}-fuzz"),
            format!("{kind}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(if kind == RtpCodecKind::Audio {
                        0x1111_1111
                    } else {
                        0x2222_2222
                    }),
                    ..Default::default()
                },
                active: true,
                codec: RTCRtpCodec {
                    mime_type: mime.to_owned(),
                    clock_rate: rate,
                    channels,
                    ..Default::default()
                },
                ..Default::default()
            }],
        );
        pc.add_track(track).expect("track");
    }
    pc.set_remote_description(
        now,
        RTCSessionDescription::offer(offer.to_owned()).expect("offer"),
    )
    .expect("the relay's offer applies");
    let answer = pc.create_answer(None).expect("answer");
    pc.set_local_description(now, answer).expect("local answer");
    pc.local_description().expect("answer set").sdp
}

/// A client's answer to a relay's first offer (computed once).
pub fn client_answer(offer: &str) -> &'static str {
    static ANSWER: OnceLock<String> = OnceLock::new();
    ANSWER.get_or_init(|| answer_with_rtc_client(offer))
}

impl Relay {
    /// A core with `peers` participants joined to one room, offers out, not answered.
    pub fn new(peers: usize) -> Relay {
        let core = MediaCore::new(CoreConfig {
            local_addrs: vec![RELAY.parse().expect("relay address")],
            max_participants_per_room: 4,
            max_peers: 16,
            keyframe_request_interval: Duration::from_millis(500),
            fallback: FallbackPolicy::default(),
            simulcast: false,
        })
        .expect("media core");
        let mut relay = Relay {
            now: Instant::now(),
            core,
            peers: Vec::new(),
            room: RoomId(uuid::Uuid::from_u128(7)),
        };
        for i in 0..peers.min(PEERS.len()) {
            let peer = Peer {
                session: SessionId::next(),
                participant: ParticipantId(uuid::Uuid::from_u128(100 + i as u128)),
                addr: PEERS[i].parse().expect("peer address"),
                offer: None,
                client_ufrag: String::new(),
            };
            let command = Command::Join {
                session: peer.session,
                grant: JoinGrant {
                    room: relay.room,
                    participant: peer.participant,
                    role: if i == 0 { RoomRole::Host } else { RoomRole::Guest },
                    display_name: format!("peer {i}"),
                    needs_admission: false,
                    admitted_by: None,
                    credential: None,
                },
                publish: Publish {
                    audio: true,
                    video: true,
                },
            };
            relay.peers.push(peer);
            relay.core.handle_command(relay.now, command);
            relay.pump();
        }
        relay
    }

    /// Drains everything the core wants to say or send; remembers the offers.
    pub fn pump(&mut self) {
        // Bounded: a core that never stops talking is a finding, not a hang.
        for _ in 0..10_000 {
            let mut progressed = false;
            while let Some(output) = self.core.poll_output() {
                progressed = true;
                if let CoreOutput::Signal(session, ServerMessage::Offer { sdp, revision }) = output
                    && let Some(peer) = self.peers.iter_mut().find(|p| p.session == session)
                {
                    peer.offer = Some((sdp, revision));
                }
            }
            while self.core.poll_transmit().is_some() {
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
        panic!("the core kept producing output");
    }

    /// Sends `sdp` as peer `i`'s answer to its latest offer (or to `revision` when given).
    pub fn answer(&mut self, i: usize, sdp: String, revision: Option<u32>) {
        let Some(peer) = self.peers.get_mut(i) else {
            return;
        };
        let revision = revision
            .or(peer.offer.as_ref().map(|(_, r)| *r))
            .unwrap_or(1);
        if let Some(ufrag) = sdp_attr(&sdp, CLIENT_UFRAG_PREFIX) {
            peer.client_ufrag = ufrag.to_owned();
        }
        let session = peer.session;
        self.core.handle_command(
            self.now,
            Command::Answer {
                session,
                sdp,
                revision,
            },
        );
        self.pump();
    }

    /// Answers every peer's offer as a real client would, except peer `skip`'s.
    pub fn answer_all_but(&mut self, skip: Option<usize>) {
        for i in 0..self.peers.len() {
            if Some(i) == skip {
                continue;
            }
            if let Some((offer, _)) = self.peers[i].offer.clone() {
                let answer = client_answer(&offer).to_owned();
                self.answer(i, answer, None);
            }
        }
    }

    /// One datagram from `from`.
    pub fn datagram(&mut self, from: SocketAddr, payload: &[u8]) {
        let dst = Some(RELAY.parse::<SocketAddr>().expect("relay").ip());
        self.core
            .handle_datagrams(self.now, [(from, dst, BytesMut::from(payload))]);
        self.pump();
    }

    /// A STUN binding request for peer `i`'s current offer, from `from`.
    pub fn check(
        &mut self,
        i: usize,
        from: SocketAddr,
        transaction: [u8; 12],
        use_candidate: bool,
        corrupt_integrity: bool,
        extra: &[u8],
    ) {
        let Some(peer) = self.peers.get(i) else {
            return;
        };
        let Some((offer, _)) = &peer.offer else {
            return;
        };
        let (Some(ufrag), Some(pwd)) = (
            sdp_attr(offer, "a=ice-ufrag:"),
            sdp_attr(offer, "a=ice-pwd:"),
        ) else {
            return;
        };
        let username = format!("{ufrag}:{}", peer.client_ufrag);
        let datagram = BindingRequest {
            username: &username,
            password: pwd,
            transaction,
            use_candidate,
            extra,
            corrupt_integrity,
        }
        .encode();
        self.datagram(from, &datagram);
    }

    /// Moves the virtual clock on by `step`, firing the core's timers on the way.
    pub fn advance(&mut self, step: Duration) {
        let end = self.now + step;
        for _ in 0..1000 {
            let next = self.core.poll_timeout().map_or(end, |t| t.min(end));
            self.now = next.max(self.now);
            self.core.handle_timeout(self.now);
            self.pump();
            if self.now >= end {
                return;
            }
        }
        self.now = end;
        self.core.handle_timeout(self.now);
        self.pump();
    }
}

//! The media core driven by real `rtc` client peers over a virtual network and a virtual clock:
//! no sockets, no sleeps. Two participants join one room, each publishes audio and video, and
//! each must receive the other's packets with intact payloads through the relay.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use skaerm_sfu::grant::JoinGrant;
use skaerm_sfu::ids::{ParticipantId, RoomId, SessionId};
use skaerm_sfu::media::core::{Command, CoreConfig, CoreOutput, MediaCore, RoomEvent};
use skaerm_sfu::media::counters::DropReason;
use skaerm_sfu::protocol::{LeaveReason, Publish, Role, ServerMessage};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

const RELAY: &str = "10.0.0.1:50000";

/// A browser stand-in: an `rtc` peer connection that answers the relay's offers.
struct Client {
    session: SessionId,
    participant: ParticipantId,
    addr: SocketAddr,
    pc: RTCPeerConnection,
    senders: HashMap<RtpCodecKind, (RTCRtpSenderId, u32)>,
    /// Inbound track id → stream id (the publisher's participant id).
    tracks: HashMap<String, String>,
    /// Payloads received, by stream id and kind.
    received: Vec<(String, u8, Bytes)>,
    connected: bool,
    messages: Vec<ServerMessage>,
    seq: u16,
}

impl Client {
    fn new(now: Instant, addr: &str) -> Client {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        let mut senders = HashMap::new();
        for (kind, mime, rate, channels) in [
            (RtpCodecKind::Audio, "audio/opus", 48000, 2),
            (RtpCodecKind::Video, "video/VP8", 90000, 0),
        ] {
            let ssrc = rand::random::<u32>();
            let track = MediaStreamTrack::new(
                format!("stream-{addr}"),
                format!("{kind}-{addr}"),
                format!("{kind}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
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
            let sender = pc.add_track(track).unwrap();
            senders.insert(kind, (sender, ssrc));
        }
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
        .new_candidate_host()
        .unwrap();
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json().unwrap())
            .unwrap();
        Client {
            session: SessionId::next(),
            participant: ParticipantId(Uuid::new_v4()),
            addr,
            pc,
            senders,
            tracks: HashMap::new(),
            received: Vec::new(),
            connected: false,
            messages: Vec::new(),
            seq: 0,
        }
    }

    /// Applies an offer and returns the answer.
    fn answer(&mut self, now: Instant, sdp: String) -> String {
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp).unwrap())
            .unwrap();
        let answer = self.pc.create_answer(None).unwrap();
        self.pc.set_local_description(now, answer).unwrap();
        self.pc.local_description().unwrap().sdp
    }

    fn send_rtp(&mut self, now: Instant, kind: RtpCodecKind, payload: Bytes) {
        let (sender, ssrc) = self.senders[&kind];
        self.seq = self.seq.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: if kind == RtpCodecKind::Audio { 111 } else { 96 },
                sequence_number: self.seq,
                timestamp: u32::from(self.seq) * 960,
                ssrc,
                marker: true,
                ..Default::default()
            },
            payload,
        };
        self.pc
            .rtp_sender(sender)
            .unwrap()
            .write_rtp(now, packet)
            .unwrap();
    }

    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let stream = init.stream_ids.first().cloned().unwrap_or_default();
                    self.tracks.insert(init.track_id, stream);
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.connected = state == RTCPeerConnectionState::Connected;
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(track, packet) = message {
                let stream = self.tracks.get(&track).cloned().unwrap_or_default();
                self.received
                    .push((stream, packet.header.payload_type, packet.payload));
            }
        }
    }
}

/// The relay core plus its clients and a virtual clock.
struct Net {
    now: Instant,
    core: MediaCore,
    clients: Vec<Client>,
    events: Vec<RoomEvent>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let core = MediaCore::new(CoreConfig {
            local_addrs: vec![RELAY.parse().unwrap()],
            max_participants_per_room: 4,
            max_peers: 100,
            keyframe_request_interval: Duration::from_millis(500),
        })
        .unwrap();
        Net {
            now,
            core,
            clients: Vec::new(),
            events: Vec::new(),
        }
    }

    fn join(&mut self, room: RoomId, addr: &str) -> usize {
        let client = Client::new(self.now, addr);
        let command = Command::Join {
            session: client.session,
            grant: JoinGrant {
                room,
                participant: client.participant,
                role: Role::Guest,
                display_name: format!("client {addr}"),
            },
            publish: Publish {
                audio: true,
                video: true,
            },
        };
        self.clients.push(client);
        self.core.handle_command(self.now, command);
        self.clients.len() - 1
    }

    /// Moves every pending message and datagram until nothing is left.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut progressed = false;
            while let Some(output) = self.core.poll_output() {
                progressed = true;
                match output {
                    CoreOutput::Signal(session, message) => {
                        let now = self.now;
                        let Some(client) = self.clients.iter_mut().find(|c| c.session == session)
                        else {
                            continue;
                        };
                        if let ServerMessage::Offer { sdp, revision } = &message {
                            let (sdp, revision) = (sdp.clone(), *revision);
                            let answer = client.answer(now, sdp);
                            let session = client.session;
                            client.messages.push(message);
                            self.core.handle_command(
                                now,
                                Command::Answer {
                                    session,
                                    sdp: answer,
                                    revision,
                                },
                            );
                        } else {
                            client.messages.push(message);
                        }
                    }
                    CoreOutput::Close(..) => {}
                    CoreOutput::Room(event) => self.events.push(event),
                }
            }
            while let Some(transmit) = self.core.poll_transmit() {
                progressed = true;
                if let Some(client) = self.clients.iter_mut().find(|c| c.addr == transmit.to) {
                    client
                        .pc
                        .handle_read(TaggedBytesMut {
                            now: self.now,
                            transport: TransportContext {
                                local_addr: client.addr,
                                peer_addr: transmit.from,
                                ecn: None,
                                transport_protocol: TransportProtocol::UDP,
                            },
                            message: transmit.payload,
                        })
                        .ok();
                }
            }
            for i in 0..self.clients.len() {
                while let Some(out) = self.clients[i].pc.poll_write() {
                    progressed = true;
                    let from = self.clients[i].addr;
                    self.core.handle_datagram(
                        self.now,
                        from,
                        Some(out.transport.peer_addr.ip()),
                        out.message,
                    );
                }
                self.clients[i].drain();
            }
            if !progressed {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances the virtual clock by `step`, firing every deadline on the way.
    fn advance(&mut self, step: Duration) {
        let end = self.now + step;
        loop {
            self.pump();
            let mut next = end;
            if let Some(t) = self.core.poll_timeout() {
                next = next.min(t);
            }
            for c in &mut self.clients {
                if let Some(t) = c.pc.poll_timeout() {
                    next = next.min(t);
                }
            }
            self.now = next.max(self.now);
            self.core.handle_timeout(self.now);
            for c in &mut self.clients {
                c.pc.handle_timeout(self.now).ok();
            }
            self.pump();
            if self.now >= end {
                return;
            }
        }
    }
}

fn payload(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-{i:04}-{}", "x".repeat(100)))
}

#[test]
fn two_participants_receive_each_others_media_intact() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    let b = net.join(room, "192.168.1.20:40000");
    net.advance(Duration::from_secs(3));
    assert!(net.clients[a].connected, "client A must connect");
    assert!(net.clients[b].connected, "client B must connect");
    // Publications open on first media: send a first round, let renegotiation settle.
    for i in 0..5 {
        for c in [a, b] {
            net.clients[c].send_rtp(net.now, RtpCodecKind::Audio, payload("warmup-audio", i));
            net.clients[c].send_rtp(net.now, RtpCodecKind::Video, payload("warmup-video", i));
        }
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_secs(1));
    for c in [a, b] {
        net.clients[c].received.clear();
    }

    for i in 0..50 {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Audio, payload("a-audio", i));
        net.clients[a].send_rtp(net.now, RtpCodecKind::Video, payload("a-video", i));
        net.clients[b].send_rtp(net.now, RtpCodecKind::Audio, payload("b-audio", i));
        net.clients[b].send_rtp(net.now, RtpCodecKind::Video, payload("b-video", i));
        net.advance(Duration::from_millis(20));
    }

    for (me, other, tag) in [(b, a, "a"), (a, b, "b")] {
        let other_id = net.clients[other].participant.to_string();
        let got = &net.clients[me].received;
        for (kind, pt) in [("audio", 111u8), ("video", 96u8)] {
            let payloads: Vec<&Bytes> = got
                .iter()
                .filter(|(stream, p, _)| *stream == other_id && *p == pt)
                .map(|(_, _, b)| b)
                .collect();
            for i in 0..50 {
                let want = payload(&format!("{tag}-{kind}"), i);
                assert!(
                    payloads.contains(&&want),
                    "{tag}'s {kind} packet {i} did not arrive intact (got {} packets)",
                    payloads.len()
                );
            }
        }
    }
    assert!(net.core.counters().rtp_forwarded >= 200);
    assert!(
        net.events
            .iter()
            .filter(|e| matches!(e, RoomEvent::ParticipantJoined { .. }))
            .count()
            == 2
    );
}

#[test]
fn leaving_tells_the_other_and_stops_forwarding() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    let b = net.join(room, "192.168.1.20:40000");
    net.advance(Duration::from_secs(2));
    for i in 0..3 {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Audio, payload("a", i));
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_millis(500));
    let session = net.clients[a].session;
    net.core.handle_command(
        net.now,
        Command::Leave {
            session,
            reason: LeaveReason::Left,
        },
    );
    net.pump();
    let a_id = net.clients[a].participant;
    assert!(
        net.clients[b].messages.iter().any(|m| matches!(
            m,
            ServerMessage::ParticipantLeft { participant_id, reason: LeaveReason::Left } if *participant_id == a_id
        )),
        "B must hear that A left"
    );
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, RoomEvent::ParticipantLeft { .. }))
    );
    assert_eq!(net.core.participant_count(), 1);
}

#[test]
fn hostile_datagrams_are_dropped_and_counted() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    net.join(room, "192.168.1.10:40000");
    net.advance(Duration::from_secs(1));
    let stranger: SocketAddr = "203.0.113.9:1234".parse().unwrap();
    let now = net.now;
    // Garbage, an RTP-looking packet from nowhere, a DTLS-looking one, an empty one.
    net.core
        .handle_datagram(now, stranger, None, BytesMut::from(&[0xffu8; 40][..]));
    let mut rtp = vec![0x80u8, 96];
    rtp.extend_from_slice(&[0u8; 30]);
    net.core
        .handle_datagram(now, stranger, None, BytesMut::from(&rtp[..]));
    net.core
        .handle_datagram(now, stranger, None, BytesMut::from(&[22u8, 254, 253][..]));
    net.core
        .handle_datagram(now, stranger, None, BytesMut::new());
    let c = net.core.counters();
    assert_eq!(c.drops(DropReason::Malformed), 2);
    assert_eq!(c.drops(DropReason::UnknownSource), 2);
    // A connected client's address sending garbage SRTP is rejected by its connection, not
    // forwarded, and the relay carries on.
    let client_addr = net.clients[0].addr;
    net.core
        .handle_datagram(now, client_addr, None, BytesMut::from(&rtp[..]));
    assert_eq!(net.core.counters().rtp_forwarded, 0);
    assert_eq!(net.core.participant_count(), 1);
}

#[test]
fn a_second_join_of_the_same_participant_replaces_the_first() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    net.advance(Duration::from_millis(500));
    // Same participant, new session (a reconnect from another network).
    let mut again = Client::new(net.now, "192.168.1.11:40000");
    again.participant = net.clients[a].participant;
    let command = Command::Join {
        session: again.session,
        grant: JoinGrant {
            room,
            participant: again.participant,
            role: Role::Guest,
            display_name: "again".into(),
        },
        publish: Publish::default(),
    };
    net.clients.push(again);
    net.core.handle_command(net.now, command);
    net.pump();
    assert_eq!(net.core.participant_count(), 1);
    assert!(
        net.clients[a]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Ended { .. })),
        "the replaced session is told it ended"
    );
}

#[test]
fn a_full_room_refuses_the_next_participant() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    for i in 0..4 {
        net.join(room, &format!("192.168.1.{}:40000", 10 + i));
    }
    let extra = net.join(room, "192.168.1.99:40000");
    net.pump();
    assert!(net.clients[extra].messages.iter().any(|m| matches!(
        m,
        ServerMessage::Error {
            code: skaerm_sfu::protocol::ErrorCode::RoomFull,
            ..
        }
    )));
    assert_eq!(net.core.participant_count(), 4);
}

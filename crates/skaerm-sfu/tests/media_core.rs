//! The media core driven by real `rtc` client peers over a virtual network and a virtual clock:
//! no sockets, no sleeps. Two participants join one room, each publishes audio and video, and
//! each must receive the other's packets with intact payloads through the relay.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{
    Attribute, Interceptor, Packet as InterceptorPacket, Registry, Slot, StreamInfo, TaggedPacket,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use skaerm_sfu::grant::JoinGrant;
use skaerm_sfu::ids::{ParticipantId, RoomId, SessionId};
use skaerm_sfu::media::bandwidth::FallbackPolicy;
use skaerm_sfu::media::core::{Command, CoreConfig, CoreOutput, MediaCore, RoomEvent};
use skaerm_sfu::media::counters::DropReason;
use skaerm_sfu::media::quality::{LinkState, Quality, QualitySlice};
use skaerm_sfu::protocol::{
    ClientCandidate, ErrorCode, LeaveReason, Publish, RoomRole, ServerMessage, VideoPauseReason,
};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

const RELAY: &str = "10.0.0.1:50000";

/// Lets every inbound RTCP packet through to the test client (the chain's terminus drops
/// unmarked RTCP), so tests can see the PLIs and NACKs the relay sends.
#[derive(Default)]
struct RtcpToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, InterceptorPacket::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

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
    /// Its ICE agent has connected (the DTLS handshake may still be under way).
    ice_connected: bool,
    messages: Vec<ServerMessage>,
    /// Next sequence number per sending kind (each SSRC has its own sequence space).
    seq: HashMap<RtpCodecKind, u16>,
    /// Inbound tracks: track id → (receiver, SSRC, payload types seen).
    receivers: HashMap<String, (RTCRtpReceiverId, u32)>,
    /// RTCP packets received, by type: (PLIs naming one of our senders, NACKed sequence numbers).
    plis: usize,
    nacked: Vec<u16>,
    /// SSRCs of the simulcast video layers q, h, f (empty without simulcast).
    layers: Vec<u32>,
}

/// Gives a client connection a UDP host candidate at `addr`.
fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) {
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
}

impl Client {
    fn new(now: Instant, addr: &str) -> Client {
        Client::build(now, addr, false)
    }

    /// A client whose video goes out as three simulcast layers (rid q, h, f).
    fn simulcast(now: Instant, addr: &str) -> Client {
        Client::build(now, addr, true)
    }

    fn build(now: Instant, addr: &str, simulcast: bool) -> Client {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .unwrap()
            .with(Slot::from(20_000), RtcpToApplication::default());
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        let mut senders = HashMap::new();
        let mut layers = Vec::new();
        for (kind, mime, rate, channels) in [
            (RtpCodecKind::Audio, "audio/opus", 48000, 2),
            (RtpCodecKind::Video, "video/VP8", 90000, 0),
        ] {
            let rids: &[&str] = if simulcast && kind == RtpCodecKind::Video {
                &["q", "h", "f"]
            } else {
                &[""]
            };
            let ssrcs: Vec<u32> = rids.iter().map(|_| rand::random::<u32>()).collect();
            let track = MediaStreamTrack::new(
                format!("stream-{addr}"),
                format!("{kind}-{addr}"),
                format!("{kind}"),
                kind,
                rids.iter()
                    .zip(&ssrcs)
                    .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            rid: (*rid).to_owned(),
                            ssrc: Some(*ssrc),
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
                    })
                    .collect(),
            );
            let sender = pc.add_track(track).unwrap();
            senders.insert(kind, (sender, ssrcs[0]));
            if simulcast && kind == RtpCodecKind::Video {
                layers = ssrcs.clone();
            }
        }
        add_host_candidate(&mut pc, addr);
        Client {
            session: SessionId::next(),
            participant: ParticipantId(Uuid::new_v4()),
            addr,
            pc,
            senders,
            tracks: HashMap::new(),
            received: Vec::new(),
            connected: false,
            ice_connected: false,
            messages: Vec::new(),
            seq: HashMap::new(),
            receivers: HashMap::new(),
            plis: 0,
            nacked: Vec::new(),
            layers,
        }
    }

    /// The client's network changed: from now on it is reachable at `addr` (a new host
    /// candidate; the old one stays in its agent, as a browser's does until ICE restarts).
    fn move_to(&mut self, addr: &str) {
        let addr: SocketAddr = addr.parse().unwrap();
        add_host_candidate(&mut self.pc, addr);
        self.addr = addr;
    }

    /// The relay-side ICE ufrags of the offers received so far, in order.
    fn offer_ufrags(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Offer { sdp, .. } => sdp
                    .lines()
                    .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
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

    /// Sends one packet and returns its sequence number.
    fn send_rtp(&mut self, now: Instant, kind: RtpCodecKind, payload: Bytes) -> u16 {
        let (sender, ssrc) = self.senders[&kind];
        let seq = self.seq.entry(kind).or_insert(1000);
        *seq = seq.wrapping_add(1);
        let seq = *seq;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: if kind == RtpCodecKind::Audio { 111 } else { 96 },
                sequence_number: seq,
                timestamp: u32::from(seq) * 960,
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
        seq
    }

    /// Sends one packet of simulcast layer `layer` (0 = q, 1 = h, 2 = f) with its mid and rid
    /// header extensions, as a browser does until its SSRCs are acknowledged.
    fn send_layer(&mut self, now: Instant, layer: usize, seq: u16, payload: Bytes) {
        self.send_layer_tagged(now, layer, seq, payload, true);
    }

    /// Sends one packet of simulcast layer `layer`, with the mid and rid header extensions
    /// when `tagged`; a browser leaves them off once receiver reports acknowledged its SSRCs.
    fn send_layer_tagged(
        &mut self,
        now: Instant,
        layer: usize,
        seq: u16,
        payload: Bytes,
        tagged: bool,
    ) {
        let (sender, _) = self.senders[&RtpCodecKind::Video];
        let mut rtp_sender = self.pc.rtp_sender(sender).unwrap();
        let params = rtp_sender.get_parameters();
        let ext = |uri: &str| {
            params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|h| h.uri == uri)
                .map(|h| h.id as u8)
        };
        let (mid_id, rid_id) = (
            ext(rtc::sdp::extmap::SDES_MID_URI).expect("mid negotiated"),
            ext(rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI).expect("rid negotiated"),
        );
        let transceiver: usize = sender.into();
        let mid = self
            .pc
            .rtp_transceiver(transceiver)
            .and_then(|t| t.mid().clone())
            .unwrap();
        let mut header = rtc::rtp::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: self.layers[layer],
            marker: true,
            ..Default::default()
        };
        if tagged {
            header
                .set_extension(mid_id, Bytes::from(mid.into_bytes()))
                .unwrap();
            header
                .set_extension(rid_id, Bytes::from(["q", "h", "f"][layer]))
                .unwrap();
        }
        let mut rtp_sender = self.pc.rtp_sender(sender).unwrap();
        rtp_sender
            .write_rtp(now, rtc::rtp::Packet { header, payload })
            .unwrap();
    }

    /// The receiver and SSRC of the inbound video track from `stream`.
    fn video_receiver_from(&mut self, stream: &str) -> (RTCRtpReceiverId, u32) {
        self.tracks
            .iter()
            .filter(|(_, s)| s.as_str() == stream)
            .filter_map(|(track, _)| self.receivers.get(track).copied())
            .find(|(receiver, _)| {
                self.pc
                    .rtp_receiver(*receiver)
                    .is_some_and(|r| r.track().kind() == RtpCodecKind::Video)
            })
            .unwrap()
    }

    /// Asks for a keyframe on the inbound video track from `stream`.
    fn send_pli(&mut self, now: Instant, stream: &str) {
        let (receiver, ssrc) = self.video_receiver_from(stream);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        self.pc
            .rtp_receiver(receiver)
            .unwrap()
            .write_rtcp(now, vec![Box::new(pli)])
            .unwrap();
    }

    /// Asks for a retransmission of `seqs` of the inbound video track from `stream`.
    fn send_nack(&mut self, now: Instant, stream: &str, seqs: &[u16]) {
        let (receiver, ssrc) = self.video_receiver_from(stream);
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: ssrc,
            nacks: seqs
                .iter()
                .map(|&packet_id| NackPair {
                    packet_id,
                    lost_packets: 0,
                })
                .collect(),
        };
        self.pc
            .rtp_receiver(receiver)
            .unwrap()
            .write_rtcp(now, vec![Box::new(nack)])
            .unwrap();
    }

    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let stream = init.stream_ids.first().cloned().unwrap_or_default();
                    self.receivers
                        .insert(init.track_id.clone(), (init.receiver_id, init.ssrc));
                    self.tracks.insert(init.track_id, stream);
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.connected = state == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                    self.ice_connected = state == RTCIceConnectionState::Connected;
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track, packet) => {
                    let stream = self.tracks.get(&track).cloned().unwrap_or_default();
                    self.received
                        .push((stream, packet.header.payload_type, packet.payload));
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for packet in packets {
                        let any = packet.as_any();
                        if any.is::<PictureLossIndication>() {
                            self.plis += 1;
                        }
                        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                            for pair in &nack.nacks {
                                self.nacked.extend(pair.packet_list());
                            }
                        }
                    }
                }
                _ => {}
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
    /// RTP datagrams the virtual network loses once each.
    losses: Vec<Loss>,
    /// RTP datagrams the relay sent, by (destination, payload type).
    relay_rtp: HashMap<(SocketAddr, u8), usize>,
    /// (client, payload type) whose RTP from the relay the network loses entirely.
    blackout: Vec<(SocketAddr, u8)>,
    /// Sequence numbers of the video (PT 96) the relay sent, by destination, in order.
    relay_video_seqs: HashMap<SocketAddr, Vec<u16>>,
    /// Lossy uplinks: (client, every n-th RTP datagram it sends is lost, datagrams so far).
    lossy_uplinks: Vec<(SocketAddr, u32, u32)>,
    /// Sessions the core closed.
    closed: Vec<SessionId>,
    /// Client addresses whose network is gone: nothing reaches them or leaves them.
    cut: Vec<SocketAddr>,
    /// Clients' answers are kept here instead of reaching the relay (a slow signalling path).
    hold_answers: bool,
    /// Answers kept back: (session, SDP, revision).
    held_answers: Vec<(SessionId, String, u32)>,
    /// When each client's first STUN datagram reached the relay.
    first_check: HashMap<SocketAddr, Instant>,
    /// Datagrams the relay sent to the mDNS group (224.0.0.251:5353 / [ff02::fb]:5353).
    mdns_sent: usize,
}

/// One RTP datagram to lose on the virtual network: the SRTP header is in the clear, so the
/// network can pick it by payload type and sequence number like a real lossy link would.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Loss {
    /// Lost on the way from the relay (true) or to it (false).
    from_relay: bool,
    /// The client end of the link.
    client: SocketAddr,
    payload_type: u8,
    seq: u16,
}

/// Payload type and sequence number of an (S)RTP datagram; `None` for RTCP and anything else.
fn rtp_header(datagram: &[u8]) -> Option<(u8, u16)> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 || (192..=223).contains(&datagram[1]) {
        return None;
    }
    Some((
        datagram[1] & 0x7f,
        u16::from_be_bytes([datagram[2], datagram[3]]),
    ))
}

impl Net {
    fn new() -> Net {
        Net::with_simulcast(false)
    }

    fn with_simulcast(simulcast: bool) -> Net {
        let now = Instant::now();
        let core = MediaCore::new(CoreConfig {
            local_addrs: vec![RELAY.parse().unwrap()],
            max_participants_per_room: 4,
            max_peers: 100,
            keyframe_request_interval: Duration::from_millis(500),
            fallback: FallbackPolicy::default(),
            simulcast,
        })
        .unwrap();
        Net {
            now,
            core,
            clients: Vec::new(),
            events: Vec::new(),
            losses: Vec::new(),
            relay_rtp: HashMap::new(),
            blackout: Vec::new(),
            relay_video_seqs: HashMap::new(),
            lossy_uplinks: Vec::new(),
            closed: Vec::new(),
            cut: Vec::new(),
            hold_answers: false,
            held_answers: Vec::new(),
            first_check: HashMap::new(),
            mdns_sent: 0,
        }
    }

    /// Lets the answers kept back by `hold_answers` reach the relay, and stops keeping them.
    fn release_answers(&mut self) {
        self.hold_answers = false;
        for (session, sdp, revision) in std::mem::take(&mut self.held_answers) {
            self.core.handle_command(
                self.now,
                Command::Answer {
                    session,
                    sdp,
                    revision,
                },
            );
        }
    }

    fn join(&mut self, room: RoomId, addr: &str) -> usize {
        let client = Client::new(self.now, addr);
        let command = Command::Join {
            session: client.session,
            grant: JoinGrant {
                room,
                participant: client.participant,
                role: RoomRole::Guest,
                display_name: format!("client {addr}"),
                needs_admission: false,
                admitted_by: None,
                credential: None,
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
                            if self.hold_answers {
                                self.held_answers.push((session, answer, revision));
                                continue;
                            }
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
                    CoreOutput::Close(session, _) => self.closed.push(session),
                    CoreOutput::Room(event) => self.events.push(event),
                }
            }
            while let Some(transmit) = self.core.poll_transmit() {
                progressed = true;
                if transmit.to.port() == 5353 && transmit.to.ip().is_multicast() {
                    self.mdns_sent += 1;
                }
                if let Some((pt, seq)) = rtp_header(&transmit.payload) {
                    *self.relay_rtp.entry((transmit.to, pt)).or_default() += 1;
                    if pt == 96 {
                        self.relay_video_seqs
                            .entry(transmit.to)
                            .or_default()
                            .push(seq);
                    }
                }
                if self.lose(true, transmit.to, &transmit.payload)
                    || self.cut.contains(&transmit.to)
                {
                    continue;
                }
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
                // What a client sent in one go reaches the relay as one batch, like one
                // `recvmmsg` on the worker.
                let mut batch = Vec::new();
                while let Some(out) = self.clients[i].pc.poll_write() {
                    progressed = true;
                    let from = self.clients[i].addr;
                    if self.lose(false, from, &out.message)
                        || self.cut.contains(&from)
                        || self.cut.contains(&out.transport.local_addr)
                    {
                        continue;
                    }
                    if out.message.first().is_some_and(|b| *b < 4) {
                        self.first_check.entry(from).or_insert(self.now);
                    }
                    batch.push((from, Some(out.transport.peer_addr.ip()), out.message));
                }
                self.core.handle_datagrams(self.now, batch);
                self.clients[i].drain();
            }
            if !progressed {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Whether the network loses this datagram (each planned loss happens once).
    fn lose(&mut self, from_relay: bool, client: SocketAddr, datagram: &[u8]) -> bool {
        let Some((payload_type, seq)) = rtp_header(datagram) else {
            return false;
        };
        if from_relay && self.blackout.contains(&(client, payload_type)) {
            return true;
        }
        if !from_relay
            && let Some((_, every, sent)) =
                self.lossy_uplinks.iter_mut().find(|(c, _, _)| *c == client)
        {
            *sent += 1;
            if (*sent).is_multiple_of(*every) {
                return true;
            }
        }
        let wanted = Loss {
            from_relay,
            client,
            payload_type,
            seq,
        };
        match self.losses.iter().position(|l| *l == wanted) {
            Some(i) => {
                self.losses.remove(i);
                true
            }
            None => false,
        }
    }

    /// Joins two clients publishing audio and video and lets media start flowing both ways.
    fn call() -> (Net, usize, usize) {
        let mut net = Net::new();
        let room = RoomId(Uuid::new_v4());
        let a = net.join(room, "192.168.1.10:40000");
        let b = net.join(room, "192.168.1.20:40000");
        net.advance(Duration::from_secs(2));
        for i in 0..5 {
            for c in [a, b] {
                net.clients[c].send_rtp(net.now, RtpCodecKind::Audio, payload("warmup-audio", i));
                net.clients[c].send_rtp(net.now, RtpCodecKind::Video, payload("warmup-video", i));
            }
            net.advance(Duration::from_millis(20));
        }
        net.advance(Duration::from_secs(1));
        assert!(net.clients[a].connected && net.clients[b].connected);
        (net, a, b)
    }

    /// Received payloads of `kind` (by payload type) from `from`'s stream at client `at`.
    fn payloads(&self, at: usize, from: usize, pt: u8) -> Vec<Bytes> {
        let stream = self.clients[from].participant.to_string();
        self.clients[at]
            .received
            .iter()
            .filter(|(s, p, _)| *s == stream && *p == pt)
            .map(|(_, _, b)| b.clone())
            .collect()
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
    assert_eq!(
        net.core.counters().drops(DropReason::PeerRejected),
        1,
        "counted (not logged per packet)"
    );
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
            role: RoomRole::Guest,
            display_name: "again".into(),
            needs_admission: false,
            admitted_by: None,
            credential: None,
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

#[test]
fn a_forwarded_packet_lost_on_the_way_to_the_subscriber_is_retransmitted_as_rtx() {
    let (mut net, a, b) = Net::call();
    let b_addr = net.clients[b].addr;
    // The relay → B copy of A's 8th video packet from now is lost once.
    let lost = net.clients[a].seq[&RtpCodecKind::Video].wrapping_add(8);
    net.losses.push(Loss {
        from_relay: true,
        client: b_addr,
        payload_type: 96,
        seq: lost,
    });
    let rtx_before = net.relay_rtp.get(&(b_addr, 97)).copied().unwrap_or(0);
    for i in 0..20 {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Video, payload("a-video", i));
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_millis(500));
    assert!(net.losses.is_empty(), "the planned loss must have happened");
    let got = net.payloads(b, a, 96);
    for i in 0..20 {
        assert!(
            got.contains(&payload("a-video", i)),
            "A's video packet {i} did not reach B intact"
        );
    }
    assert!(
        net.core.counters().nacks_received >= 1,
        "B must have NACKed the relay"
    );
    assert!(
        net.relay_rtp.get(&(b_addr, 97)).copied().unwrap_or(0) > rtx_before,
        "the retransmission must go out as RTX (payload type 97)"
    );
}

#[test]
fn a_packet_lost_from_the_publisher_is_nacked_upstream_and_forwarded_once_repaired() {
    let (mut net, a, b) = Net::call();
    let a_addr = net.clients[a].addr;
    let lost = net.clients[a].seq[&RtpCodecKind::Video].wrapping_add(5);
    net.losses.push(Loss {
        from_relay: false,
        client: a_addr,
        payload_type: 96,
        seq: lost,
    });
    for i in 0..20 {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Video, payload("a-video", i));
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_millis(500));
    assert!(net.losses.is_empty(), "the planned loss must have happened");
    assert!(
        net.clients[a].nacked.contains(&lost),
        "the relay must NACK the missing packet upstream (A saw NACKs for {:?})",
        net.clients[a].nacked
    );
    let got = net.payloads(b, a, 96);
    for i in 0..20 {
        assert!(
            got.contains(&payload("a-video", i)),
            "A's video packet {i} did not reach B intact"
        );
    }
}

#[test]
fn a_burst_of_keyframe_requests_reaches_the_publisher_once_per_interval() {
    let (mut net, a, b) = Net::call();
    // Well past any request made while the call was set up.
    net.advance(Duration::from_secs(1));
    let plis_before = net.clients[a].plis;
    let sent_before = net.core.counters().keyframe_requests;
    let a_stream = net.clients[a].participant.to_string();
    for _ in 0..5 {
        net.clients[b].send_pli(net.now, &a_stream);
        net.advance(Duration::from_millis(10));
    }
    net.advance(Duration::from_millis(100));
    assert_eq!(
        net.clients[a].plis - plis_before,
        1,
        "a burst of five PLIs must reach the publisher once"
    );
    // The throttle window (500 ms) ends: the request owed from the burst goes out, once.
    net.advance(Duration::from_millis(500));
    assert_eq!(net.clients[a].plis - plis_before, 2);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.clients[a].plis - plis_before, 2, "nothing more is owed");
    assert_eq!(net.core.counters().keyframe_requests - sent_before, 2);
}

/// Whether client `c` was told about a video pause (`Some(true)`) or resume (`Some(false)`) of
/// `publisher`'s video, the latest first.
fn video_state(net: &Net, c: usize, publisher: usize) -> Option<bool> {
    let id = net.clients[publisher].participant;
    net.clients[c].messages.iter().rev().find_map(|m| match m {
        ServerMessage::VideoPaused {
            participant_id,
            reason: VideoPauseReason::LowBandwidth,
        } if *participant_id == id => Some(true),
        ServerMessage::VideoResumed { participant_id } if *participant_id == id => Some(false),
        _ => None,
    })
}

#[test]
fn a_starved_subscriber_falls_back_to_audio_only_and_resumes_with_a_keyframe() {
    let (mut net, a, b) = Net::call();
    let b_addr = net.clients[b].addr;
    let mut i = 0;
    // One 20 ms tick of A's media: audio and video.
    let tick = |net: &mut Net, i: &mut usize| {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Audio, payload("a-audio", *i));
        net.clients[a].send_rtp(net.now, RtpCodecKind::Video, payload("a-video", *i));
        *i += 1;
        net.advance(Duration::from_millis(20));
    };
    for _ in 0..100 {
        tick(&mut net, &mut i);
    }
    assert_eq!(
        video_state(&net, b, a),
        None,
        "a healthy link is not paused"
    );

    // B's link stops carrying video: B's transport-wide feedback reports every video packet
    // lost, and the relay's estimate for B falls below the floor.
    net.blackout.extend([(b_addr, 96), (b_addr, 97)]);
    let start = net.now;
    while video_state(&net, b, a).is_none() && net.now < start + Duration::from_secs(10) {
        tick(&mut net, &mut i);
    }
    assert_eq!(
        video_state(&net, b, a),
        Some(true),
        "B must be told A's video is paused for low bandwidth"
    );
    let paused_after = net.now - start;
    assert!(
        paused_after >= FallbackPolicy::default().pause_after,
        "paused after {paused_after:?}, before the hold time"
    );
    assert_eq!(net.core.counters().video_pauses, 1);
    assert_eq!(
        video_state(&net, a, b),
        None,
        "A's link is fine: A keeps B's video"
    );

    // While paused: no video goes to B, audio is untouched.
    net.blackout.clear();
    let video_before = net.relay_rtp.get(&(b_addr, 96)).copied().unwrap_or(0);
    let dropped_before = net.core.counters().drops(DropReason::VideoPaused);
    let first = i;
    for _ in 0..25 {
        tick(&mut net, &mut i);
    }
    assert_eq!(
        net.relay_rtp.get(&(b_addr, 96)).copied().unwrap_or(0),
        video_before,
        "no video may reach B while paused"
    );
    assert!(net.core.counters().drops(DropReason::VideoPaused) >= dropped_before + 25);
    // B asks again for video it missed before the pause (still in the relay's send cache):
    // nothing is resent while paused, the line is too weak for video.
    let rtx_before = net.relay_rtp.get(&(b_addr, 97)).copied().unwrap_or(0);
    let missed: Vec<u16> = net.relay_video_seqs[&b_addr]
        .iter()
        .rev()
        .take(5)
        .copied()
        .collect();
    let a_stream = net.clients[a].participant.to_string();
    net.clients[b].send_nack(net.now, &a_stream, &missed);
    for _ in 0..10 {
        tick(&mut net, &mut i);
    }
    assert_eq!(
        net.relay_rtp.get(&(b_addr, 97)).copied().unwrap_or(0),
        rtx_before,
        "no retransmission may reach B while its video is paused"
    );
    let audio = net.payloads(b, a, 111);
    for n in first..i {
        assert!(
            audio.contains(&payload("a-audio", n)),
            "audio packet {n} must reach B during the pause"
        );
    }

    // The link recovers: the estimate climbs on audio feedback alone, video resumes after the
    // resume hold, and the relay asks A for a keyframe so B's picture starts cleanly.
    let plis_before = net.clients[a].plis;
    let last_seq_before = *net.relay_video_seqs[&b_addr].last().unwrap();
    let start = net.now;
    while video_state(&net, b, a) != Some(false) && net.now < start + Duration::from_secs(30) {
        tick(&mut net, &mut i);
    }
    assert_eq!(video_state(&net, b, a), Some(false), "video must resume");
    assert!(
        net.now - start >= FallbackPolicy::default().resume_after,
        "resumed before the resume hold"
    );
    assert_eq!(net.core.counters().video_resumes, 1);
    net.advance(Duration::from_millis(100));
    assert!(
        net.clients[a].plis > plis_before,
        "resuming must ask the publisher for a keyframe"
    );
    // Delta frames before the keyframe are held back: B's decoder could not use them.
    let waiting_before = net.core.counters().drops(DropReason::AwaitingKeyframe);
    for n in 0..3 {
        net.clients[a].send_rtp(net.now, RtpCodecKind::Video, payload("a-delta", n));
        net.advance(Duration::from_millis(20));
    }
    assert_eq!(
        net.core.counters().drops(DropReason::AwaitingKeyframe),
        waiting_before + 3
    );
    // The keyframe (VP8 descriptor: start of partition 0; payload header: key frame) and
    // what follows reach B, numbered on from where B's video stopped.
    let keyframe = Bytes::from_static(b"\x10\x00keyframe");
    net.clients[a].send_rtp(net.now, RtpCodecKind::Video, keyframe.clone());
    net.advance(Duration::from_millis(20));
    let first = i;
    for _ in 0..10 {
        tick(&mut net, &mut i);
    }
    let video = net.payloads(b, a, 96);
    assert!(video.contains(&keyframe), "the keyframe must reach B");
    for n in 0..3 {
        assert!(!video.contains(&payload("a-delta", n)));
    }
    for n in first..i {
        assert!(
            video.contains(&payload("a-video", n)),
            "video packet {n} must reach B after the resume"
        );
    }
    let seqs = &net.relay_video_seqs[&b_addr];
    let resumed_at = seqs.iter().rposition(|s| *s == last_seq_before).unwrap() + 1;
    assert_eq!(
        seqs[resumed_at],
        last_seq_before.wrapping_add(1),
        "B's video continues with the next sequence number after the pause"
    );
}

/// A VP8-shaped payload: the first packet of a keyframe (descriptor S=1, PID=0; payload header
/// P=0) or of a delta frame (P=1), followed by a tag.
fn vp8_payload(key: bool, tag: &str) -> Bytes {
    let mut bytes = vec![0x10, if key { 0x00 } else { 0x01 }];
    bytes.extend_from_slice(tag.as_bytes());
    Bytes::from(bytes)
}

#[test]
fn a_simulcast_publisher_reaches_a_subscriber_as_one_stream_switching_on_keyframes() {
    let mut net = Net::with_simulcast(true);
    let room = RoomId(Uuid::new_v4());
    let client = Client::simulcast(net.now, "192.168.1.10:40000");
    let a = net.join_client(room, client, RoomRole::Guest, false, None);
    let b = net.join(room, "192.168.1.20:40000");
    net.advance(Duration::from_secs(2));
    assert!(net.clients[a].connected && net.clients[b].connected);
    let b_addr = net.clients[b].addr;

    // A behaves like a browser: three layers per frame (30 fps), a keyframe on every layer
    // when asked (PLI), and on its first frame.
    let mut frame = 0usize;
    let mut plis_seen = usize::MAX;
    let mut tick = |net: &mut Net| {
        let key = net.clients[a].plis != plis_seen;
        plis_seen = net.clients[a].plis;
        for layer in 0..3 {
            let seq = (layer as u16 * 20_000).wrapping_add(frame as u16);
            let tag = format!("L{layer}-{frame}");
            net.clients[a].send_layer(net.now, layer, seq, vp8_payload(key, &tag));
        }
        net.clients[a].send_rtp(net.now, RtpCodecKind::Audio, payload("a-audio", frame));
        frame += 1;
        net.advance(Duration::from_millis(33));
    };
    let layers_at_b = |net: &Net| -> Vec<(usize, bool)> {
        net.payloads(b, a, 96)
            .iter()
            .filter_map(|p| {
                let tag = std::str::from_utf8(&p[2..]).ok()?;
                let layer = tag.strip_prefix('L')?.split('-').next()?.parse().ok()?;
                Some((layer, p[1] == 0x00))
            })
            .collect()
    };
    for _ in 0..60 {
        tick(&mut net);
    }
    let got = layers_at_b(&net);
    assert!(!got.is_empty(), "B must receive A's video");
    assert!(got[0].1, "B's video starts with a keyframe");
    assert!(
        got.iter().all(|(layer, _)| *layer == 0),
        "a fresh subscriber gets the lowest layer only: {got:?}"
    );
    assert!(net.core.counters().drops(DropReason::LayerNotSelected) > 0);

    // B's estimate grows on a clean path: the relay asks A for a keyframe of the middle layer
    // and switches B to it at that keyframe.
    let start = net.now;
    while !layers_at_b(&net).iter().any(|(layer, _)| *layer > 0)
        && net.now < start + Duration::from_secs(40)
    {
        tick(&mut net);
    }
    for _ in 0..30 {
        tick(&mut net);
    }
    let got = layers_at_b(&net);
    let switch = got
        .iter()
        .position(|(layer, _)| *layer > 0)
        .expect("B must be switched up as its estimate grows");
    assert!(
        got[switch].1,
        "the switch happens at a keyframe of the new layer"
    );
    assert!(
        got[switch..]
            .iter()
            .all(|(layer, _)| *layer == got[switch].0),
        "no layer mixing after the switch: {:?}",
        &got[switch..]
    );
    // One continuous stream at B: consecutive sequence numbers across the switch.
    let seqs = &net.relay_video_seqs[&b_addr];
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0].wrapping_add(1),
            "sequence numbers to B must be continuous: {seqs:?}"
        );
    }
}

/// A browser tags its simulcast layers with mid/rid header extensions only until the relay's
/// receiver reports acknowledge their SSRCs. The relay must keep the SSRCs it learned when the
/// publisher's connection is renegotiated (here: the subscriber joins later), or the untagged
/// layers can never be bound again and the publisher's video is lost.
#[test]
fn a_simulcast_publisher_stays_received_across_renegotiation_once_its_layers_are_untagged() {
    let mut net = Net::with_simulcast(true);
    let room = RoomId(Uuid::new_v4());
    let client = Client::simulcast(net.now, "192.168.1.10:40000");
    let a = net.join_client(room, client, RoomRole::Host, false, None);
    net.advance(Duration::from_secs(2));
    assert!(net.clients[a].connected, "A connects alone");

    // A publishes alone for a while, tagged: the relay binds each layer's SSRC by its rid.
    let mut frame = 0usize;
    let mut tick = |net: &mut Net, tagged: bool| {
        for layer in 0..3 {
            let seq = (layer as u16 * 20_000).wrapping_add(frame as u16);
            let tag = format!("L{layer}-{frame}");
            net.clients[a].send_layer_tagged(net.now, layer, seq, vp8_payload(true, &tag), tagged);
        }
        frame += 1;
        net.advance(Duration::from_millis(33));
    };
    for _ in 0..30 {
        tick(&mut net, true);
    }
    let offers_to_a = |net: &Net| {
        net.clients[a]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::Offer { .. }))
            .count()
    };
    let offers_before = offers_to_a(&net);

    // B joins: A's connection is renegotiated to carry B's media. From now on A's layers are
    // untagged, as a browser's are after its SSRCs were acknowledged.
    let b = net.join(room, "192.168.1.20:40000");
    net.advance(Duration::from_secs(2));
    assert!(net.clients[b].connected, "B connects");
    for n in 0..30 {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            net.clients[b].send_rtp(net.now, kind, payload("b", n));
        }
        net.advance(Duration::from_millis(33));
    }
    assert!(
        offers_to_a(&net) > offers_before,
        "A's connection was renegotiated when B joined"
    );
    for _ in 0..60 {
        tick(&mut net, false);
    }
    let video_at_b = net.payloads(b, a, 96);
    assert!(
        !video_at_b.is_empty(),
        "B must receive A's video after A's connection was renegotiated"
    );
}

// ---- the waiting room ------------------------------------------------------------------------

impl Net {
    /// A client joining as `role`; `needs_admission` as the application's admission sets it.
    fn join_as(
        &mut self,
        room: RoomId,
        addr: &str,
        role: RoomRole,
        needs_admission: bool,
    ) -> usize {
        self.join_admitted_by(room, addr, role, needs_admission, None)
    }

    /// A client joining as `role`, admitted beforehand on behalf of the host `by` (a tablet
    /// answering that host's call), when the application says so.
    fn join_admitted_by(
        &mut self,
        room: RoomId,
        addr: &str,
        role: RoomRole,
        needs_admission: bool,
        by: Option<ParticipantId>,
    ) -> usize {
        let client = Client::new(self.now, addr);
        self.join_client(room, client, role, needs_admission, by)
    }

    /// Joins a client the test built (e.g. a simulcast one) as `role`, publishing audio and
    /// video.
    fn join_client(
        &mut self,
        room: RoomId,
        client: Client,
        role: RoomRole,
        needs_admission: bool,
        by: Option<ParticipantId>,
    ) -> usize {
        let command = Command::Join {
            session: client.session,
            grant: JoinGrant {
                room,
                participant: client.participant,
                role,
                display_name: format!("{role:?} {}", client.addr),
                needs_admission,
                admitted_by: by,
                credential: None,
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

    /// `by` sends `admit` (or `deny`) for `whom`.
    fn decide(&mut self, by: usize, whom: usize, admit: bool) {
        let (session, participant) = (self.clients[by].session, self.clients[whom].participant);
        let command = if admit {
            Command::Admit {
                session,
                participant,
            }
        } else {
            Command::Deny {
                session,
                participant,
            }
        };
        self.core.handle_command(self.now, command);
        self.pump();
    }

    fn offers(&self, c: usize) -> usize {
        self.clients[c]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::Offer { .. }))
            .count()
    }

    fn has_error(&self, c: usize, code: skaerm_sfu::protocol::ErrorCode) -> bool {
        self.clients[c].messages.iter().any(
            |m| matches!(m, ServerMessage::Error { code: got, fatal: false, .. } if *got == code),
        )
    }

    /// Both send a round of audio and video; true when each got all of the other's.
    fn media_flows_between(&mut self, a: usize, b: usize) -> bool {
        for i in 0..5 {
            for c in [a, b] {
                self.clients[c].send_rtp(self.now, RtpCodecKind::Audio, payload("warm-a", i));
                self.clients[c].send_rtp(self.now, RtpCodecKind::Video, payload("warm-v", i));
            }
            self.advance(Duration::from_millis(20));
        }
        self.advance(Duration::from_secs(1));
        for c in [a, b] {
            self.clients[c].received.clear();
        }
        for i in 0..20 {
            for c in [a, b] {
                self.clients[c].send_rtp(self.now, RtpCodecKind::Audio, payload("audio", i));
                self.clients[c].send_rtp(self.now, RtpCodecKind::Video, payload("video", i));
            }
            self.advance(Duration::from_millis(20));
        }
        [(a, b), (b, a)].into_iter().all(|(at, from)| {
            (0..20).all(|i| {
                self.payloads(at, from, 111).contains(&payload("audio", i))
                    && self.payloads(at, from, 96).contains(&payload("video", i))
            })
        })
    }
}

#[test]
fn a_guest_waits_without_an_offer_until_the_host_admits_then_media_flows_both_ways() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    // The citizen arrives first: nobody to admit them yet.
    let guest = net.join_as(room, "192.168.1.20:40000", RoomRole::Guest, true);
    net.advance(Duration::from_secs(2));
    let guest_id = net.clients[guest].participant;
    assert!(
        matches!(net.clients[guest].messages.as_slice(), [ServerMessage::Waiting { you, .. }] if you.id == guest_id),
        "the guest hears only `waiting`: {:?}",
        net.clients[guest].messages
    );
    assert_eq!(
        net.core.participant_count(),
        0,
        "no peer connection while waiting"
    );
    assert_eq!(net.core.waiting_count(), 1);
    assert!(net.events.iter().any(|e| matches!(
        e,
        RoomEvent::ParticipantWaiting { participant, role: RoomRole::Guest, .. } if *participant == guest_id
    )));

    // Staff join later and find them in `joined.waiting`.
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    net.advance(Duration::from_secs(2));
    let joined_waiting = net.clients[host].messages.iter().find_map(|m| match m {
        ServerMessage::Joined { waiting, .. } => Some(waiting.clone()),
        _ => None,
    });
    assert_eq!(
        joined_waiting.map(|w| w.iter().map(|p| p.id).collect::<Vec<_>>()),
        Some(vec![guest_id])
    );
    assert_eq!(net.offers(guest), 0, "still no offer for the waiting guest");
    assert!(!net.clients[guest].connected);
    // The host's media goes nowhere yet.
    assert!(
        !net.clients[host]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantJoined { .. })),
        "a waiting guest is not in the room"
    );

    net.decide(host, guest, true);
    assert!(
        net.clients[guest]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Joined { participants, .. } if participants.iter().any(|p| p.role == RoomRole::Host))),
        "admitted: the guest joins as usual and sees the host"
    );
    assert!(net.offers(guest) >= 1, "admitted: an offer follows");
    assert!(net.clients[host].messages.iter().any(
        |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == guest_id)
    ));
    net.advance(Duration::from_secs(2));
    assert!(net.clients[guest].connected && net.clients[host].connected);
    assert_eq!(net.core.waiting_count(), 0);
    assert!(
        net.media_flows_between(host, guest),
        "media flows both ways"
    );
    assert!(net.events.iter().any(
        |e| matches!(e, RoomEvent::ParticipantJoined { participant, .. } if *participant == guest_id)
    ));
    // The application hears who let them in (for the audit log).
    let admitted_by = net.events.iter().find_map(|e| match e {
        RoomEvent::ParticipantAdmitted {
            participant,
            role: RoomRole::Guest,
            by,
            ..
        } if *participant == guest_id => Some(*by),
        _ => None,
    });
    assert_eq!(admitted_by, Some(net.clients[host].participant));
}

#[test]
fn a_guest_admitted_on_a_hosts_behalf_goes_straight_in_and_is_reported_as_admitted_by_them() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    net.advance(Duration::from_secs(1));
    let host_id = net.clients[host].participant;
    let tablet = net.join_admitted_by(
        room,
        "192.168.1.20:40000",
        RoomRole::Guest,
        true,
        Some(host_id),
    );
    net.advance(Duration::from_secs(2));
    let tablet_id = net.clients[tablet].participant;
    assert!(
        !net.clients[tablet]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Waiting { .. })),
        "no waiting room: {:?}",
        net.clients[tablet].messages
    );
    assert!(
        !net.clients[host]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantWaiting { .. })),
        "the host is not asked to admit"
    );
    assert_eq!(net.core.waiting_count(), 0);
    assert!(net.offers(tablet) >= 1);
    assert!(net.clients[tablet].connected && net.clients[host].connected);
    assert!(
        net.media_flows_between(host, tablet),
        "media flows both ways"
    );
    let admitted = net
        .events
        .iter()
        .filter_map(|e| match e {
            RoomEvent::ParticipantAdmitted {
                participant, by, ..
            } if *participant == tablet_id => Some(*by),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(
        admitted,
        vec![host_id],
        "admitted once, by the calling host"
    );
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, RoomEvent::ParticipantWaiting { .. }))
    );
}

#[test]
fn a_denied_guest_is_ended_and_closed() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    let guest = net.join_as(room, "192.168.1.20:40000", RoomRole::Guest, true);
    net.advance(Duration::from_millis(500));
    let guest_id = net.clients[guest].participant;
    assert!(net.clients[host].messages.iter().any(
        |m| matches!(m, ServerMessage::ParticipantWaiting { participant } if participant.id == guest_id)
    ));
    net.decide(host, guest, false);
    assert!(
        net.clients[guest].messages.iter().any(|m| matches!(
            m,
            ServerMessage::Ended {
                reason: skaerm_sfu::protocol::EndReason::Denied
            }
        )),
        "the guest is told it was denied"
    );
    assert!(net.closed.contains(&net.clients[guest].session));
    assert_eq!(net.offers(guest), 0);
    assert!(net.clients[host].messages.iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantLeft { participant_id, reason: LeaveReason::Denied } if *participant_id == guest_id
    )));
    assert_eq!(net.core.waiting_count(), 0);
    assert_eq!(net.core.participant_count(), 1);
    // Nobody is waiting any more: a second decision names nobody.
    net.decide(host, guest, true);
    assert!(net.has_error(host, skaerm_sfu::protocol::ErrorCode::UnknownParticipant));
}

#[test]
fn only_a_host_can_admit() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    let relative = net.join_as(room, "192.168.1.30:40000", RoomRole::Guest, true);
    net.advance(Duration::from_millis(200));
    net.decide(host, relative, true);
    let citizen = net.join_as(room, "192.168.1.20:40000", RoomRole::Guest, true);
    net.advance(Duration::from_millis(200));
    // An admitted guest in the call tries to let someone in.
    net.decide(relative, citizen, true);
    assert!(net.has_error(relative, skaerm_sfu::protocol::ErrorCode::Forbidden));
    assert!(
        !net.closed.contains(&net.clients[relative].session),
        "not thrown out for it"
    );
    // A waiting guest tries to let itself in.
    net.decide(citizen, citizen, true);
    assert!(net.clients[citizen].messages.iter().any(|m| matches!(
        m,
        ServerMessage::Error {
            code: skaerm_sfu::protocol::ErrorCode::NotJoined,
            ..
        }
    )));
    assert_eq!(net.offers(citizen), 0);
    assert_eq!(net.core.waiting_count(), 1, "still waiting");
    assert_eq!(net.core.participant_count(), 2);
}

#[test]
fn an_admitted_guest_rejoining_after_a_cut_skips_the_waiting_room() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    let guest = net.join_as(room, "192.168.1.20:40000", RoomRole::Guest, true);
    net.advance(Duration::from_millis(200));
    net.decide(host, guest, true);
    net.advance(Duration::from_secs(2));
    // The network is cut: the guest's session goes away.
    let session = net.clients[guest].session;
    net.core.handle_command(
        net.now,
        Command::Leave {
            session,
            reason: LeaveReason::Disconnected,
        },
    );
    net.pump();
    assert_eq!(net.core.participant_count(), 1);
    // It rejoins by itself from a new address with a new session.
    let waiting_before = net.clients[host]
        .messages
        .iter()
        .filter(|m| matches!(m, ServerMessage::ParticipantWaiting { .. }))
        .count();
    let mut again = Client::new(net.now, "192.168.1.21:40000");
    again.participant = net.clients[guest].participant;
    let command = Command::Join {
        session: again.session,
        grant: JoinGrant {
            room,
            participant: again.participant,
            role: RoomRole::Guest,
            display_name: "guest".into(),
            needs_admission: true,
            admitted_by: None,
            credential: None,
        },
        publish: Publish {
            audio: true,
            video: true,
        },
    };
    net.clients.push(again);
    let again = net.clients.len() - 1;
    net.core.handle_command(net.now, command);
    net.advance(Duration::from_secs(2));
    assert!(
        !net.clients[again]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Waiting { .. })),
        "no waiting room the second time"
    );
    assert!(net.offers(again) >= 1);
    assert_eq!(
        net.clients[host]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::ParticipantWaiting { .. }))
            .count(),
        waiting_before
    );
    assert!(net.clients[again].connected);
    assert!(net.media_flows_between(host, again));
}

#[test]
fn a_waiting_guest_who_leaves_is_gone_from_the_hosts_list() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let host = net.join_as(room, "192.168.1.10:40000", RoomRole::Host, false);
    let guest = net.join_as(room, "192.168.1.20:40000", RoomRole::Guest, true);
    net.advance(Duration::from_millis(200));
    let guest_id = net.clients[guest].participant;
    let session = net.clients[guest].session;
    net.core.handle_command(
        net.now,
        Command::Leave {
            session,
            reason: LeaveReason::Disconnected,
        },
    );
    net.pump();
    assert!(net.clients[host].messages.iter().any(|m| matches!(
        m,
        ServerMessage::ParticipantLeft { participant_id, reason: LeaveReason::Disconnected } if *participant_id == guest_id
    )));
    assert!(net.events.iter().any(|e| matches!(
        e,
        RoomEvent::ParticipantLeft { participant, role: RoomRole::Guest, .. } if *participant == guest_id
    )));
    assert_eq!(net.core.waiting_count(), 0);
    // Too late to admit them now.
    net.decide(host, guest, true);
    assert!(net.has_error(host, skaerm_sfu::protocol::ErrorCode::UnknownParticipant));
    assert_eq!(net.core.participant_count(), 1);
}

/// Sends audio and video both ways for `rounds` × 20 ms.
fn talk(net: &mut Net, a: usize, b: usize, rounds: usize) {
    for i in 0..rounds {
        for c in [a, b] {
            net.clients[c].send_rtp(net.now, RtpCodecKind::Audio, payload("talk-audio", i));
            net.clients[c].send_rtp(net.now, RtpCodecKind::Video, payload("talk-video", i));
        }
        net.advance(Duration::from_millis(20));
    }
}

#[test]
fn quality_snapshots_show_live_media_and_a_lossy_uplink_as_poor() {
    let (mut net, a, b) = Net::call();
    net.core.quality_snapshot(net.now, QualitySlice::ALL); // the baseline of the bit rates
    talk(&mut net, a, b, 100);
    let rooms = net.core.quality_snapshot(net.now, QualitySlice::ALL);
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].participants.len(), 2);
    assert!(rooms[0].age >= Duration::from_secs(2), "{:?}", rooms[0].age);
    for p in &rooms[0].participants {
        assert_eq!(p.state, LinkState::Connected, "{p:?}");
        // ~2 × 50 packets/s of ~130 bytes each way: tens of kbit/s, not zero.
        assert!(p.bitrate_in_kbps > 50.0, "{p:?}");
        assert!(p.bitrate_out_kbps > 50.0, "{p:?}");
        assert_eq!(p.loss_pct, Some(0.0), "{p:?}");
        assert!(
            p.rtt_ms.is_some(),
            "the RR's LSR/DLSR gives a round trip: {p:?}"
        );
        assert!(p.jitter_ms.is_some(), "{p:?}");
        assert!(p.estimate_kbps.is_some(), "{p:?}");
        assert!(!p.video_paused);
        assert_eq!(p.layer, None, "no simulcast");
        assert_eq!(p.quality, Quality::Good, "{p:?}");
    }
    // Opaque ids and roles only: the display name never leaves the core.
    let json = serde_json::to_string(&rooms).unwrap();
    assert!(!json.contains("client 192"), "{json}");
    assert!(json.contains(&net.clients[a].participant.to_string()));

    // A's uplink now loses every 4th datagram.
    let a_addr = net.clients[a].addr;
    net.lossy_uplinks.push((a_addr, 4, 0));
    talk(&mut net, a, b, 150);
    let rooms = net.core.quality_snapshot(net.now, QualitySlice::ALL);
    let a_id = net.clients[a].participant;
    let pa = rooms[0]
        .participants
        .iter()
        .find(|p| p.participant_id == a_id)
        .unwrap();
    let loss = pa.loss_pct.unwrap_or_default();
    assert!(loss >= 10.0, "A's loss must show: {pa:?}");
    assert_eq!(pa.quality, Quality::Poor, "{pa:?}");
    assert!(
        pa.nacks_sent > 0,
        "the relay NACKed A's missing video: {pa:?}"
    );
}

#[test]
fn a_participant_whose_media_never_comes_up_is_counted_once_as_an_ice_timeout() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    // Signalling admitted it, but no ICE check ever arrives (UDP blocked on its network).
    net.core.handle_command(
        net.now,
        Command::Join {
            session: SessionId::next(),
            grant: JoinGrant {
                room,
                participant: ParticipantId(Uuid::new_v4()),
                role: RoomRole::Guest,
                display_name: "blocked".to_owned(),
                needs_admission: false,
                admitted_by: None,
                credential: None,
            },
            publish: Publish {
                audio: true,
                video: true,
            },
        },
    );
    let rooms = net.core.quality_snapshot(net.now, QualitySlice::ALL);
    assert_eq!(rooms[0].participants[0].state, LinkState::Connecting);
    assert_eq!(rooms[0].participants[0].quality, Quality::Unknown);
    net.advance(Duration::from_secs(14));
    net.core.quality_snapshot(net.now, QualitySlice::ALL);
    assert_eq!(net.core.counters().ice_timeouts, 0, "not yet");
    net.advance(Duration::from_secs(2));
    net.core.quality_snapshot(net.now, QualitySlice::ALL);
    assert_eq!(net.core.counters().ice_timeouts, 1);
    net.advance(Duration::from_secs(5));
    net.core.quality_snapshot(net.now, QualitySlice::ALL);
    assert_eq!(net.core.counters().ice_timeouts, 1, "counted once");
}

/// A STUN binding request naming `relay_ufrag` (without integrity: a stranger's guess).
fn binding_request(relay_ufrag: &str) -> BytesMut {
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
    use rtc::stun::textattrs::Username;
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            ATTR_USERNAME,
            format!("{relay_ufrag}:stranger"),
        )),
    ];
    m.build(&setters).unwrap();
    BytesMut::from(&m.raw[..])
}

#[test]
fn a_participant_whose_network_changes_recovers_by_ice_restart_in_the_same_session() {
    let (mut net, a, b) = Net::call();
    let events_before = net.events.len();
    let messages_before = net.clients[a].messages.len();
    let old_ufrags = net.clients[b].offer_ufrags();
    let old_ufrag = old_ufrags.last().cloned().unwrap();

    // B's network goes away (wifi lost): nothing reaches or leaves its old address, long enough
    // for both ends to notice.
    let old_addr = net.clients[b].addr;
    net.cut.push(old_addr);
    for i in 0..300 {
        for c in [a, b] {
            net.clients[c].send_rtp(net.now, RtpCodecKind::Audio, payload("cut-audio", i));
        }
        net.advance(Duration::from_millis(20));
    }
    assert!(!net.clients[b].connected, "B's connection noticed the cut");

    // B is on another network now and asks for an ICE restart on its (still open) socket.
    net.clients[b].move_to("172.16.5.7:51000");
    let session = net.clients[b].session;
    net.core
        .handle_command(net.now, Command::RestartIce { session });
    net.advance(Duration::from_secs(3));

    let ufrags = net.clients[b].offer_ufrags();
    assert_eq!(ufrags.len(), old_ufrags.len() + 1, "one restart offer");
    let new_ufrag = ufrags.last().cloned().unwrap();
    assert_ne!(
        new_ufrag, old_ufrag,
        "the restart offer carries a new ufrag"
    );
    assert!(
        net.clients[b].connected,
        "checks from the new address connect"
    );
    assert_eq!(net.core.counters().ice_restarts, 1);

    // Media flows again both ways, B from and to its new address.
    for c in [a, b] {
        net.clients[c].received.clear();
    }
    for i in 0..50 {
        for c in [a, b] {
            net.clients[c].send_rtp(net.now, RtpCodecKind::Audio, payload("after-audio", i));
            net.clients[c].send_rtp(net.now, RtpCodecKind::Video, payload("after-video", i));
        }
        net.advance(Duration::from_millis(20));
    }
    for (me, other) in [(a, b), (b, a)] {
        for (kind, pt) in [("audio", 111u8), ("video", 96u8)] {
            let got = net.payloads(me, other, pt);
            let want = payload(&format!("after-{kind}"), 49);
            assert!(
                got.contains(&want),
                "{kind} must flow again to client {me} ({} packets)",
                got.len()
            );
        }
    }

    // Same session, same participant: the others heard nothing, nobody left or joined.
    assert!(!net.closed.contains(&session));
    assert!(
        !net.events[events_before..].iter().any(|e| matches!(
            e,
            RoomEvent::ParticipantLeft { .. } | RoomEvent::ParticipantJoined { .. }
        )),
        "no leave/join: {:?}",
        &net.events[events_before..]
    );
    assert!(
        !net.clients[a].messages[messages_before..]
            .iter()
            .any(|m| matches!(
                m,
                ServerMessage::ParticipantLeft { .. } | ServerMessage::ParticipantJoined { .. }
            )),
        "A was told nothing"
    );
    assert_eq!(net.core.participant_count(), 2);

    // The old ufrag is forgotten: a check naming it from an unknown address is not routed.
    let unknown_before = net.core.counters().drops(DropReason::UnknownUfrag);
    let stranger: SocketAddr = "203.0.113.9:1234".parse().unwrap();
    let now = net.now;
    net.core
        .handle_datagram(now, stranger, None, binding_request(&old_ufrag));
    assert_eq!(
        net.core.counters().drops(DropReason::UnknownUfrag),
        unknown_before + 1
    );
    // A stranger naming the new ufrag gets routed but fails integrity: it is not bound, so
    // its next datagram (not STUN) is an unknown source.
    net.core
        .handle_datagram(now, stranger, None, binding_request(&new_ufrag));
    net.pump();
    let unknown_source = net.core.counters().drops(DropReason::UnknownSource);
    let mut rtp = vec![0x80u8, 96];
    rtp.extend_from_slice(&[0u8; 30]);
    net.core
        .handle_datagram(now, stranger, None, BytesMut::from(&rtp[..]));
    assert_eq!(
        net.core.counters().drops(DropReason::UnknownSource),
        unknown_source + 1,
        "a forged check must not bind an address"
    );
}

#[test]
fn ice_restarts_are_rate_limited_counted_and_only_for_joined_participants() {
    let (mut net, _a, b) = Net::call();
    let session = net.clients[b].session;
    let offers = |net: &Net| net.clients[b].offer_ufrags().len();
    let refusals = |net: &Net| {
        net.clients[b]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::Error { code, .. } if *code == skaerm_sfu::protocol::ErrorCode::RateLimited))
            .count()
    };
    let start = offers(&net);

    // Two asks before the answer: one restart (the second is absorbed, not counted).
    net.core
        .handle_command(net.now, Command::RestartIce { session });
    net.core
        .handle_command(net.now, Command::RestartIce { session });
    net.advance(Duration::from_millis(200));
    assert_eq!(offers(&net), start + 1);
    assert_eq!(net.core.counters().ice_restarts, 1);

    // A client asking in a loop: a burst of three in all, then refusals.
    for _ in 0..10 {
        net.core
            .handle_command(net.now, Command::RestartIce { session });
        net.advance(Duration::from_millis(200));
    }
    assert_eq!(offers(&net), start + 3, "three restarts at once, no more");
    assert_eq!(net.core.counters().ice_restarts, 3);
    assert_eq!(net.core.counters().ice_restarts_refused, 8);
    assert_eq!(refusals(&net), 8);
    let ufrags = net.clients[b].offer_ufrags();
    let distinct: std::collections::HashSet<&String> = ufrags.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "the first ICE session's ufrag and a fresh one per restart"
    );
    assert!(net.clients[b].connected, "restarts in a row still connect");

    // Later the budget refills by one.
    net.advance(Duration::from_secs(10));
    net.core
        .handle_command(net.now, Command::RestartIce { session });
    net.advance(Duration::from_millis(500));
    assert_eq!(net.core.counters().ice_restarts, 4);
    assert!(net.clients[b].connected);

    // Someone not in a room gets not_joined, and nothing happens.
    let stranger = SessionId::next();
    net.core
        .handle_command(net.now, Command::RestartIce { session: stranger });
    let told = net.core.poll_output();
    assert!(
        matches!(
            told,
            Some(CoreOutput::Signal(s, ServerMessage::Error { code: skaerm_sfu::protocol::ErrorCode::NotJoined, .. })) if s == stranger
        ),
        "{told:?}"
    );
    assert_eq!(net.core.counters().ice_restarts, 4);
}

#[test]
fn a_check_that_beats_the_answer_is_answered_as_soon_as_the_answer_is_applied() {
    let mut net = Net::new();
    net.hold_answers = true;
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    // The client answers and starts checking at once; its answer is still on the way.
    net.advance(Duration::from_millis(50));
    let addr = net.clients[a].addr;
    let first_check = *net
        .first_check
        .get(&addr)
        .expect("the client checks before its answer arrives");
    assert!(first_check < net.now);
    assert_eq!(net.held_answers.len(), 1);
    assert!(!net.clients[a].connected);
    assert_eq!(net.core.counters().early_checks_replayed, 0);

    net.release_answers();
    let answered = net.now;
    net.pump();
    assert!(
        net.core.counters().early_checks_replayed >= 1,
        "the held check is fed to the connection with the answer"
    );
    // The client's next check would go out 200 ms after its first (rtc's check interval):
    // connecting well before that means the held check was answered, not a retry.
    while !net.clients[a].connected && net.now < answered + Duration::from_millis(500) {
        net.advance(Duration::from_millis(5));
    }
    assert!(net.clients[a].connected, "the client must connect");
    let took = net.now - answered;
    assert!(
        took < Duration::from_millis(100),
        "connected {took:?} after the answer: the early check was not answered"
    );
    assert_eq!(net.core.counters().drops(DropReason::EarlyCheck), 0);
}

/// The relay is the DTLS client: its ClientHello must leave as soon as ICE has selected a
/// pair, not at the connection's next ICE check tick 200 ms later (which every join paid).
#[test]
fn the_dtls_handshake_follows_ice_at_once() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    let start = net.now;
    let mut ice_at = None;
    while !net.clients[a].connected && net.now < start + Duration::from_secs(2) {
        net.advance(Duration::from_millis(1));
        if ice_at.is_none() && net.clients[a].ice_connected {
            ice_at = Some(net.now);
        }
    }
    assert!(net.clients[a].connected, "the client must connect");
    let ice_at = ice_at.expect("the client's ICE agent connected");
    let handshake = net.now - ice_at;
    assert!(
        handshake < Duration::from_millis(20),
        "DTLS connected {handshake:?} after ICE (200 ms: the ClientHello waited for a tick)"
    );
}

/// A trickled candidate of `client` as signalling hands it to the core.
fn candidate(net: &mut Net, client: usize, line: &str) {
    let session = net.clients[client].session;
    net.core.handle_command(
        net.now,
        Command::Candidate {
            session,
            candidate: ClientCandidate {
                candidate: line.to_owned(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            },
        },
    );
}

#[test]
fn a_candidate_flood_stays_at_the_cap_costs_bounded_time_and_media_keeps_flowing() {
    let (mut net, a, b) = Net::call();
    const FLOOD: usize = 50_000;
    let started = std::time::Instant::now();
    for i in 0..FLOOD {
        let line = format!(
            "candidate:{i} 1 udp 2122260223 10.{}.{}.{} {} typ host",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            10_000 + i % 50_000
        );
        candidate(&mut net, b, &line);
        // Every one of them twice (a duplicate of a taken one is ignored).
        candidate(&mut net, b, &line);
    }
    let spent = started.elapsed();
    let c = net.core.counters();
    assert_eq!(
        c.drops(DropReason::CandidateOverLimit),
        2 * (FLOOD - 16) as u64,
        "the core takes 16 candidates per ICE session, refuses the rest"
    );
    assert_eq!(c.drops(DropReason::CandidateIgnored), 16);
    // Linear with a tiny constant (the unbounded agent took 0.4 s for 10 000 in release).
    assert!(
        spent < Duration::from_secs(10),
        "{FLOOD} candidates took {spent:?}"
    );
    // B was told once, not 50 000 times.
    net.pump();
    let told = net.clients[b]
        .messages
        .iter()
        .filter(|m| {
            matches!(
                m,
                ServerMessage::Error {
                    code: ErrorCode::TooManyCandidates,
                    ..
                }
            )
        })
        .count();
    assert_eq!(told, 1);
    // Media still flows both ways.
    net.clients[a].received.clear();
    net.clients[b].received.clear();
    talk(&mut net, a, b, 20);
    assert!(net.payloads(a, b, 111).len() >= 15);
    assert!(net.payloads(b, a, 111).len() >= 15);
}

#[test]
fn mdns_candidates_are_ignored_and_no_mdns_query_leaves_the_relay() {
    let (mut net, a, _b) = Net::call();
    candidate(
        &mut net,
        a,
        "candidate:1 1 udp 2122260223 3f1c2a9e-1b2c-4d5e-8f90-123456789abc.local 54321 typ host generation 0",
    );
    net.advance(Duration::from_secs(5));
    assert_eq!(net.mdns_sent, 0, "no mDNS query from the media port");
    assert_eq!(
        net.core.counters().drops(DropReason::CandidateIgnored),
        1,
        "the `.local` candidate was ignored (counted), not resolved"
    );
}

#[test]
fn forged_and_broken_checks_from_a_participants_address_are_counted_by_reason() {
    let (mut net, a, b) = Net::call();
    let addr = net.clients[b].addr;
    let ufrag = net.clients[b].offer_ufrags().last().cloned().unwrap();
    let now = net.now;
    // A check naming B's live ufrag but without B's password (forged): 100 of them.
    for _ in 0..100 {
        net.core
            .handle_datagram(now, addr, None, binding_request(&ufrag));
    }
    // STUN-looking garbage (the magic cookie, then nonsense attributes) from B's address.
    let mut garbage = vec![0x00u8, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    garbage.extend_from_slice(&[7u8; 12]); // transaction id
    garbage.extend_from_slice(&[0x00, 0x06, 0x00, 0xff, 1, 2, 3, 4]); // attribute overruns
    for _ in 0..50 {
        net.core
            .handle_datagram(now, addr, None, BytesMut::from(&garbage[..]));
    }
    // A stranger's forged check naming B's ufrag counts the same way.
    net.core.handle_datagram(
        now,
        "203.0.113.50:4444".parse().unwrap(),
        None,
        binding_request(&ufrag),
    );
    let c = net.core.counters();
    assert_eq!(c.drops(DropReason::StunBadIntegrity), 101);
    assert_eq!(c.drops(DropReason::StunMalformed), 50);
    // B's real checks still pass: media keeps flowing both ways.
    net.clients[a].received.clear();
    net.clients[b].received.clear();
    talk(&mut net, a, b, 20);
    assert!(net.payloads(a, b, 111).len() >= 15);
    assert!(net.payloads(b, a, 111).len() >= 15);
}

#[test]
fn the_others_are_told_when_a_participants_media_does_not_arrive_and_when_it_does() {
    let mut net = Net::new();
    let room = RoomId(Uuid::new_v4());
    let a = net.join(room, "192.168.1.10:40000");
    net.advance(Duration::from_secs(2));
    // B's answer never reaches the relay (as if its media path were blocked).
    net.hold_answers = true;
    let b = net.join(room, "192.168.1.20:40000");
    let b_id = net.clients[b].participant;
    let told = |net: &Net, arriving: bool| {
        net.clients[a]
            .messages
            .iter()
            .filter(|m| match m {
                ServerMessage::MediaNotArriving { participant_id } => {
                    !arriving && *participant_id == b_id
                }
                ServerMessage::MediaArriving { participant_id } => {
                    arriving && *participant_id == b_id
                }
                _ => false,
            })
            .count()
    };
    net.advance(Duration::from_secs(5));
    assert_eq!(told(&net, false), 0, "not before the wait is over");
    net.advance(Duration::from_secs(2));
    assert_eq!(
        told(&net, false),
        1,
        "A hears that B's media is not arriving"
    );
    assert!(
        !net.clients[b]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::MediaNotArriving { .. })),
        "B itself is not told about itself"
    );
    // B's answer gets through and B restarts ICE (its first checks went unanswered): its
    // media comes up and A hears so.
    net.release_answers();
    let session = net.clients[b].session;
    net.core
        .handle_command(net.now, Command::RestartIce { session });
    net.advance(Duration::from_secs(3));
    assert!(net.clients[b].connected);
    assert_eq!(told(&net, true), 1, "A hears that B's media arrives now");
    assert_eq!(told(&net, false), 1, "told once");
}

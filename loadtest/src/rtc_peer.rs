//! One synthetic browser: an `rtc` (sans-I/O) peer connection with full ICE, DTLS-SRTP and the
//! default interceptors (NACK, reports, TWCC feedback, as a browser would send), publishing one
//! audio and one video track. It answers offers (the Skærm relay, Janus subscriptions) or
//! offers itself (Janus publishing). No sockets, no clock: the engine feeds it datagrams and
//! `now` and carries its writes.
//!
//! With simulcast the video track has three encodings (rid q, h, f, each its own SSRC). Answering
//! an offer with `a=simulcast:recv` (the relay) gives `a=simulcast:send`; offering (Janus) writes
//! `a=rid:… send` and `a=simulcast:send` itself. Every layer packet carries the `sdes:mid` and
//! `sdes:rtp-stream-id` header extensions — on every packet, as a browser does until the far end
//! has acknowledged its SSRCs (which `rtc` never does), so the receiver can always tell layers
//! apart by rid, also after a renegotiation.

use crate::accounting::JoinMark;
use crate::net::Outgoing;
use crate::stamp::{Kind, LAYER_RIDS};
use crate::synth::SynthPacket;
use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use rtc::interceptor::{
    Attribute, Interceptor, Packet as InterceptorPacket, Registry, Slot, StreamInfo, TaggedPacket,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// Chain position of [`KeyframeRequestTap`]: application-most, after every interceptor.
const KEYFRAME_TAP_SLOT: usize = 20_000;

/// `rtc`'s interceptor chain drops inbound RTCP unless an interceptor marks it for the
/// application; this marks keyframe requests (PLI, FIR), which a browser's encoder answers.
#[derive(Default)]
struct KeyframeRequestTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptorPacket::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What a received datagram carried for the engine.
pub enum Inbound<'a> {
    /// An RTP payload (media).
    Media(&'a Bytes),
    /// A keyframe request for simulcast layer `Some(l)` or the one video stream (`None`).
    KeyframeRequest(Option<usize>),
}

/// Connection progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// ICE/DTLS not done yet.
    Connecting,
    /// Media can flow.
    Connected,
    /// ICE or DTLS failed, or the connection closed.
    Failed,
}

struct Sender {
    id: RTCRtpSenderId,
    /// One SSRC, or one per simulcast layer (q, h, f).
    ssrcs: Vec<u32>,
    payload_type: Option<u8>,
    /// Negotiated `sdes:mid` extension id and the m-line's mid (simulcast video only).
    mid: Option<(u8, Bytes)>,
    /// Negotiated `sdes:rtp-stream-id` extension id (simulcast video only).
    rid_id: Option<u8>,
}

/// A synthetic browser's peer connection.
pub struct RtcPeer {
    pc: RTCPeerConnection,
    local: SocketAddr,
    audio: Option<Sender>,
    video: Option<Sender>,
    state: PeerState,
    /// Join marks reached since the engine last looked (ICE, DTLS connected).
    marks: Vec<(JoinMark, Instant)>,
}

fn codec(kind: Kind) -> RTCRtpCodec {
    match kind {
        Kind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        },
        Kind::Video => RTCRtpCodec {
            mime_type: "video/VP8".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            ..Default::default()
        },
    }
}

impl RtcPeer {
    /// A peer on `local` (its host candidate); with `publish`, one audio and one video track,
    /// the video as three simulcast layers with `simulcast`.
    pub fn new(
        now: Instant,
        local: SocketAddr,
        publish: bool,
        simulcast: bool,
        name: &str,
    ) -> Result<RtcPeer> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs()?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            .with(Slot::from(KEYFRAME_TAP_SLOT), KeyframeRequestTap::default());
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        let mut senders = [None, None];
        if publish {
            for (slot, kind, rtc_kind) in [
                (0, Kind::Audio, RtpCodecKind::Audio),
                (1, Kind::Video, RtpCodecKind::Video),
            ] {
                let rids: &[&str] = if simulcast && kind == Kind::Video {
                    &LAYER_RIDS
                } else {
                    &[""]
                };
                let ssrcs: Vec<u32> = rids.iter().map(|_| rand::random::<u32>()).collect();
                // Described highest first (`a=simulcast:send f;h;q` when offering), the order
                // Janus reads as highest to lowest; `ssrcs` stays lowest first.
                let encodings = rids
                    .iter()
                    .zip(&ssrcs)
                    .rev()
                    .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            rid: (*rid).to_owned(),
                            ssrc: Some(*ssrc),
                            ..Default::default()
                        },
                        active: true,
                        codec: codec(kind),
                        ..Default::default()
                    })
                    .collect();
                let track = MediaStreamTrack::new(
                    name.to_owned(),
                    format!("{name}-{rtc_kind}"),
                    format!("{rtc_kind}"),
                    rtc_kind,
                    encodings,
                );
                let id = pc.add_track(track)?;
                senders[slot] = Some(Sender {
                    id,
                    ssrcs,
                    payload_type: None,
                    mid: None,
                    rid_id: None,
                });
            }
        }
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        let [audio, video] = senders;
        Ok(RtcPeer {
            pc,
            local,
            audio,
            video,
            state: PeerState::Connecting,
            marks: Vec::new(),
        })
    }

    /// Applies a remote offer and returns the answer SDP.
    pub fn answer(&mut self, now: Instant, offer: String) -> Result<String> {
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(offer)?)
            .context("applying the offer")?;
        let answer = self.pc.create_answer(None)?;
        self.pc.set_local_description(now, answer)?;
        self.learn_payload_types();
        Ok(self
            .pc
            .local_description()
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp)
    }

    /// Creates and applies a local offer; returns its SDP.
    pub fn offer(&mut self, now: Instant) -> Result<String> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(now, offer)?;
        Ok(self
            .pc
            .local_description()
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp)
    }

    /// Applies the remote answer to our offer.
    pub fn apply_answer(&mut self, now: Instant, answer: String) -> Result<()> {
        self.pc
            .set_remote_description(now, RTCSessionDescription::answer(answer)?)
            .context("applying the answer")?;
        self.learn_payload_types();
        Ok(())
    }

    /// Learns what the negotiation settled for each sender: its payload type and, for a
    /// simulcast video sender, the mid and rid header extensions.
    fn learn_payload_types(&mut self) {
        for (sender, mime) in [
            (&mut self.audio, "audio/opus"),
            (&mut self.video, "video/vp8"),
        ] {
            let Some(sender) = sender else { continue };
            let Some(mut s) = self.pc.rtp_sender(sender.id) else {
                continue;
            };
            let parameters = s.get_parameters().rtp_parameters.clone();
            sender.payload_type = parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|c| c.payload_type);
            if sender.ssrcs.len() < 2 {
                continue;
            }
            let ext_id = |uri: &str| {
                parameters
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .and_then(|h| u8::try_from(h.id).ok())
            };
            sender.rid_id = ext_id(rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI);
            let mid = self
                .pc
                .rtp_transceiver(sender.id.into())
                .and_then(|t| t.mid().clone());
            sender.mid = ext_id(rtc::sdp::extmap::SDES_MID_URI)
                .zip(mid)
                .map(|(id, mid)| (id, Bytes::from(mid.into_bytes())));
        }
    }

    /// Where it is.
    pub fn state(&self) -> PeerState {
        self.state
    }

    /// Whether it publishes and knows its payload types.
    pub fn can_send(&self) -> bool {
        self.state == PeerState::Connected
            && self
                .audio
                .as_ref()
                .is_some_and(|s| s.payload_type.is_some())
            && self
                .video
                .as_ref()
                .is_some_and(|s| s.payload_type.is_some())
    }

    /// Encrypts and queues one synthetic packet. Bypasses `RTCRtpSender::write_rtp`, which
    /// rebuilds the sender's parameters for every packet; the pipeline below it (interceptors,
    /// SRTP) is the same.
    pub fn send(&mut self, now: Instant, packet: &SynthPacket) -> Result<()> {
        let sender = match packet.kind {
            Kind::Audio => self.audio.as_ref(),
            Kind::Video => self.video.as_ref(),
        }
        .ok_or_else(|| anyhow!("not publishing"))?;
        let payload_type = sender
            .payload_type
            .ok_or_else(|| anyhow!("no payload type negotiated"))?;
        let layer = packet.layer.unwrap_or(0);
        let ssrc = *sender
            .ssrcs
            .get(layer)
            .ok_or_else(|| anyhow!("no SSRC for layer {layer}"))?;
        let mut header = rtc::rtp::Header {
            version: 2,
            payload_type,
            sequence_number: packet.rtp_seq,
            timestamp: packet.rtp_ts,
            ssrc,
            marker: packet.marker,
            ..Default::default()
        };
        if packet.layer.is_some() {
            if let Some((id, mid)) = &sender.mid {
                header.set_extension(*id, mid.clone())?;
            }
            if let Some(id) = sender.rid_id {
                header.set_extension(id, Bytes::from_static(LAYER_RIDS[layer].as_bytes()))?;
            }
        }
        let rtp = rtc::rtp::Packet {
            header,
            payload: packet.payload.clone(),
        };
        self.pc.handle_write(TaggedRTCMessage {
            now,
            message: RTCMessage::RtpPacket(String::new(), rtp),
        })?;
        Ok(())
    }

    /// Feeds a received datagram; calls `on` with each RTP payload and keyframe request that
    /// came out.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        mut on: impl FnMut(Inbound<'_>),
    ) {
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
        while let Some(message) = self.pc.poll_read() {
            match message.message {
                RTCMessage::RtpPacket(_, packet) => on(Inbound::Media(&packet.payload)),
                RTCMessage::RtcpPacket(_, packets) => {
                    let Some(video) = &self.video else { continue };
                    for packet in packets.iter().filter(|p| is_keyframe_request(p.as_ref())) {
                        for ssrc in packet.destination_ssrc() {
                            if let Some(layer) = video.ssrcs.iter().position(|s| *s == ssrc) {
                                let simulcast = video.ssrcs.len() > 1;
                                on(Inbound::KeyframeRequest(simulcast.then_some(layer)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        self.poll_events();
    }

    fn poll_events(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(local = %self.local, ?state, "peer connection state");
                    self.state = match state {
                        RTCPeerConnectionState::Connected => {
                            self.marks.push((JoinMark::DtlsConnected, Instant::now()));
                            PeerState::Connected
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            PeerState::Failed
                        }
                        _ => self.state,
                    };
                }
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) => {
                    tracing::debug!(local = %self.local, "ICE connected");
                    self.marks.push((JoinMark::IceConnected, Instant::now()));
                }
                _ => {}
            }
        }
    }

    /// The join marks reached since the last call.
    pub fn take_marks(&mut self) -> Vec<(JoinMark, Instant)> {
        std::mem::take(&mut self.marks)
    }

    /// Moves pending datagrams to `out`, sent from this peer's address.
    pub fn drain(&mut self, out: &mut Vec<Outgoing>) {
        while let Some(write) = self.pc.poll_write() {
            out.push(Outgoing {
                from: Some(self.local.ip()),
                to: write.transport.peer_addr,
                data: write.message,
            });
        }
        self.poll_events();
    }

    /// The peer's next deadline.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
    }
}

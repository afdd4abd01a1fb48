//! One synthetic browser: an `rtc` (sans-I/O) peer connection with full ICE, DTLS-SRTP and the
//! default interceptors (NACK, reports, TWCC feedback, as a browser would send), publishing one
//! audio and one video track. It answers offers (the Skærm relay, Janus subscriptions) or
//! offers itself (Janus publishing). No sockets, no clock: the engine feeds it datagrams and
//! `now` and carries its writes.

use crate::net::Outgoing;
use crate::stamp::Kind;
use crate::synth::SynthPacket;
use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;
use std::time::Instant;

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
    ssrc: u32,
    payload_type: Option<u8>,
}

/// A synthetic browser's peer connection.
pub struct RtcPeer {
    pc: RTCPeerConnection,
    local: SocketAddr,
    audio: Option<Sender>,
    video: Option<Sender>,
    state: PeerState,
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
    /// A peer on `local` (its host candidate); with `publish`, one audio and one video track.
    pub fn new(now: Instant, local: SocketAddr, publish: bool, name: &str) -> Result<RtcPeer> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs()?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
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
                let ssrc = rand::random::<u32>();
                let track = MediaStreamTrack::new(
                    name.to_owned(),
                    format!("{name}-{rtc_kind}"),
                    format!("{rtc_kind}"),
                    rtc_kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        active: true,
                        codec: codec(kind),
                        ..Default::default()
                    }],
                );
                let id = pc.add_track(track)?;
                senders[slot] = Some(Sender {
                    id,
                    ssrc,
                    payload_type: None,
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

    fn learn_payload_types(&mut self) {
        for (sender, mime) in [
            (&mut self.audio, "audio/opus"),
            (&mut self.video, "video/vp8"),
        ] {
            let Some(sender) = sender else { continue };
            if let Some(mut s) = self.pc.rtp_sender(sender.id) {
                sender.payload_type = s
                    .get_parameters()
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                    .map(|c| c.payload_type);
            }
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
        let rtp = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number: packet.rtp_seq,
                timestamp: packet.rtp_ts,
                ssrc: sender.ssrc,
                marker: packet.marker,
                ..Default::default()
            },
            payload: packet.payload.clone(),
        };
        self.pc.handle_write(TaggedRTCMessage {
            now,
            message: RTCMessage::RtpPacket(String::new(), rtp),
        })?;
        Ok(())
    }

    /// Feeds a received datagram; calls `on_media` with each RTP payload that came out.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        mut on_media: impl FnMut(&Bytes),
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
            if let RTCMessage::RtpPacket(_, packet) = message.message {
                on_media(&packet.payload);
            }
        }
        self.poll_events();
    }

    fn poll_events(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                tracing::debug!(local = %self.local, ?state, "peer connection state");
                self.state = match state {
                    RTCPeerConnectionState::Connected => PeerState::Connected,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        PeerState::Failed
                    }
                    _ => self.state,
                };
            }
        }
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

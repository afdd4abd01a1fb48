//! Building the relay's side of a peer connection on the `rtc` core: codecs, header
//! extensions, interceptors, ICE-lite, and one shared DTLS certificate.
//!
//! ICE credentials are left to `rtc`'s agent (random, 16-character ufrag and 32-character
//! password from the crypto provider): fixed credentials in the setting engine would make an
//! ICE restart offer the same ufrag again. The core learns each connection's ufrag from the
//! offers it creates ([`local_ufrag`]).
//!
//! Every participant gets exactly the same codec set (Opus; VP8 with RTX) so the relay never
//! needs to transcode, and because the relay is always the offerer, payload types and
//! extension ids are the same on every leg.

use crate::media::bandwidth::{Estimate, EstimateProbe};
use crate::media::feedback::{NackGate, NackSwitch};
use crate::media::rtcp_reports::{RtcpReportCells, RtcpReportProbe};
use crate::media::tap::{RELAY_TAP_SLOT, RelayTap};
use rtc::interceptor::{
    CongestionControlBuilder, NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder,
    Registry, SenderReportBuilder, Slot, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::sync::Arc;
use std::time::Instant;

/// Opus payload type offered on every leg.
pub(crate) const OPUS_PT: u8 = 111;
/// VP8 payload type offered on every leg.
pub(crate) const VP8_PT: u8 = 96;
/// VP8 retransmission (RTX) payload type.
pub(crate) const VP8_RTX_PT: u8 = 97;

/// Packets kept per outbound video stream to answer subscribers' NACKs (a power of two). At
/// 1.2 Mbit/s (~130 packets/s) this is about two seconds of history, several round trips on
/// any path a retransmission can still help on, and bounded memory per subscriber.
pub(crate) const SEND_CACHE_PACKETS: u16 = 256;
/// Most NACKs the relay sends upstream for one missing publisher packet.
const MAX_NACKS_PER_PACKET: u16 = 3;

/// Header extensions the relay negotiates, and whether it forwards their values from a
/// publisher to subscribers. Extensions tied to one transport (transport-cc, abs-send-time)
/// or one m-line (mid, rid) are never forwarded as is.
pub(crate) const FORWARDED_EXTENSIONS: &[&str] = &[
    rtc::sdp::extmap::AUDIO_LEVEL_URI,
    rtc::sdp::extmap::VIDEO_ORIENTATION_URI,
];

/// The codec of each kind, as put in a sender's encoding.
pub(crate) fn codec_for(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => opus().rtp_codec,
        _ => vp8().rtp_codec,
    }
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

fn vp8() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")],
        },
        payload_type: VP8_PT,
    }
}

fn vp8_rtx() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: format!("apt={VP8_PT}"),
            rtcp_feedback: vec![],
        },
        payload_type: VP8_RTX_PT,
    }
}

/// A failure to set up the relay's side of a connection.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The `rtc` core refused the configuration.
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
}

/// Makes relay-side peer connections. One per media worker; cheap to use per join.
pub(crate) struct PeerFactory {
    certificate: RTCCertificate,
}

/// The ICE password of a session description (`a=ice-pwd:`, the first one; the relay's offers
/// and the clients' answers alike). `None` when there
/// is none or it is empty.
pub(crate) fn local_ice_pwd(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-pwd:"))
        .filter(|pwd| !pwd.is_empty())
}

/// The ICE ufrag of a session description (`a=ice-ufrag:`; bundled, so the first one names the
/// transport). `None` when there is none or it is empty.
pub(crate) fn local_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
        .filter(|ufrag| !ufrag.is_empty())
}

impl PeerFactory {
    /// Generates the DTLS certificate shared by all connections of this factory.
    pub(crate) fn new() -> Result<Self, EngineError> {
        let provider = rtc::crypto::default_provider()
            .map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?;
        let params = CertificateParams::new(vec!["skaerm".to_owned()])
            .map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?;
        let certificate = RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            params,
        )?;
        Ok(PeerFactory { certificate })
    }

    /// A new relay-side connection: ICE-lite, our codecs; and the handles to its send-side
    /// bandwidth estimate, to what its RTCP reports say and to the switch of its NACK gate.
    /// `min_estimate_bps` bounds the estimate from below.
    pub(crate) fn build(
        &self,
        now: Instant,
        min_estimate_bps: u64,
    ) -> Result<
        (
            RTCPeerConnection,
            Estimate,
            Arc<RtcpReportCells>,
            NackSwitch,
        ),
        EngineError,
    > {
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
        media_engine.register_codec(vp8(), RtpCodecKind::Video)?;
        media_engine.register_codec(vp8_rtx(), RtpCodecKind::Video)?;
        for (uri, kind) in [
            (rtc::sdp::extmap::SDES_MID_URI, RtpCodecKind::Audio),
            (rtc::sdp::extmap::SDES_MID_URI, RtpCodecKind::Video),
            (
                rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
                RtpCodecKind::Video,
            ),
            (
                rtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
                RtpCodecKind::Video,
            ),
            (rtc::sdp::extmap::AUDIO_LEVEL_URI, RtpCodecKind::Audio),
            (rtc::sdp::extmap::VIDEO_ORIENTATION_URI, RtpCodecKind::Video),
        ] {
            media_engine.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                kind,
                None,
            )?;
        }
        let (probe, estimate) = EstimateProbe::new(min_estimate_bps);
        let (report_probe, rtcp_reports) = RtcpReportProbe::new();
        let (nack_gate, nacks) = NackGate::new();
        let tap = RelayTap::new(report_probe, nack_gate);
        let registry = interceptors(&mut media_engine, probe, tap)?;

        // ICE-lite needs no name resolution: the client's checks bring its addresses, and an
        // mDNS query for a browser's `.local` candidate would only go out of the media port to
        // 224.0.0.251:5353 (and time out with an error log).
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();

        let configuration = RTCConfigurationBuilder::new()
            .with_certificates(vec![self.certificate.clone()])
            .build();

        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        Ok((pc, estimate, rtcp_reports, nacks))
    }
}

/// The interceptor chain of a relay-side connection, wire-most first:
///
/// - Wire-most, the relay's own tap ([`crate::media::tap`]): reads SR/RR both ways and counts
///   bytes for the quality snapshot, holds a paused subscriber's NACKs back (so nothing is
///   resent then) and marks the keyframe requests and NACKs the core acts on; everything else
///   passes untouched.
/// - Congestion control: records every packet that leaves (retransmissions included) and runs
///   GCC on the subscriber's transport-wide feedback; the estimate drives the audio-only
///   fallback ([`crate::media::bandwidth`]). No pacer: the relay never delays media to shape
///   it.
/// - TWCC sender: numbers outgoing packets with the transport-wide sequence extension.
/// - NACK responder: keeps the last [`SEND_CACHE_PACKETS`] forwarded packets of each outbound
///   video stream and answers the subscriber's NACKs from them (as RTX when the subscriber
///   negotiated it, else the original packet). Forwarded packets pass through it because the
///   core writes them through the subscriber connection's chain.
/// - NACK generator: notices gaps in a publisher's video and NACKs them upstream.
/// - TWCC receiver: transport-wide feedback to publishers (their send-side estimate).
/// - Receiver and sender reports.
/// - Application-most, `rtc`'s terminus: drops inbound RTCP the tap did not mark.
fn interceptors(
    media_engine: &mut MediaEngine,
    probe: EstimateProbe,
    tap: RelayTap,
) -> Result<Registry, EngineError> {
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "transport-cc".to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            None,
        )?;
    }
    Ok(Registry::new()
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(probe).build(),
        )
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(SEND_CACHE_PACKETS)
                .build(),
        )
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        )
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build())
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
        .with(Slot::from(RELAY_TAP_SLOT), tap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_ufrag_is_read_from_the_first_ice_ufrag_line() {
        let sdp = "v=0\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcDEF\r\na=ice-pwd:p\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:other\r\n";
        assert_eq!(local_ufrag(sdp), Some("abcDEF"));
        assert_eq!(local_ufrag("v=0\r\na=ice-ufrag:\r\n"), None);
        assert_eq!(local_ufrag(""), None);
    }
}

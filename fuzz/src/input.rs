//! Structured fuzz input (`arbitrary`) for the media core: a short script of datagrams of each
//! kind (raw, STUN checks with real integrity, DTLS records, RTP and RTCP headers around fuzzed
//! bodies), from a joined peer's address or from strangers, interleaved with signalling
//! commands and the passing of time.

use crate::relay::Relay;
use arbitrary::Arbitrary;
use skaerm_sfu::ids::ParticipantId;
use skaerm_sfu::media::core::Command;
use skaerm_sfu::protocol::{ClientCandidate, LeaveReason, Muted, Publish};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Most steps of one input.
pub const MAX_STEPS: usize = 48;

/// Where a datagram comes from.
#[derive(Debug, Arbitrary, Clone, Copy)]
pub enum Source {
    /// Joined peer `n % peers`'s address.
    Peer(u8),
    /// Someone else.
    Stranger(u8, u16),
}

impl Source {
    /// The address.
    pub fn addr(self, relay: &Relay) -> SocketAddr {
        match self {
            Source::Peer(n) if !relay.peers.is_empty() => {
                relay.peers[usize::from(n) % relay.peers.len()].addr
            }
            Source::Peer(n) | Source::Stranger(n, _) => {
                let port = match self {
                    Source::Stranger(_, port) => port,
                    Source::Peer(_) => 40000,
                };
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, n)), port)
            }
        }
    }
}

/// One thing that happens to the core.
#[derive(Debug, Arbitrary)]
pub enum Step {
    /// Any bytes.
    Raw { from: Source, bytes: Vec<u8> },
    /// A binding request for peer `peer`'s ICE credentials (valid integrity unless `corrupt`).
    Check {
        from: Source,
        peer: u8,
        transaction: [u8; 12],
        use_candidate: bool,
        corrupt: bool,
        extra: Vec<u8>,
    },
    /// A DTLS record around a fuzzed fragment (handshake type and lengths framed).
    Dtls {
        from: Source,
        content_type: u8,
        epoch: u16,
        sequence: u32,
        handshake: Option<(u8, u16)>,
        fragment: Vec<u8>,
    },
    /// An RTP header (as SRTP would carry it in the clear) and a fuzzed rest.
    Rtp {
        from: Source,
        marker_pt: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        flags: u8,
        rest: Vec<u8>,
    },
    /// An RTCP header (SR, RR, SDES, BYE, RTPFB, PSFB, XR …) and a fuzzed rest.
    Rtcp {
        from: Source,
        count: u8,
        packet_type: u8,
        ssrc: u32,
        rest: Vec<u8>,
    },
    /// Signalling from peer `peer`.
    Signal { peer: u8, command: Signal },
    /// Time passes.
    Advance { millis: u16 },
}

/// The signalling commands that reach the core from a joined participant.
#[derive(Debug, Arbitrary)]
pub enum Signal {
    Publish {
        audio: bool,
        video: bool,
    },
    Mute {
        audio: bool,
        video: bool,
    },
    RestartIce,
    Candidate {
        candidate: String,
        mid: Option<String>,
        index: Option<u16>,
    },
    /// Answers with the real client's answer, to revision `revision` or the latest.
    AnswerAgain {
        revision: Option<u32>,
    },
    Admit {
        other: u8,
    },
    Deny {
        other: u8,
    },
    Chat {
        text: String,
    },
    Leave,
}

fn dtls_record(
    content_type: u8,
    epoch: u16,
    sequence: u32,
    handshake: Option<(u8, u16)>,
    fragment: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some((msg_type, message_seq)) = handshake {
        // Handshake header: type, length (24), message_seq, fragment offset (24), fragment length (24).
        let len = (fragment.len() as u32).to_be_bytes();
        body.push(msg_type);
        body.extend_from_slice(&len[1..]);
        body.extend_from_slice(&message_seq.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&len[1..]);
    }
    body.extend_from_slice(fragment);
    let mut out = vec![content_type % 44 + 20, 0xfe, 0xfd];
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Runs `steps` against `relay`.
pub fn run(relay: &mut Relay, steps: &[Step]) {
    for step in steps.iter().take(MAX_STEPS) {
        match step {
            Step::Raw { from, bytes } => relay.datagram(from.addr(relay), bytes),
            Step::Check {
                from,
                peer,
                transaction,
                use_candidate,
                corrupt,
                extra,
            } => {
                let i = usize::from(*peer) % relay.peers.len().max(1);
                relay.check(
                    i,
                    from.addr(relay),
                    *transaction,
                    *use_candidate,
                    *corrupt,
                    extra,
                );
            }
            Step::Dtls {
                from,
                content_type,
                epoch,
                sequence,
                handshake,
                fragment,
            } => {
                let record = dtls_record(*content_type, *epoch, *sequence, *handshake, fragment);
                relay.datagram(from.addr(relay), &record);
            }
            Step::Rtp {
                from,
                marker_pt,
                sequence,
                timestamp,
                ssrc,
                flags,
                rest,
            } => {
                // Version 2, padding / extension / CSRC count from `flags`.
                let mut out = vec![0x80 | (flags & 0x3f), *marker_pt];
                out.extend_from_slice(&sequence.to_be_bytes());
                out.extend_from_slice(&timestamp.to_be_bytes());
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(rest);
                relay.datagram(from.addr(relay), &out);
            }
            Step::Rtcp {
                from,
                count,
                packet_type,
                ssrc,
                rest,
            } => {
                let words = ((rest.len() + 4) / 4) as u16;
                let mut out = vec![0x80 | (count & 0x3f), 192 + packet_type % 32];
                out.extend_from_slice(&words.to_be_bytes());
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(rest);
                relay.datagram(from.addr(relay), &out);
            }
            Step::Signal { peer, command } => signal(relay, *peer, command),
            Step::Advance { millis } => {
                relay.advance(Duration::from_millis(u64::from(*millis) % 5000));
            }
        }
    }
}

fn signal(relay: &mut Relay, peer: u8, command: &Signal) {
    if relay.peers.is_empty() {
        return;
    }
    let i = usize::from(peer) % relay.peers.len();
    let session = relay.peers[i].session;
    let other = |n: u8| -> ParticipantId {
        relay
            .peers
            .get(usize::from(n) % relay.peers.len())
            .map_or(ParticipantId(uuid::Uuid::from_u128(u128::from(n))), |p| {
                p.participant
            })
    };
    let command = match command {
        Signal::Publish { audio, video } => Command::Publish {
            session,
            publish: Publish {
                audio: *audio,
                video: *video,
            },
        },
        Signal::Mute { audio, video } => Command::Mute {
            session,
            muted: Muted {
                audio: *audio,
                video: *video,
            },
        },
        Signal::RestartIce => Command::RestartIce { session },
        Signal::Candidate {
            candidate,
            mid,
            index,
        } => Command::Candidate {
            session,
            candidate: ClientCandidate {
                candidate: candidate.clone(),
                sdp_mid: mid.clone(),
                sdp_mline_index: *index,
                username_fragment: None,
            },
        },
        Signal::AnswerAgain { revision } => {
            if let Some((offer, _)) = relay.peers[i].offer.clone() {
                let answer = crate::relay::client_answer(&offer).to_owned();
                relay.answer(i, answer, *revision);
            }
            return;
        }
        Signal::Admit { other: n } => Command::Admit {
            session,
            participant: other(*n),
        },
        Signal::Deny { other: n } => Command::Deny {
            session,
            participant: other(*n),
        },
        Signal::Chat { text } => Command::Chat {
            session,
            text: text.clone(),
            at: 0,
        },
        Signal::Leave => Command::Leave {
            session,
            reason: LeaveReason::Left,
        },
    };
    relay.core.handle_command(relay.now, command);
    relay.pump();
}

//! A synthetic participant: Skærm's signalling protocol over a real WebSocket plus a real
//! WebRTC peer built with the async `webrtc` crate (the way a browser would, but scriptable).
//!
//! It answers every offer by itself; tests send RTP with [`Participant::send_rtp`] and read what
//! arrived through the relay with [`Participant::received`].

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use skaerm_sfu::ids::RoomId;
use skaerm_sfu::protocol::{ClientMessage, Publish, ServerMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCPeerConnectionState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

/// Opus payload type the relay offers.
pub const OPUS_PT: u8 = 111;
/// VP8 payload type the relay offers.
pub const VP8_PT: u8 = 96;
/// Most packets kept per participant (older ones are dropped from the record).
const RECEIVED_CAP: usize = 200_000;

/// One RTP packet that arrived through the relay.
#[derive(Debug, Clone)]
pub struct Received {
    /// The publishing participant (the stream id of the track).
    pub from: String,
    /// Audio or video.
    pub kind: RtpCodecKind,
    /// The RTP payload, byte for byte.
    pub payload: Bytes,
    /// Arrival time.
    pub at: std::time::Instant,
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    received: Arc<Mutex<Vec<Received>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = Arc::clone(&self.received);
        tokio::spawn(async move {
            let from = track.stream_id().await;
            let kind = track.kind().await;
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    let mut log = received.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() >= RECEIVED_CAP {
                        log.drain(..RECEIVED_CAP / 2);
                    }
                    log.push(Received {
                        from: from.clone(),
                        kind,
                        payload: packet.payload,
                        at: std::time::Instant::now(),
                    });
                }
            }
        });
    }
}

/// A participant connected to a Skærm server.
pub struct Participant {
    outgoing: mpsc::Sender<ClientMessage>,
    messages: Arc<Mutex<Vec<ServerMessage>>>,
    closed: watch::Receiver<Option<(u16, String)>>,
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    received: Arc<Mutex<Vec<Received>>>,
    tracks: HashMap<RtpCodecKind, (Arc<TrackLocalStaticRTP>, u32)>,
    sequence: Mutex<HashMap<RtpCodecKind, u16>>,
    /// This participant's id, from `joined` (or `waiting`).
    pub id: String,
    /// The server put this participant in the waiting room (`waiting` came instead of
    /// `joined`): media starts once a host admits it (see [`Participant::wait_for`]).
    pub waited: bool,
}

/// How a join attempt ended.
#[derive(Debug)]
pub enum JoinOutcome {
    /// Joined; media is being negotiated.
    Joined(Box<Participant>),
    /// The server refused with this error code, then closed with this close code.
    Refused {
        /// The protocol error code.
        code: String,
        /// The WebSocket close code, if a close frame came.
        close: Option<u16>,
    },
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant").field("id", &self.id).finish()
    }
}

impl Participant {
    /// Connects to `ws_url` (e.g. `ws://127.0.0.1:8080/ws`) and joins with `token`, naming the
    /// room it means to enter when `room` is given.
    pub async fn join(
        ws_url: &str,
        token: &str,
        publish: Publish,
        room: Option<RoomId>,
    ) -> Result<JoinOutcome> {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .with_context(|| format!("connecting {ws_url}"))?;
        let (mut sink, mut stream) = ws.split();

        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs()?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_handler(Arc::new(Handler {
                    state: state_tx,
                    received: Arc::clone(&received),
                }))
                .with_udp_addrs(vec!["127.0.0.1:0"])
                .build()
                .await?,
        );
        let mut tracks = HashMap::new();
        for (wanted, kind, mime, rate, channels) in [
            (publish.audio, RtpCodecKind::Audio, "audio/opus", 48000, 2),
            (publish.video, RtpCodecKind::Video, "video/VP8", 90000, 0),
        ] {
            if !wanted {
                continue;
            }
            let ssrc = rand::random::<u32>();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("synthetic-{ssrc}"),
                format!("{kind}-{ssrc}"),
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
            )));
            pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await?;
            tracks.insert(kind, (track, ssrc));
        }

        let join = ClientMessage::Join {
            protocol: 1,
            token: token.to_owned(),
            publish,
            room,
        };
        sink.send(Message::text(serde_json::to_string(&join)?))
            .await?;

        // The first answer from the server decides: `joined` or an error.
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Err(_) => bail!("no answer to join within 10 s"),
                Ok(None) => bail!("socket closed before an answer to join"),
                Ok(Some(Err(err))) => bail!("socket error before an answer to join: {err}"),
                Ok(Some(Ok(Message::Text(text)))) => {
                    break serde_json::from_str::<ServerMessage>(&text)?;
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ok(JoinOutcome::Refused {
                        code: "closed".into(),
                        close: frame.map(|f| u16::from(f.code)),
                    });
                }
                Ok(Some(Ok(_))) => continue,
            }
        };
        let mut waited = false;
        let id = match first {
            ServerMessage::Joined { you, .. } => you.id.to_string(),
            ServerMessage::Waiting { you, .. } => {
                waited = true;
                you.id.to_string()
            }
            ServerMessage::Error { code, .. } => {
                let code = serde_json::to_value(code)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let mut close = None;
                while let Ok(Some(frame)) =
                    tokio::time::timeout(Duration::from_secs(5), stream.next()).await
                {
                    if let Ok(Message::Close(frame)) = frame {
                        close = frame.map(|f| u16::from(f.code));
                        break;
                    }
                }
                return Ok(JoinOutcome::Refused { code, close });
            }
            other => bail!("unexpected first message {other:?}"),
        };

        let (outgoing, mut outgoing_rx) = mpsc::channel::<ClientMessage>(64);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (closed_tx, closed) = watch::channel(None);
        // Writer: client messages to the socket.
        tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                let Ok(text) = serde_json::to_string(&message) else {
                    continue;
                };
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        // Reader: answers offers, records everything else.
        {
            let pc = Arc::clone(&pc);
            let outgoing = outgoing.clone();
            let messages = Arc::clone(&messages);
            tokio::spawn(async move {
                while let Some(frame) = stream.next().await {
                    let message = match frame {
                        Ok(Message::Text(text)) => {
                            match serde_json::from_str::<ServerMessage>(&text) {
                                Ok(m) => m,
                                Err(_) => continue,
                            }
                        }
                        Ok(Message::Close(frame)) => {
                            let _ = closed_tx.send(Some(
                                frame
                                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                                    .unwrap_or((1005, String::new())),
                            ));
                            return;
                        }
                        Ok(_) => continue,
                        Err(_) => break,
                    };
                    if let ServerMessage::Offer { sdp, revision } = &message {
                        match answer(&pc, sdp).await {
                            Ok(sdp) => {
                                let _ = outgoing
                                    .send(ClientMessage::Answer {
                                        sdp,
                                        revision: *revision,
                                    })
                                    .await;
                            }
                            Err(err) => tracing::warn!(%err, "could not answer an offer"),
                        }
                    }
                    messages
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(message);
                }
                let _ = closed_tx.send(Some((1006, String::new())));
            });
        }

        Ok(JoinOutcome::Joined(Box::new(Participant {
            outgoing,
            messages,
            closed,
            pc,
            state,
            received,
            tracks,
            sequence: Mutex::new(HashMap::new()),
            id,
            waited,
        })))
    }

    /// Waits until the media connection is up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        tokio::time::timeout(timeout, async {
            loop {
                let now = *state.borrow_and_update();
                match now {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Err(anyhow!("media connection {now}"));
                    }
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(anyhow!("peer connection gone"));
                }
            }
        })
        .await
        .map_err(|_| anyhow!("media not connected within {timeout:?}"))?
    }

    /// Sends one RTP packet with `payload` on this participant's `kind` track.
    pub async fn send_rtp(&self, kind: RtpCodecKind, payload: Bytes) -> Result<()> {
        let (track, ssrc) = self
            .tracks
            .get(&kind)
            .ok_or_else(|| anyhow!("not publishing {kind}"))?;
        let sequence_number = {
            let mut sequence = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
            let s = sequence.entry(kind).or_insert(0);
            *s = s.wrapping_add(1);
            *s
        };
        let (payload_type, step) = match kind {
            RtpCodecKind::Audio => (OPUS_PT, 960),
            _ => (VP8_PT, 3000),
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number,
                timestamp: u32::from(sequence_number).wrapping_mul(step),
                ssrc: *ssrc,
                marker: true,
                ..Default::default()
            },
            payload,
        };
        track.write_rtp(packet).await?;
        Ok(())
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets what was received so far.
    pub fn clear_received(&self) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Signalling messages received so far (after `joined`).
    pub fn messages(&self) -> Vec<ServerMessage> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a signalling message matching `wanted` has arrived; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        wanted: impl Fn(&ServerMessage) -> bool,
    ) -> Result<ServerMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.messages().into_iter().find(|m| wanted(m)) {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no such message within {timeout:?}: {:?}", self.messages());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (A host.) Lets a waiting participant in.
    pub async fn admit(&self, participant_id: &str) -> Result<()> {
        self.send(ClientMessage::Admit {
            participant_id: skaerm_sfu::ids::ParticipantId(participant_id.parse()?),
        })
        .await
    }

    /// (A host.) Lets `guest`, who is in the waiting room, in and waits until the guest hears
    /// `joined`; fails when the guest never waited.
    pub async fn let_in(&self, guest: &Participant) -> Result<()> {
        if !guest.waited {
            bail!("{} was not in the waiting room", guest.id);
        }
        self.admit(&guest.id).await?;
        guest
            .wait_for(Duration::from_secs(5), |m| {
                matches!(m, ServerMessage::Joined { .. })
            })
            .await?;
        Ok(())
    }

    /// Sends a signalling message.
    pub async fn send(&self, message: ClientMessage) -> Result<()> {
        self.outgoing
            .send(message)
            .await
            .map_err(|_| anyhow!("signalling closed"))
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<(u16, String)> {
        let mut closed = self.closed.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(close) = closed.borrow_and_update().clone() {
                    return Ok(close);
                }
                if closed.changed().await.is_err() {
                    return Err(anyhow!("reader gone"));
                }
            }
        })
        .await
        .map_err(|_| anyhow!("not closed within {timeout:?}"))?
    }

    /// Hangs up: `leave`, then closes the peer connection.
    pub async fn leave(self) -> Result<()> {
        let _ = self.send(ClientMessage::Leave).await;
        self.pc.close().await?;
        Ok(())
    }
}

async fn answer(pc: &Arc<dyn PeerConnection>, offer: &str) -> Result<String> {
    pc.set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    // Host candidates are gathered synchronously for bound UDP addresses; the local
    // description carries them.
    let description = pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("no local description"))?;
    Ok(description.sdp)
}

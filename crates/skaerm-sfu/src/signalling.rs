//! The signalling endpoint: one WebSocket per participant, speaking `PROTOCOL.md`.
//!
//! A session waits for `join` (bounded in time), asks the application's [`JoinAuthorizer`]
//! whether the token admits it, hands the join to the media worker that owns the room, and then
//! relays client messages to the worker and worker messages to the client until either side
//! ends. Hostile input (not JSON, unknown types, huge frames, binary frames) is answered with an
//! error message or a close with a reason; it never takes the server down.

use crate::chat::{ChatRateLimit, validate_chat_text};
use crate::config::RelayConfig;
use crate::grant::{JoinAuthorizer, JoinGrant};
use crate::ids::{RoomId, SessionId};
use crate::media::core::{Command, SessionClose};
use crate::metrics::RelayMetrics;
use crate::protocol::{
    ClientMessage, ErrorCode, LeaveReason, Muted, PROTOCOL_VERSION, ParseError, Publish,
    ServerMessage, parse_client_message,
};
use crate::worker::{Outbound, ToWorker, WorkerHandle};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a session waits for queue space in a busy worker before giving up.
const WORKER_WAIT: Duration = Duration::from_secs(2);

/// Close code for "no join in time".
const CLOSE_JOIN_TIMEOUT: u16 = 4001;
/// Close code for "did not keep up with our messages".
const CLOSE_TOO_SLOW: u16 = 4008;
/// How long a closed session keeps reading for the client's side of the closing handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Shared state of the signalling endpoint.
#[derive(Clone)]
pub struct Signalling {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<WorkerHandle>,
    authorizer: Arc<dyn JoinAuthorizer>,
    config: RelayConfig,
    metrics: RelayMetrics,
}

impl Signalling {
    /// Signalling over the given workers.
    pub fn new(
        workers: Vec<WorkerHandle>,
        authorizer: Arc<dyn JoinAuthorizer>,
        config: RelayConfig,
        metrics: RelayMetrics,
    ) -> Self {
        Signalling {
            inner: Arc::new(Inner {
                workers,
                authorizer,
                config,
                metrics,
            }),
        }
    }

    /// The worker that owns `room`.
    pub fn worker_for(&self, room: RoomId) -> Option<&WorkerHandle> {
        let workers = &self.inner.workers;
        if workers.is_empty() {
            return None;
        }
        let index = (room.0.as_u128() % workers.len() as u128) as usize;
        workers.get(index)
    }

    /// The `/ws` route.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(upgrade))
            .with_state(self.clone())
    }
}

/// Initial read buffer of one signalling WebSocket.
const SESSION_READ_BUFFER: usize = 4 * 1024;

async fn upgrade(State(signalling): State<Signalling>, ws: WebSocketUpgrade) -> Response {
    let max = signalling.inner.config.max_signalling_frame;
    // tungstenite reserves its whole read buffer per connection up front (128 KiB by
    // default); signalling messages are small and the buffer grows for a larger one (up to
    // `max`), so a session starts with a few KiB.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(SESSION_READ_BUFFER)
        .on_upgrade(move |socket| run_session(signalling, socket))
}

/// Decrements the open-sessions gauge when a session ends, however it ends.
struct SessionGauge(RelayMetrics);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.sessions.dec();
    }
}

/// How a session's receive side ended.
enum Ending {
    /// The client said `leave`.
    Left,
    /// The client went away (closed, errored, timed out).
    Gone,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

async fn run_session(signalling: Signalling, socket: WebSocket) {
    let inner = &signalling.inner;
    inner.metrics.sessions.inc();
    let _gauge = SessionGauge(inner.metrics.clone());
    let session = SessionId::next();
    let (mut sink, mut stream) = socket.split();

    // Phase 1: a `join` within the timeout.
    let deadline = tokio::time::Instant::now() + inner.config.join_timeout;
    let (grant, publish) = loop {
        let frame = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                close(&mut sink, CLOSE_JOIN_TIMEOUT, "join timeout").await;
                return;
            }
            Ok(None) => return,
            Ok(Some(frame)) => frame,
        };
        let text = match read_text(frame) {
            Frame::Text(text) => text,
            Frame::Ignore => continue,
            Frame::Closed => return,
            Frame::Binary => {
                send_error(
                    &mut sink,
                    inner,
                    ErrorCode::BadMessage,
                    "binary frames are not accepted",
                )
                .await;
                continue;
            }
            Frame::TooBig => {
                close(&mut sink, 1009, "message too big").await;
                return;
            }
        };
        match parse_client_message(&text) {
            Ok(ClientMessage::Join {
                protocol,
                token,
                publish,
                room,
            }) => {
                if protocol != PROTOCOL_VERSION {
                    inner
                        .metrics
                        .joins
                        .with_label_values(&["unsupported_protocol"])
                        .inc();
                    inner.metrics.join_failed(ErrorCode::UnsupportedProtocol);
                    send_error(
                        &mut sink,
                        inner,
                        ErrorCode::UnsupportedProtocol,
                        "this server speaks protocol 1",
                    )
                    .await;
                    close(&mut sink, 1008, "unsupported protocol").await;
                    return;
                }
                match inner.authorizer.authorize(&token).await {
                    Ok(grant) if room.is_some_and(|r| r != grant.room) => {
                        inner.metrics.joins.with_label_values(&["forbidden"]).inc();
                        inner.metrics.join_failed(ErrorCode::Forbidden);
                        tracing::info!(session = %session, "join refused: token is for another room");
                        send_error(
                            &mut sink,
                            inner,
                            ErrorCode::Forbidden,
                            "the token is for another visit",
                        )
                        .await;
                        close(&mut sink, 1008, "join refused").await;
                        return;
                    }
                    Ok(grant) => break (grant, publish),
                    Err(refusal) => {
                        let code = refusal.code();
                        inner
                            .metrics
                            .joins
                            .with_label_values(&[code.as_str()])
                            .inc();
                        inner.metrics.join_failed(code);
                        tracing::info!(session = %session, %refusal, "join refused");
                        send_error(&mut sink, inner, code, &refusal.to_string()).await;
                        let close_code = if code == ErrorCode::ServerBusy {
                            1011
                        } else {
                            1008
                        };
                        close(&mut sink, close_code, "join refused").await;
                        return;
                    }
                }
            }
            Ok(_) => {
                send_error(&mut sink, inner, ErrorCode::NotJoined, "send join first").await;
            }
            Err(err) => report_parse_error(&mut sink, inner, err).await,
        }
    };

    // Phase 2: in the room.
    let Some(worker) = signalling.worker_for(grant.room).cloned() else {
        send_error(&mut sink, inner, ErrorCode::Internal, "no media worker").await;
        close(&mut sink, 1011, "no media worker").await;
        return;
    };
    let (outbox, mut inbox) = mpsc::channel(inner.config.session_queue.max(1));
    let room = grant.room;
    if !worker
        .send(
            ToWorker::Join {
                session,
                grant: grant.clone(),
                publish,
                outbox,
            },
            WORKER_WAIT,
        )
        .await
    {
        inner
            .metrics
            .joins
            .with_label_values(&["server_busy"])
            .inc();
        inner.metrics.join_failed(ErrorCode::ServerBusy);
        send_error(
            &mut sink,
            inner,
            ErrorCode::ServerBusy,
            "the media server is busy",
        )
        .await;
        close(&mut sink, 1011, "busy").await;
        return;
    }
    inner.metrics.joins.with_label_values(&["ok"]).inc();
    log_join(session, &grant);

    let ending = in_room(
        &signalling,
        session,
        &grant,
        &worker,
        &mut sink,
        &mut stream,
        &mut inbox,
    )
    .await;
    let reason = match ending {
        Ending::Left => LeaveReason::Left,
        Ending::Gone | Ending::Close(..) => LeaveReason::Disconnected,
    };
    // The worker must hear that the session is gone, even when it is busy.
    if !worker
        .send(
            ToWorker::Command(Command::Leave { session, reason }),
            Duration::from_secs(10),
        )
        .await
    {
        tracing::warn!(session = %session, %room, "could not tell the worker about a leave");
    }
    match ending {
        Ending::Left => close(&mut sink, 1000, "bye").await,
        Ending::Close(code, reason) => close(&mut sink, code, reason).await,
        Ending::Gone => return,
    }
    linger(&mut stream).await;
}

/// Finishes the closing handshake: reads and discards what the client still sends (an answer
/// to an offer that crossed our close, its own Close frame) for at most [`CLOSE_LINGER`].
/// Dropping a TCP socket with unread data makes the kernel reset the connection, and a reset
/// can destroy our Close frame before the client has read it (it then sees 1006).
async fn linger(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn log_join(session: SessionId, grant: &JoinGrant) {
    tracing::info!(
        session = %session,
        room = %grant.room,
        participant = %grant.participant,
        role = ?grant.role,
        "joined"
    );
}

async fn in_room(
    signalling: &Signalling,
    session: SessionId,
    grant: &JoinGrant,
    worker: &WorkerHandle,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    inbox: &mut mpsc::Receiver<Outbound>,
) -> Ending {
    let inner = &signalling.inner;
    let ping_interval = inner.config.ping_interval;
    let mut ping = tokio::time::interval(ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut chat_limit = ChatRateLimit::standard(Instant::now());
    loop {
        tokio::select! {
            outbound = inbox.recv() => match outbound {
                Some(Outbound::Message(mut message)) => {
                    // `joined` means the participant is in the room (past the waiting room):
                    // only now does it get TURN servers, with credentials made for it now.
                    if let ServerMessage::Joined { ice_servers, .. } = &mut message {
                        *ice_servers = inner.authorizer.ice_servers(grant);
                    }
                    if send_json(sink, &message).await.is_err() {
                        return Ending::Gone;
                    }
                }
                Some(Outbound::Close(SessionClose { code, reason })) => {
                    return Ending::Close(code, reason);
                }
                // The worker dropped us (our queue overflowed) or stopped.
                None => return Ending::Close(CLOSE_TOO_SLOW, "too slow"),
            },
            frame = stream.next() => {
                let Some(frame) = frame else { return Ending::Gone };
                last_heard = Instant::now();
                let text = match read_text(frame) {
                    Frame::Text(text) => text,
                    Frame::Ignore => continue,
                    Frame::Closed => return Ending::Gone,
                    Frame::Binary => {
                        send_error(sink, inner, ErrorCode::BadMessage, "binary frames are not accepted").await;
                        continue;
                    }
                    Frame::TooBig => return Ending::Close(1009, "message too big"),
                };
                let command = match parse_client_message(&text) {
                    Ok(ClientMessage::Join { .. }) => {
                        send_error(sink, inner, ErrorCode::AlreadyJoined, "already joined").await;
                        continue;
                    }
                    Ok(ClientMessage::Leave) => return Ending::Left,
                    Ok(ClientMessage::Answer { sdp, revision }) => Command::Answer { session, sdp, revision },
                    Ok(ClientMessage::Candidate { candidate }) => Command::Candidate { session, candidate },
                    Ok(ClientMessage::RestartIce) => Command::RestartIce { session },
                    Ok(ClientMessage::Publish { audio, video }) => {
                        Command::Publish { session, publish: Publish { audio, video } }
                    }
                    Ok(ClientMessage::Mute { audio, video }) => {
                        Command::Mute { session, muted: Muted { audio, video } }
                    }
                    Ok(ClientMessage::Admit { participant_id }) => {
                        Command::Admit { session, participant: participant_id }
                    }
                    Ok(ClientMessage::Deny { participant_id }) => {
                        Command::Deny { session, participant: participant_id }
                    }
                    Ok(ClientMessage::Chat { text }) => {
                        // Checked here, off the media worker; the text itself is never logged.
                        let text = match validate_chat_text(&text) {
                            Ok(text) => text,
                            Err(refusal) => {
                                send_error(sink, inner, ErrorCode::BadMessage, &refusal.to_string()).await;
                                continue;
                            }
                        };
                        if !chat_limit.allow(Instant::now()) {
                            send_error(sink, inner, ErrorCode::RateLimited, "too many chat messages; wait a moment").await;
                            continue;
                        }
                        Command::Chat { session, text, at: unix_millis() }
                    }
                    Err(err) => {
                        report_parse_error(sink, inner, err).await;
                        continue;
                    }
                };
                if !worker.send(ToWorker::Command(command), WORKER_WAIT).await {
                    send_error(sink, inner, ErrorCode::ServerBusy, "the media server is busy").await;
                    return Ending::Close(1011, "busy");
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_interval * 3 {
                    return Ending::Gone;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return Ending::Gone;
                }
            },
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (the `at` of chat messages).
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One received WebSocket frame, sorted.
enum Frame {
    Text(String),
    Binary,
    /// Ping/pong: nothing to do (axum answers pings).
    Ignore,
    Closed,
    TooBig,
}

fn read_text(frame: Result<Message, axum::Error>) -> Frame {
    match frame {
        Ok(Message::Text(text)) => Frame::Text(text.to_string()),
        Ok(Message::Binary(_)) => Frame::Binary,
        Ok(Message::Ping(_) | Message::Pong(_)) => Frame::Ignore,
        Ok(Message::Close(_)) => Frame::Closed,
        Err(err) => {
            let too_big = err
                .into_inner()
                .downcast_ref::<tungstenite::Error>()
                .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
            if too_big {
                Frame::TooBig
            } else {
                Frame::Closed
            }
        }
    }
}

async fn report_parse_error(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    inner: &Inner,
    err: ParseError,
) {
    match err {
        ParseError::Bad(detail) => {
            send_error(sink, inner, ErrorCode::BadMessage, &detail).await;
        }
        ParseError::UnknownType(kind) => {
            send_error(
                sink,
                inner,
                ErrorCode::UnknownType,
                &format!("unknown type `{kind}`"),
            )
            .await;
        }
    }
}

async fn send_json(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: &ServerMessage,
) -> Result<(), axum::Error> {
    let text = match serde_json::to_string(message) {
        Ok(text) => text,
        Err(err) => {
            tracing::error!(%err, "could not serialise a server message");
            return Ok(());
        }
    };
    sink.send(Message::Text(text.into())).await
}

async fn send_error(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    inner: &Inner,
    code: ErrorCode,
    message: &str,
) {
    inner.metrics.signalling_error(code);
    // Keep error text short: it may quote hostile input.
    let message: String = message.chars().take(200).collect();
    let _ = send_json(sink, &ServerMessage::error(code, message)).await;
}

async fn close(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &'static str,
) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    let _ = sink.close().await;
}

//! The signalling endpoint: one WebSocket per participant, speaking `PROTOCOL.md`.
//!
//! A session waits for `join` (bounded in time), asks the application's [`JoinAuthorizer`]
//! whether the token admits it, hands the join to the media worker that owns the room, and then
//! relays client messages to the worker and worker messages to the client until either side
//! ends. Hostile input (not JSON, unknown types, huge frames, binary frames, protocol violations)
//! is answered with an error message or a close with a reason; it never takes the server down.
//!
//! What one client can cost is bounded: WebSockets are capped in all and per address
//! ([`crate::ws_caps`]); the join deadline covers everything before the join (reading, answering,
//! the token check), however much the client writes; every write to the client has a time limit,
//! so a client that does not read is dropped instead of holding the server's buffers; and each
//! kind of message has its own budget ([`crate::signal_limits`]), mute and publish coalesced.

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
use crate::signal_limits::{MessageClass, SignalLimits, Verdict};
use crate::worker::{Outbound, ToWorker, WorkerHandle};
use crate::ws_caps::{WebSocketCaps, WebSocketPlace};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
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
/// Longest wait for our Close frame to go out (the client may not be reading at all).
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// The application's rule for a request's client address (e.g. `X-Forwarded-For` from trusted
/// proxies only); `None` when it cannot tell. Used for the per-address WebSocket cap.
pub type ClientIpResolver = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// Shared state of the signalling endpoint.
#[derive(Clone)]
pub struct Signalling {
    inner: Arc<Inner>,
    client_ip: ClientIpResolver,
}

struct Inner {
    workers: Vec<WorkerHandle>,
    authorizer: Arc<dyn JoinAuthorizer>,
    config: RelayConfig,
    metrics: RelayMetrics,
    caps: WebSocketCaps,
}

/// The TCP peer's address, when the server was started with connection info.
fn tcp_peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
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
                caps: WebSocketCaps::new(config.max_websockets, config.max_websockets_per_address),
                config,
                metrics,
            }),
            client_ip: Arc::new(tcp_peer),
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

    /// The `/ws` route; the client address for the per-address cap is the TCP peer's (from
    /// `ConnectInfo<SocketAddr>`, when the server provides it).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws", get(upgrade))
            .with_state(self.clone())
    }

    /// The `/ws` route with the application's rule for the client address.
    pub fn router_with_client_ip(&self, client_ip: ClientIpResolver) -> Router {
        Signalling {
            inner: Arc::clone(&self.inner),
            client_ip,
        }
        .router()
    }
}

/// Initial read buffer of one signalling WebSocket.
const SESSION_READ_BUFFER: usize = 4 * 1024;

async fn upgrade(State(signalling): State<Signalling>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &signalling).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let inner = &signalling.inner;
    let place = match inner.caps.acquire((signalling.client_ip)(&parts)) {
        Ok(place) => place,
        Err(refusal) => {
            inner
                .metrics
                .websockets_refused
                .with_label_values(&[refusal.as_str()])
                .inc();
            let status = match refusal {
                crate::ws_caps::CapRefusal::PerAddress => StatusCode::TOO_MANY_REQUESTS,
                crate::ws_caps::CapRefusal::Total => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, "too many signalling connections").into_response();
        }
    };
    let max = inner.config.max_signalling_frame;
    // tungstenite reserves its whole read buffer per connection up front (128 KiB by
    // default); signalling messages are small and the buffer grows for a larger one (up to
    // `max`), so a session starts with a few KiB.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(SESSION_READ_BUFFER)
        .on_upgrade(move |socket| run_session(signalling, socket, place))
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
    /// The client went away (closed, errored, timed out, stopped reading).
    Gone,
    /// The client sent a Close frame: answer it with ours.
    ClosedByClient,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

/// The client could not be written to in time (or at all): the session is over.
struct Unwritable;

/// The sending half of a session's WebSocket, every write bounded in time.
struct Outgoing {
    sink: SplitSink<WebSocket, Message>,
    timeout: Duration,
}

impl Outgoing {
    async fn send(&mut self, message: Message) -> Result<(), Unwritable> {
        match tokio::time::timeout(self.timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unwritable),
        }
    }

    async fn json(&mut self, message: &ServerMessage) -> Result<(), Unwritable> {
        let text = match serde_json::to_string(message) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(%err, "could not serialise a server message");
                return Ok(());
            }
        };
        self.send(Message::Text(text.into())).await
    }

    async fn error(
        &mut self,
        inner: &Inner,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), Unwritable> {
        inner.metrics.signalling_error(code);
        // Keep error text short: it may quote hostile input.
        let message: String = message.chars().take(200).collect();
        self.json(&ServerMessage::error(code, message)).await
    }

    /// Answers a message that is refused with an error — within the session's budget for
    /// such answers; beyond it, once `rate_limited` and then nothing (a flood of bad messages
    /// must not become a flood of answers).
    async fn refuse(
        &mut self,
        inner: &Inner,
        limits: &mut SignalLimits,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), Unwritable> {
        match limits.judge(MessageClass::Refused, Instant::now()) {
            Verdict::Allow => self.error(inner, code, message).await,
            verdict => {
                inner
                    .metrics
                    .rate_limited
                    .with_label_values(&["refused"])
                    .inc();
                if verdict == Verdict::RefuseAndTell {
                    self.error(
                        inner,
                        ErrorCode::RateLimited,
                        "too many refused messages; the next get no answer",
                    )
                    .await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Sends our Close frame (bounded: the client may not be reading) and closes.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = tokio::time::timeout(CLOSE_WRITE, async {
            let _ = self
                .sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            let _ = self.sink.close().await;
        })
        .await;
    }

    /// The client sent a Close frame: the WebSocket has queued the echo (RFC 6455 §5.5.1);
    /// flush it out.
    async fn answer_close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WRITE, self.sink.close()).await;
    }
}

async fn run_session(signalling: Signalling, socket: WebSocket, _place: WebSocketPlace) {
    let inner = &signalling.inner;
    inner.metrics.sessions.inc();
    let _gauge = SessionGauge(inner.metrics.clone());
    let session = SessionId::next();
    let (sink, mut stream) = socket.split();
    let mut out = Outgoing {
        sink,
        timeout: inner.config.write_timeout,
    };
    let mut limits = SignalLimits::new(Instant::now());

    // Phase 1: a `join` within the timeout. The deadline covers the whole phase — reading,
    // answering, checking the token —, so no amount of writing (or not reading) extends it.
    let deadline = tokio::time::Instant::now() + inner.config.join_timeout;
    let waited = tokio::time::timeout_at(
        deadline,
        await_join(inner, session, &mut out, &mut stream, &mut limits),
    )
    .await;
    let (grant, publish) = match waited {
        Err(_) => {
            out.close(CLOSE_JOIN_TIMEOUT, "join timeout").await;
            return;
        }
        Ok(None) => return,
        Ok(Some(join)) => join,
    };

    // Phase 2: in the room.
    let Some(worker) = signalling.worker_for(grant.room).cloned() else {
        let _ = out
            .error(inner, ErrorCode::Internal, "no media worker")
            .await;
        out.close(1011, "no media worker").await;
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
        let _ = out
            .error(inner, ErrorCode::ServerBusy, "the media server is busy")
            .await;
        out.close(1011, "busy").await;
        return;
    }
    inner.metrics.joins.with_label_values(&["ok"]).inc();
    log_join(session, &grant);

    let ending = in_room(
        &signalling,
        session,
        &grant,
        &worker,
        &mut out,
        &mut stream,
        &mut inbox,
        &mut limits,
    )
    .await;
    let reason = match ending {
        Ending::Left => LeaveReason::Left,
        Ending::Gone | Ending::ClosedByClient | Ending::Close(..) => LeaveReason::Disconnected,
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
        Ending::Left => out.close(1000, "bye").await,
        Ending::Close(code, reason) => out.close(code, reason).await,
        Ending::ClosedByClient => {
            out.answer_close().await;
            return;
        }
        Ending::Gone => return,
    }
    linger(&mut stream).await;
}

/// Reads until a `join` whose token admits the client; answers everything else. `None` when
/// the session is over (refused and closed, or the client went away).
async fn await_join(
    inner: &Inner,
    session: SessionId,
    out: &mut Outgoing,
    stream: &mut SplitStream<WebSocket>,
    limits: &mut SignalLimits,
) -> Option<(JoinGrant, Publish)> {
    loop {
        let frame = stream.next().await?;
        let text = match read_frame(frame) {
            Frame::Text(text) => text,
            Frame::Ignore => continue,
            Frame::Gone => return None,
            Frame::ClosedByClient => {
                out.answer_close().await;
                return None;
            }
            Frame::Violation(code, reason) => {
                out.close(code, reason).await;
                return None;
            }
            Frame::Binary => {
                out.refuse(
                    inner,
                    limits,
                    ErrorCode::BadMessage,
                    "binary frames are not accepted",
                )
                .await
                .ok()?;
                continue;
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
                    let _ = out
                        .error(
                            inner,
                            ErrorCode::UnsupportedProtocol,
                            "this server speaks protocol 1",
                        )
                        .await;
                    out.close(1008, "unsupported protocol").await;
                    return None;
                }
                match inner.authorizer.authorize(&token).await {
                    Ok(grant) if room.is_some_and(|r| r != grant.room) => {
                        inner.metrics.joins.with_label_values(&["forbidden"]).inc();
                        inner.metrics.join_failed(ErrorCode::Forbidden);
                        tracing::info!(session = %session, "join refused: token is for another room");
                        let _ = out
                            .error(
                                inner,
                                ErrorCode::Forbidden,
                                "the token is for another visit",
                            )
                            .await;
                        out.close(1008, "join refused").await;
                        return None;
                    }
                    Ok(grant) => return Some((grant, publish)),
                    Err(refusal) => {
                        let code = refusal.code();
                        inner
                            .metrics
                            .joins
                            .with_label_values(&[code.as_str()])
                            .inc();
                        inner.metrics.join_failed(code);
                        tracing::info!(session = %session, %refusal, "join refused");
                        let _ = out.error(inner, code, &refusal.to_string()).await;
                        let close_code = if code == ErrorCode::ServerBusy {
                            1011
                        } else {
                            1008
                        };
                        out.close(close_code, "join refused").await;
                        return None;
                    }
                }
            }
            Ok(_) => {
                out.refuse(inner, limits, ErrorCode::NotJoined, "send join first")
                    .await
                    .ok()?;
            }
            Err(err) => report_parse_error(out, inner, limits, err).await.ok()?,
        }
    }
}

/// Finishes the closing handshake: reads and discards what the client still sends (an answer
/// to an offer that crossed our close, its own Close frame) for at most [`CLOSE_LINGER`].
/// Dropping a TCP socket with unread data makes the kernel reset the connection, and a reset
/// can destroy our Close frame before the client has read it (it then sees 1006).
async fn linger(stream: &mut SplitStream<WebSocket>) {
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

/// Mute and publish states not yet passed on (the state budget was spent): only the latest
/// of each is kept, and it goes when the next token comes.
#[derive(Default)]
struct PendingState {
    publish: Option<Publish>,
    muted: Option<Muted>,
    /// When to try again.
    due: Option<tokio::time::Instant>,
}

impl PendingState {
    /// The commands that may go now; sets `due` when something has to wait.
    fn take_ready(
        &mut self,
        session: SessionId,
        limits: &mut SignalLimits,
        now: Instant,
    ) -> Vec<Command> {
        let mut ready = Vec::new();
        self.due = None;
        if self.publish.is_some() {
            if limits.take(MessageClass::State, now) {
                if let Some(publish) = self.publish.take() {
                    ready.push(Command::Publish { session, publish });
                }
            } else {
                self.wait(limits, now);
                return ready;
            }
        }
        if self.muted.is_some() {
            if limits.take(MessageClass::State, now) {
                if let Some(muted) = self.muted.take() {
                    ready.push(Command::Mute { session, muted });
                }
            } else {
                self.wait(limits, now);
            }
        }
        ready
    }

    fn wait(&mut self, limits: &mut SignalLimits, now: Instant) {
        let at = limits.next_allowed_at(MessageClass::State, now);
        let delay = at.saturating_duration_since(now);
        self.due = Some(tokio::time::Instant::now() + delay);
    }
}

/// A client message, sorted into what the session does with it.
enum Routed {
    /// Send this command to the worker, within `class`'s budget (`kind` names it in metrics).
    Command(Command, MessageClass, &'static str),
    /// Send this command to the worker (its budget was already taken).
    Ready(Command),
    /// A mute or publish state: coalesced.
    State,
    /// Handled here (answered or ignored).
    Done,
    /// The session ends.
    End(Ending),
}

#[allow(clippy::too_many_arguments)]
async fn in_room(
    signalling: &Signalling,
    session: SessionId,
    grant: &JoinGrant,
    worker: &WorkerHandle,
    out: &mut Outgoing,
    stream: &mut SplitStream<WebSocket>,
    inbox: &mut mpsc::Receiver<Outbound>,
    limits: &mut SignalLimits,
) -> Ending {
    let inner = &signalling.inner;
    let ping_interval = inner.config.ping_interval;
    let mut ping = tokio::time::interval(ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut chat_limit = ChatRateLimit::standard(Instant::now());
    let mut pending = PendingState::default();
    loop {
        let state_due = pending.due;
        let mut commands = Vec::new();
        tokio::select! {
            outbound = inbox.recv() => match outbound {
                Some(Outbound::Message(mut message)) => {
                    // `joined` means the participant is in the room (past the waiting room):
                    // only now does it get TURN servers, with credentials made for it now.
                    if let ServerMessage::Joined { ice_servers, .. } = &mut message {
                        *ice_servers = inner.authorizer.ice_servers(grant);
                    }
                    if out.json(&message).await.is_err() {
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
                let routed = match read_frame(frame) {
                    Frame::Text(text) => {
                        route(inner, session, out, limits, &mut chat_limit, &mut pending, &text).await
                    }
                    Frame::Ignore => Routed::Done,
                    Frame::Gone => Routed::End(Ending::Gone),
                    Frame::ClosedByClient => Routed::End(Ending::ClosedByClient),
                    Frame::Violation(code, reason) => Routed::End(Ending::Close(code, reason)),
                    Frame::Binary => match out
                        .refuse(inner, limits, ErrorCode::BadMessage, "binary frames are not accepted")
                        .await
                    {
                        Ok(()) => Routed::Done,
                        Err(Unwritable) => Routed::End(Ending::Gone),
                    },
                };
                match routed {
                    Routed::Command(command, class, kind) => {
                        match limits.judge(class, Instant::now()) {
                            Verdict::Allow => commands.push(command),
                            verdict => {
                                inner.metrics.rate_limited.with_label_values(&[kind]).inc();
                                if verdict == Verdict::RefuseAndTell
                                    && out
                                        .error(
                                            inner,
                                            ErrorCode::RateLimited,
                                            &format!("too many `{kind}` messages; wait a moment"),
                                        )
                                        .await
                                        .is_err()
                                {
                                    return Ending::Gone;
                                }
                            }
                        }
                    }
                    Routed::Ready(command) => commands.push(command),
                    Routed::State => commands = pending.take_ready(session, limits, Instant::now()),
                    Routed::Done => {}
                    Routed::End(ending) => return ending,
                }
            },
            () = sleep_until_due(state_due), if state_due.is_some() => {
                commands = pending.take_ready(session, limits, Instant::now());
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_interval * 3 {
                    return Ending::Gone;
                }
                if out.send(Message::Ping(Default::default())).await.is_err() {
                    return Ending::Gone;
                }
            },
        }
        for command in commands {
            if !worker.send(ToWorker::Command(command), WORKER_WAIT).await {
                let _ = out
                    .error(inner, ErrorCode::ServerBusy, "the media server is busy")
                    .await;
                return Ending::Close(1011, "busy");
            }
        }
    }
}

async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Sorts one text message of a joined session.
async fn route(
    inner: &Inner,
    session: SessionId,
    out: &mut Outgoing,
    limits: &mut SignalLimits,
    chat_limit: &mut ChatRateLimit,
    pending: &mut PendingState,
    text: &str,
) -> Routed {
    let written = |result: Result<(), Unwritable>| match result {
        Ok(()) => Routed::Done,
        Err(Unwritable) => Routed::End(Ending::Gone),
    };
    match parse_client_message(text) {
        Ok(ClientMessage::Join { .. }) => written(
            out.refuse(inner, limits, ErrorCode::AlreadyJoined, "already joined")
                .await,
        ),
        Ok(ClientMessage::Leave) => Routed::End(Ending::Left),
        Ok(ClientMessage::Answer { sdp, revision }) => Routed::Command(
            Command::Answer {
                session,
                sdp,
                revision,
            },
            MessageClass::Answer,
            "answer",
        ),
        Ok(ClientMessage::Candidate { candidate }) => Routed::Command(
            Command::Candidate { session, candidate },
            MessageClass::Candidate,
            "candidate",
        ),
        Ok(ClientMessage::RestartIce) => Routed::Command(
            Command::RestartIce { session },
            MessageClass::RestartIce,
            "restart_ice",
        ),
        Ok(ClientMessage::Publish { audio, video }) => {
            if pending.publish.replace(Publish { audio, video }).is_some() {
                inner
                    .metrics
                    .rate_limited
                    .with_label_values(&["publish"])
                    .inc();
            }
            Routed::State
        }
        Ok(ClientMessage::Mute { audio, video }) => {
            if pending.muted.replace(Muted { audio, video }).is_some() {
                inner
                    .metrics
                    .rate_limited
                    .with_label_values(&["mute"])
                    .inc();
            }
            Routed::State
        }
        Ok(ClientMessage::Admit { participant_id }) => Routed::Command(
            Command::Admit {
                session,
                participant: participant_id,
            },
            MessageClass::Moderation,
            "admit",
        ),
        Ok(ClientMessage::Deny { participant_id }) => Routed::Command(
            Command::Deny {
                session,
                participant: participant_id,
            },
            MessageClass::Moderation,
            "deny",
        ),
        Ok(ClientMessage::Chat { text }) => {
            // Checked here, off the media worker; the text itself is never logged.
            let text = match validate_chat_text(&text) {
                Ok(text) => text,
                Err(refusal) => {
                    return written(
                        out.refuse(inner, limits, ErrorCode::BadMessage, &refusal.to_string())
                            .await,
                    );
                }
            };
            if !chat_limit.allow(Instant::now()) {
                inner
                    .metrics
                    .rate_limited
                    .with_label_values(&["chat"])
                    .inc();
                return written(
                    out.refuse(
                        inner,
                        limits,
                        ErrorCode::RateLimited,
                        "too many chat messages; wait a moment",
                    )
                    .await,
                );
            }
            // The chat bucket is its budget.
            Routed::Ready(Command::Chat {
                session,
                text,
                at: unix_millis(),
            })
        }
        Err(err) => written(report_parse_error(out, inner, limits, err).await),
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
    /// Ping/pong: nothing to do (the WebSocket answers pings).
    Ignore,
    /// The client sent a Close frame.
    ClosedByClient,
    /// The connection failed (reset, I/O error).
    Gone,
    /// The client broke the protocol: close with this code (1002 protocol error, 1007 invalid
    /// payload data, 1009 too big).
    Violation(u16, &'static str),
}

fn read_frame(frame: Result<Message, axum::Error>) -> Frame {
    match frame {
        Ok(Message::Text(text)) => Frame::Text(text.to_string()),
        Ok(Message::Binary(_)) => Frame::Binary,
        Ok(Message::Ping(_) | Message::Pong(_)) => Frame::Ignore,
        Ok(Message::Close(_)) => Frame::ClosedByClient,
        Err(err) => match err.into_inner().downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => Frame::Violation(1009, "message too big"),
            Some(tungstenite::Error::Utf8(_)) => Frame::Violation(1007, "invalid UTF-8"),
            Some(tungstenite::Error::Protocol(_)) => Frame::Violation(1002, "protocol error"),
            _ => Frame::Gone,
        },
    }
}

async fn report_parse_error(
    out: &mut Outgoing,
    inner: &Inner,
    limits: &mut SignalLimits,
    err: ParseError,
) -> Result<(), Unwritable> {
    match err {
        ParseError::Bad(detail) => {
            out.refuse(inner, limits, ErrorCode::BadMessage, &detail)
                .await
        }
        ParseError::UnknownType(kind) => {
            out.refuse(
                inner,
                limits,
                ErrorCode::UnknownType,
                &format!("unknown type `{kind}`"),
            )
            .await
        }
    }
}

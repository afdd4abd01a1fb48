//! The accept loop for HTTP and HTTPS, with the limits `axum::serve` lacks:
//!
//! - a global and a per-address cap on open TCP connections (HTTP and upgraded WebSockets;
//!   IPv6 grouped by /64; trusted proxies count against the global cap only): a connection
//!   over a cap is closed at accept and counted in
//!   `skaerm_http_connections_refused_total{reason}`;
//! - a header-read timeout (hyper's, from the connection's start or the end of the previous
//!   response to the end of the request head; the TLS handshake gets the same time);
//! - an idle timeout: no bytes either way and no request in progress for that long closes a
//!   keep-alive connection (counted);
//! - `accept` errors (EMFILE when the file limit is reached, ECONNABORTED…) back off briefly
//!   and are logged at most every 10 s with a count, never once per try.
//!
//! Plain HTTP is served as HTTP/1.1 only (browsers use h2 over TLS only); over TLS, ALPN picks
//! HTTP/2 or HTTP/1.1.

use crate::config::EdgeConfig;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use skaerm_auth::rate_limit::address_group;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a shutdown waits for connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (the file limit frees up as connections close).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this interval for failed accepts.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits in force.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections at most per address group.
    pub max_per_address: usize,
    /// Time for the TLS handshake and for each request head.
    pub header_timeout: Duration,
    /// Time without traffic and requests before a connection closes.
    pub idle_timeout: Duration,
    /// Peers exempt from the per-address cap (their clients are many).
    pub trusted_proxies: Vec<IpAddr>,
}

impl EdgeLimits {
    /// From the flags.
    pub fn from_config(config: &EdgeConfig, trusted_proxies: &[IpAddr]) -> Self {
        EdgeLimits {
            max_connections: config.max_connections.max(1),
            max_per_address: config.max_connections_per_ip.max(1),
            header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }
}

/// The edge's metrics.
#[derive(Clone, Debug)]
pub struct EdgeMetrics {
    open: IntGauge,
    refused: IntCounterVec,
    timed_out: IntCounterVec,
    accept_errors: IntCounter,
}

impl EdgeMetrics {
    /// Creates them and registers them in `registry`.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let metrics = EdgeMetrics {
            open: IntGauge::new(
                "skaerm_http_connections_open",
                "Open HTTP/WebSocket TCP connections",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "skaerm_http_connections_refused_total",
                    "TCP connections closed at accept because a connection cap was reached",
                ),
                &["reason"],
            )?,
            timed_out: IntCounterVec::new(
                Opts::new(
                    "skaerm_http_connections_timed_out_total",
                    "Connections closed for idling or a slow TLS handshake",
                ),
                &["reason"],
            )?,
            accept_errors: IntCounter::new(
                "skaerm_http_accept_errors_total",
                "Failed accepts (e.g. the open-file limit reached)",
            )?,
        };
        registry.register(Box::new(metrics.open.clone()))?;
        registry.register(Box::new(metrics.refused.clone()))?;
        registry.register(Box::new(metrics.timed_out.clone()))?;
        registry.register(Box::new(metrics.accept_errors.clone()))?;
        Ok(metrics)
    }
}

/// Open connections, in all and per address group.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    PerAddress,
}

/// A connection's place under the caps; freed when dropped (with the socket).
struct Slot {
    connections: Arc<Mutex<Connections>>,
    group: Option<IpAddr>,
    open: IntGauge,
}

impl Slot {
    fn take(
        connections: &Arc<Mutex<Connections>>,
        limits: &EdgeLimits,
        peer: IpAddr,
        open: &IntGauge,
    ) -> Result<Slot, Refusal> {
        let mut held = connections.lock().unwrap_or_else(|e| e.into_inner());
        if held.total >= limits.max_connections {
            return Err(Refusal::Total);
        }
        let group = (!limits.trusted_proxies.contains(&peer)).then(|| address_group(peer));
        if let Some(group) = group {
            let count = held.per_address.entry(group).or_insert(0);
            if *count >= limits.max_per_address {
                return Err(Refusal::PerAddress);
            }
            *count += 1;
        }
        held.total += 1;
        open.inc();
        Ok(Slot {
            connections: connections.clone(),
            group,
            open: open.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(group) = self.group
            && let Some(count) = held.per_address.get_mut(&group)
        {
            *count -= 1;
            if *count == 0 {
                held.per_address.remove(&group);
            }
        }
        self.open.dec();
    }
}

/// When a connection last moved bytes, and how many requests it has in progress.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        self.requests.load(Ordering::Relaxed) == 0 && self.idle_for() >= timeout
    }
}

/// A request in progress, counted until its response head is produced.
struct InRequest(Arc<Activity>);

impl InRequest {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        InRequest(activity.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records its traffic and holds its [`Slot`] (so an upgraded WebSocket keeps
/// counting against the caps until it closes).
struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Logs failed accepts at most once per [`ACCEPT_LOG_INTERVAL`], with how many there were.
struct AcceptErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    /// Counts a failure at `now`; logs it unless one was logged within the interval. Whether
    /// it logged.
    fn record(&mut self, err: &io::Error, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < ACCEPT_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return false;
        }
        tracing::warn!(
            %err,
            since_last_line = self.suppressed,
            "accept failed (the open-file limit? see LimitNOFILE in deploy/)"
        );
        self.last = Some(now);
        self.suppressed = 0;
        true
    }
}

/// Serves `app` on `listener` (TLS when `tls` is given) until `shutdown` resolves, then lets
/// open requests finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: EdgeLimits,
    metrics: EdgeMetrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connections = Arc::new(Mutex::new(Connections::default()));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut errors = AcceptErrorLog {
        last: None,
        suppressed: 0,
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    metrics.accept_errors.inc();
                    errors.record(&err, Instant::now());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let slot = match Slot::take(&connections, &limits, peer.ip(), &metrics.open) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::Total => "total",
                    Refusal::PerAddress => "per_address",
                };
                metrics.refused.with_label_values(&[reason]).inc();
                drop(tcp);
                continue;
            }
        };
        // No Nagle: signalling is small messages in bursts (`joined` then `offer`), and a
        // second small write waiting for the client's delayed ACK of the first cost 40 ms per
        // burst on loopback.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let connection = Connection {
            app: app.clone(),
            peer,
            limits: limits.clone(),
            metrics: metrics.clone(),
            stopping: stopping.clone(),
        };
        tasks.spawn(connection.run(tcp, slot, tls.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "connections still open after the shutdown grace"
        );
    }
}

/// The application for one connection: adds the peer address (`ConnectInfo`) and counts
/// requests in progress for the idle timeout.
#[derive(Clone)]
struct AppService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for AppService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<axum::response::Response, Self::Error>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        let in_request = InRequest::start(&self.activity);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            drop(in_request);
            response
        })
    }
}

/// One accepted connection.
struct Connection {
    app: Router,
    peer: SocketAddr,
    limits: EdgeLimits,
    metrics: EdgeMetrics,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, slot: Slot, tls: Option<tokio_rustls::TlsAcceptor>) {
        let activity = Arc::new(Activity::new());
        let Some(acceptor) = tls else {
            let io = Tracked {
                io: tcp,
                activity: activity.clone(),
                _slot: slot,
            };
            return self.serve_http1(io, activity).await;
        };
        let handshake =
            tokio::time::timeout(self.limits.header_timeout, acceptor.accept(tcp)).await;
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.metrics
                    .timed_out
                    .with_label_values(&["tls_handshake"])
                    .inc();
                return;
            }
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = Tracked {
            io: stream,
            activity: activity.clone(),
            _slot: slot,
        };
        if h2 {
            self.serve_http2(io, activity).await;
        } else {
            self.serve_http1(io, activity).await;
        }
    }

    fn service(&self, activity: &Arc<Activity>) -> AppService {
        AppService {
            app: self.app.clone(),
            peer: self.peer,
            activity: activity.clone(),
        }
    }

    async fn serve_http1<IO>(self, io: Tracked<IO>, activity: Arc<Activity>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .keep_alive(true);
        let service = self.service(&activity);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        self.drive(conn, &activity, |conn| conn.graceful_shutdown())
            .await;
    }

    async fn serve_http2<IO>(self, io: Tracked<IO>, activity: Arc<Activity>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        let service = self.service(&activity);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        self.drive(conn, &activity, |conn| conn.graceful_shutdown())
            .await;
    }

    /// Polls `conn` to its end, shutting it down gracefully when it idles past the timeout or
    /// the server stops.
    async fn drive<C, E>(
        mut self,
        mut conn: Pin<&mut C>,
        activity: &Activity,
        shut_down: impl Fn(Pin<&mut C>),
    ) where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let check_every = (self.limits.idle_timeout / 4).max(Duration::from_millis(50));
        let mut check = tokio::time::interval(check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%err, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = check.tick(), if !closing => {
                    if activity.is_idle(self.limits.idle_timeout) {
                        self.metrics.timed_out.with_label_values(&["idle"]).inc();
                        closing = true;
                        shut_down(conn.as_mut());
                    }
                }
                _ = self.stopping.changed(), if !closing => {
                    closing = true;
                    shut_down(conn.as_mut());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_accepts_are_logged_at_most_once_per_interval() {
        let mut log = AcceptErrorLog {
            last: None,
            suppressed: 0,
        };
        let emfile = io::Error::from_raw_os_error(24);
        let t0 = Instant::now();
        // A full file table fails every try; tries come every ACCEPT_BACKOFF.
        let logged = (0..400)
            .filter(|i| log.record(&emfile, t0 + ACCEPT_BACKOFF * *i))
            .count();
        // 400 × 50 ms = 20 s: a line at 0 s, 10 s (and none in between).
        assert_eq!(logged, 2);
        assert_eq!(log.suppressed, 199);
    }

    #[test]
    fn ipv6_clients_share_a_cap_per_64_and_trusted_proxies_only_the_total() {
        let limits = EdgeLimits {
            max_connections: 4,
            max_per_address: 2,
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            trusted_proxies: vec!["10.0.0.1".parse().unwrap()],
        };
        let connections = Arc::new(Mutex::new(Connections::default()));
        let open = IntGauge::new("open", "open").unwrap();
        let take = |ip: &str| Slot::take(&connections, &limits, ip.parse().unwrap(), &open);
        let a = take("2001:db8::1").unwrap();
        let _b = take("2001:db8::2").unwrap();
        assert!(matches!(take("2001:db8::3"), Err(Refusal::PerAddress)));
        let _proxy = [take("10.0.0.1").unwrap(), take("10.0.0.1").unwrap()];
        assert!(matches!(take("10.0.0.1"), Err(Refusal::Total)));
        drop(a);
        let again = take("2001:db8::4");
        assert!(again.is_ok(), "a closed connection frees its place");
        assert_eq!(open.get(), 4);
    }
}

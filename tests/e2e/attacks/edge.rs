//! The HTTP edge under attack: login sprays (bounded hashing, per account-and-address limits),
//! slow and idle connections, connection floods from one address, `/metrics` behind a proxy,
//! and caching of responses that carry tokens. Real TCP against the in-process server; other
//! client addresses are other loopback addresses (127.0.0.x) the client binds to.

use anyhow::{Context, Result, bail};
use serde_json::json;
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_server::http::csrf::CSRF_HEADER;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An HTTP client whose connections come from `ip` (a loopback address).
pub(super) fn client_from(ip: &str) -> Result<reqwest::Client> {
    skaerm_server::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>()?)
        .cookie_store(true)
        .build()?)
}

/// A raw TCP connection to `server` from the loopback address `ip`.
async fn tcp_from(server: &TestServer, ip: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip.parse()?, 0))?;
    Ok(socket.connect(server.server.http_addr()).await?)
}

/// POSTs a login from `client`; returns the status and the response's headers.
async fn login(
    server: &TestServer,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> Result<(u16, reqwest::header::HeaderMap)> {
    let response = client
        .post(format!("{}/api/session", server.url()))
        .header(CSRF_HEADER, "1")
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.headers().clone()))
}

/// A server whose password hashing runs `slots` at once, a login waiting `wait_ms` at most for
/// one (no per-address login limit in the way).
async fn server_with_hashing(slots: &str, wait_ms: &str) -> Result<TestServer> {
    TestServer::start_with(&[
        "--password-hash-concurrency",
        slots,
        "--password-hash-wait-ms",
        wait_ms,
        "--login-limit-per-ip",
        "1000",
    ])
    .await
}

/// `n` logins for unknown usernames from one address, all at once.
async fn login_spray(
    server: &TestServer,
    n: usize,
) -> Result<Vec<Result<(u16, reqwest::header::HeaderMap)>>> {
    let client = client_from("127.0.0.1")?;
    let spray: Vec<_> = (0..n)
        .map(|i| {
            let client = &client;
            async move { login(server, client, &format!("nobody-{i}"), "guess-guess").await }
        })
        .collect();
    Ok(futures_util::future::join_all(spray).await)
}

/// The value of the metric line starting with `series` (name and labels) in `/metrics`.
pub(super) async fn metric(server: &TestServer, series: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .with_context(|| format!("no {series} in /metrics"))
}

/// Reads until the peer closes; how long that took (fails after `limit`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => bail!("still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `GET /healthz` on `stream` (keep-alive) and reads the whole response.
async fn health_on(stream: &mut TcpStream) -> Result<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.ends_with(b"\r\n\r\nok") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
        if n == 0 {
            bail!("closed before the response ended");
        }
        response.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_spray_never_hashes_more_than_the_permits_at_once() -> Result<()> {
    let server = server_with_hashing("2", "30000").await?;
    for result in login_spray(&server, 24).await? {
        assert_eq!(result?.0, 401);
    }
    assert_eq!(metric(&server, "skaerm_password_hash_permits").await?, 2.0);
    let most = metric(&server, "skaerm_password_hashes_in_flight_max").await?;
    assert!(
        (1.0..=2.0).contains(&most),
        "at most 2 hashes ran at once, saw {most}"
    );
    assert_eq!(
        metric(&server, "skaerm_password_hashes_in_flight").await?,
        0.0
    );
    assert_eq!(
        metric(&server, "skaerm_password_hashes_refused_total").await?,
        0.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_known_usernames_cost_the_same() -> Result<()> {
    let server = TestServer::start_with(&["--login-limit-per-ip", "1000"]).await?;
    let m = server.municipality("Testkommune").await?;
    let client = client_from("127.0.0.1")?;
    let mut unknown = Vec::new();
    let mut known = Vec::new();
    // Warm up (the dummy hash is computed on first use).
    login(&server, &client, "nobody", "wrong password").await?;
    for i in 0..5 {
        let started = Instant::now();
        assert_eq!(
            login(&server, &client, &format!("nobody-{i}"), "wrong password")
                .await?
                .0,
            401
        );
        unknown.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(
            login(&server, &client, &m.username, "wrong password")
                .await?
                .0,
            401
        );
        known.push(started.elapsed());
    }
    unknown.sort();
    known.sort();
    let (unknown, known) = (unknown[2].as_secs_f64(), known[2].as_secs_f64());
    // Without the dummy hash an unknown username answers ~100× faster; the bounds leave room
    // for a busy machine.
    let ratio = unknown / known;
    assert!(
        (0.33..=3.0).contains(&ratio),
        "median unknown {unknown:.4}s vs known {known:.4}s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_hasher_answers_503_with_retry_after_and_counts_it() -> Result<()> {
    let server = server_with_hashing("1", "1").await?;
    let mut busy = 0;
    for result in login_spray(&server, 16).await? {
        let (status, headers) = result?;
        match status {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(headers.get("retry-after").unwrap(), "1");
            }
            other => bail!("unexpected {other}"),
        }
    }
    assert!(
        busy > 0,
        "16 logins at once on one slot with 1 ms of patience"
    );
    assert_eq!(
        metric(&server, "skaerm_password_hashes_refused_total").await?,
        f64::from(busy)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_elsewhere_cannot_lock_the_owner_out() -> Result<()> {
    let server = TestServer::start_with(&[
        "--login-limit-per-user",
        "3",
        "--login-limit-per-user-hour",
        "8",
    ])
    .await?;
    let m = server.municipality("Testkommune").await?;
    let attacker = client_from("127.0.0.2")?;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            login(&server, &attacker, &m.username, "wrong password")
                .await?
                .0,
        );
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "the attacker's address is throttled"
    );
    let owner = client_from("127.0.0.3")?;
    assert_eq!(
        login(&server, &owner, &m.username, PASSWORD).await?.0,
        200,
        "the owner, from another address, still gets in"
    );
    // Many addresses do not multiply the guesses: 8 per hour per account in all.
    let mut statuses = Vec::new();
    for last in 4..9 {
        let other = client_from(&format!("127.0.0.{last}"))?;
        statuses.push(
            login(&server, &other, &m.username, "wrong password")
                .await?
                .0,
        );
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 429],
        "the hourly cap per account"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_and_silent_connections_are_closed_after_the_header_timeout() -> Result<()>
{
    let server =
        TestServer::start_with(&["--header-timeout-secs", "1", "--idle-timeout-secs", "30"])
            .await?;
    let mut partial = tcp_from(&server, "127.0.0.1").await?;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await?;
    let mut silent = tcp_from(&server, "127.0.0.1").await?;
    let took = closed_within(&mut partial, Duration::from_secs(5)).await?;
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    closed_within(&mut silent, Duration::from_secs(5)).await?;
    // A prompt client is served as before.
    let mut prompt = tcp_from(&server, "127.0.0.1").await?;
    assert!(health_on(&mut prompt).await?.starts_with("HTTP/1.1 200"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_has_the_same_timeouts_and_caps() -> Result<()> {
    let server = TestServer::start_with(&[
        "--tls-self-signed",
        "--header-timeout-secs",
        "1",
        "--max-connections-per-ip",
        "2",
    ])
    .await?;
    // A handshake that never starts is given up after the header timeout.
    let mut silent = tcp_from(&server, "127.0.0.2").await?;
    let took = closed_within(&mut silent, Duration::from_secs(5)).await?;
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    // Two held connections fill the address's cap; a third is closed at once.
    let _held = [
        tcp_from(&server, "127.0.0.2").await?,
        tcp_from(&server, "127.0.0.2").await?,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tcp_from(&server, "127.0.0.2").await?;
    let took = closed_within(&mut third, Duration::from_secs(3)).await?;
    assert!(
        took < Duration::from_millis(800),
        "refused, not timed out: {took:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() -> Result<()> {
    let server =
        TestServer::start_with(&["--header-timeout-secs", "30", "--idle-timeout-secs", "1"])
            .await?;
    let mut stream = tcp_from(&server, "127.0.0.1").await?;
    assert!(health_on(&mut stream).await?.starts_with("HTTP/1.1 200"));
    // Kept alive for a second request right away…
    assert!(health_on(&mut stream).await?.starts_with("HTTP/1.1 200"));
    // …then closed once idle.
    let took = closed_within(&mut stream, Duration::from_secs(5)).await?;
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    assert!(
        metric(
            &server,
            "skaerm_http_connections_timed_out_total{reason=\"idle\"}"
        )
        .await?
            >= 1.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_its_connection_cap_is_refused_while_others_are_served() -> Result<()> {
    let server = TestServer::start_with(&["--max-connections-per-ip", "3"]).await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = tcp_from(&server, "127.0.0.2").await?;
        assert!(health_on(&mut stream).await?.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut fourth = tcp_from(&server, "127.0.0.2").await?;
    closed_within(&mut fourth, Duration::from_secs(3)).await?;
    // Another address is not affected.
    let other = client_from("127.0.0.3")?;
    let response = other
        .get(format!("{}/healthz", server.url()))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        metric(
            &server,
            "skaerm_http_connections_refused_total{reason=\"per_address\"}"
        )
        .await?
            >= 1.0
    );
    // A closed connection frees its place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut again = tcp_from(&server, "127.0.0.2").await?;
        if health_on(&mut again).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the freed place was not given back");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_to_a_loopback_request_relayed_by_a_proxy() -> Result<()> {
    let server = TestServer::start().await?;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", server.url());
    assert_eq!(client.get(&url).send().await?.status().as_u16(), 200);
    for header in [
        "x-real-ip",
        "x-forwarded-for",
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
    ] {
        let status = client
            .get(&url)
            .header(header, "203.0.113.9")
            .send()
            .await?
            .status()
            .as_u16();
        assert_eq!(status, 403, "{header}");
    }
    // With a token configured, loopback alone is not enough.
    let guarded = TestServer::start_with(&["--metrics-token", "a-long-scrape-token-0123"]).await?;
    let url = format!("{}/metrics", guarded.url());
    assert_eq!(client.get(&url).send().await?.status().as_u16(), 401);
    let authorised = client
        .get(&url)
        .bearer_auth("a-long-scrape-token-0123")
        .send()
        .await?;
    assert_eq!(authorised.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carrying_tokens_are_not_stored_by_caches() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    let post = |path: String, body: serde_json::Value| {
        let staff = &staff;
        async move {
            let response = staff
                .client()
                .post(format!("{}{path}", staff.base()))
                .header(CSRF_HEADER, "1")
                .json(&body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let cache = response
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            anyhow::Ok((status, cache, response.json::<serde_json::Value>().await?))
        }
    };
    let credentials = json!({"username": m.username, "password": PASSWORD});
    let (status, cache, _) = post("/api/session".into(), credentials).await?;
    assert_eq!((status, cache.as_str()), (200, "no-store"), "login");
    let (status, cache, _) = post("/api/session/refresh".into(), json!({})).await?;
    assert_eq!((status, cache.as_str()), (200, "no-store"), "refresh");
    let (status, cache, body) =
        post(format!("/api/visits/{}/citizen-link", visit.id), json!({})).await?;
    assert_eq!((status, cache.as_str()), (200, "no-store"), "citizen link");
    let secret = body["url"].as_str().unwrap().rsplit('/').next().unwrap();
    let (status, cache, _) = post(format!("/api/join/{secret}"), json!({})).await?;
    assert_eq!((status, cache.as_str()), (200, "no-store"), "link exchange");
    let (status, cache, _) =
        post(format!("/api/visits/{}/media-token", visit.id), json!({})).await?;
    assert_eq!(cache, "no-store", "media token ({status})");
    let (status, cache, _) = post("/api/calendar-feed".into(), json!({})).await?;
    assert_eq!((status, cache.as_str()), (200, "no-store"), "calendar feed");
    // Pages keep their own policy.
    let page = staff
        .client()
        .get(format!("{}/", server.url()))
        .send()
        .await?;
    assert_ne!(
        page.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "pages are not API responses"
    );
    Ok(())
}

/// Resident memory of this process (server and client), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The load check of issue 14 item 3 (not in CI: it takes ~30 s and measures the process):
/// 300 logins for unknown usernames from 300 loopback addresses, 64 at a time; RSS before,
/// right after, and after the connections closed. Run with
/// `cargo nextest run -p skaerm-e2e --test attacks --run-ignored only login_spray_rss`
/// (release: add `--release`); results in loadtest/README.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load check: run by hand, see loadtest/README.md"]
async fn login_spray_rss() -> Result<()> {
    let server = TestServer::start_with(&["--idle-timeout-secs", "2"]).await?;
    let addresses: Vec<String> = (0..300)
        .map(|i| format!("127.0.{}.{}", 1 + i / 250, 2 + i % 250))
        .collect();
    // Clients first: building one is slow, and a connection that stays silent while the
    // others are built would (rightly) be closed by the idle timeout.
    let clients = addresses
        .iter()
        .map(|ip| client_from(ip))
        .collect::<Result<Vec<_>>>()?;
    let before = rss_mib();
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (chunk_index, chunk) in clients.chunks(64).enumerate() {
        let logins: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let server = &server;
                let username = format!("nobody-{chunk_index}-{i}");
                async move { login(server, client, &username, "guess-guess").await }
            })
            .collect();
        for result in futures_util::future::join_all(logins).await {
            *statuses.entry(result?.0).or_default() += 1;
        }
    }
    let spray = started.elapsed();
    let after = rss_mib();
    drop(clients);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = rss_mib();
    let most = metric(&server, "skaerm_password_hashes_in_flight_max").await?;
    println!(
        "login spray: 300 logins in {:.1}s, statuses {statuses:?}; RSS {before:.0} MiB before, \
         {after:.0} MiB right after, {settled:.0} MiB 5 s after the clients closed; at most \
         {most} hashes at once",
        spray.as_secs_f64()
    );
    // Then, twice, 1 000 connections with a partial request head from 5 addresses, all closed.
    for round in 1..=2 {
        let mut held = Vec::new();
        for i in 0..1000 {
            let mut stream = tcp_from(&server, &format!("127.0.3.{}", 2 + i % 5)).await?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await?;
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let holding = rss_mib();
        let open_while_held = metric(&server, "skaerm_http_connections_open").await?;
        drop(held);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let flood_settled = rss_mib();
        let open = metric(&server, "skaerm_http_connections_open").await?;
        println!(
            "connection flood {round}: {open_while_held} open while held, RSS {holding:.0} MiB; \
             {open} open and RSS {flood_settled:.0} MiB 3 s after they closed"
        );
    }
    assert!(
        settled - before < 200.0,
        "RSS grew by {:.0} MiB",
        settled - before
    );
    Ok(())
}

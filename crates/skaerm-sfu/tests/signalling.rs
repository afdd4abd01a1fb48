//! The signalling endpoint over a real WebSocket against a running relay: hostile input gets an
//! error message or a close with a reason, and never disturbs the other participants.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use skaerm_sfu::Sfu;
use skaerm_sfu::config::RelayConfig;
use skaerm_sfu::grant::{JoinAuthorizer, JoinGrant, JoinRefusal};
use skaerm_sfu::ids::{ParticipantId, RoomId};
use skaerm_sfu::protocol::RoomRole;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

/// Tokens are `grant:<room>:<participant>` (a guest who needs no admission), `host:…` (a host)
/// or `waiting:…` (a guest who waits to be admitted); `expired` and anything else are refused.
struct TestAuthorizer;

impl JoinAuthorizer for TestAuthorizer {
    fn authorize<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<JoinGrant, JoinRefusal>> {
        Box::pin(async move {
            if token == "expired" {
                return Err(JoinRefusal::TokenExpired);
            }
            let mut parts = token.split(':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(kind @ ("grant" | "host" | "waiting")), Some(room), Some(participant)) => {
                    Ok(JoinGrant {
                        room: RoomId(room.parse().map_err(|_| JoinRefusal::TokenInvalid)?),
                        participant: ParticipantId(
                            participant.parse().map_err(|_| JoinRefusal::TokenInvalid)?,
                        ),
                        role: if kind == "host" {
                            RoomRole::Host
                        } else {
                            RoomRole::Guest
                        },
                        display_name: "<b>test</b>".into(),
                        needs_admission: kind == "waiting",
                        admitted_by: None,
                        credential: None,
                    })
                }
                _ => Err(JoinRefusal::TokenInvalid),
            }
        })
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(config: RelayConfig) -> (SocketAddr, Sfu) {
    let registry = prometheus::Registry::new();
    let sfu = Sfu::start(config, Arc::new(TestAuthorizer), &registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sfu.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sfu)
}

fn config() -> RelayConfig {
    RelayConfig {
        udp_bind: "127.0.0.1:0".parse().unwrap(),
        join_timeout: Duration::from_millis(500),
        ..RelayConfig::default()
    }
}

async fn connect(addr: SocketAddr) -> Ws {
    connect_async(format!("ws://{addr}/ws")).await.unwrap().0
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Next JSON message (skipping pings); `None` when the socket closed (with its close frame).
async fn next(ws: &mut Ws) -> Result<Value, Option<(CloseCode, String)>> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no message within 5 s");
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map(|f| (f.code, f.reason.to_string())));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

async fn expect_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let message = next(ws)
            .await
            .unwrap_or_else(|c| panic!("closed {c:?}, wanted {kind}"));
        if message["type"] == kind {
            return message;
        }
    }
}

async fn join(addr: SocketAddr, room: Uuid) -> (Ws, Uuid) {
    let mut ws = connect(addr).await;
    let participant = Uuid::new_v4();
    send(
        &mut ws,
        json!({"type": "join", "protocol": 1, "token": format!("grant:{room}:{participant}"),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    let joined = expect_type(&mut ws, "joined").await;
    assert_eq!(joined["you"]["id"], participant.to_string());
    expect_type(&mut ws, "offer").await;
    (ws, participant)
}

#[tokio::test]
async fn hostile_signalling_gets_errors_and_others_keep_working() {
    let (addr, _sfu) = start(config()).await;
    let room = Uuid::new_v4();
    let (mut alice, _) = join(addr, room).await;
    let (mut bob, bob_id) = join(addr, room).await;
    let joined = expect_type(&mut alice, "participant_joined").await;
    assert_eq!(joined["participant"]["id"], bob_id.to_string());
    assert_eq!(joined["participant"]["display_name"], "<b>test</b>");

    // Not JSON, an unknown type, a known type with bad fields, a binary frame: errors, session
    // continues.
    bob.send(Message::text("this is not json")).await.unwrap();
    assert_eq!(expect_type(&mut bob, "error").await["code"], "bad_message");
    send(&mut bob, json!({"type": "teleport"})).await;
    assert_eq!(expect_type(&mut bob, "error").await["code"], "unknown_type");
    send(
        &mut bob,
        json!({"type": "answer", "sdp": 42, "revision": "x"}),
    )
    .await;
    assert_eq!(expect_type(&mut bob, "error").await["code"], "bad_message");
    bob.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(expect_type(&mut bob, "error").await["code"], "bad_message");
    send(
        &mut bob,
        json!({"type": "join", "protocol": 1, "token": "x"}),
    )
    .await;
    assert_eq!(
        expect_type(&mut bob, "error").await["code"],
        "already_joined"
    );

    // SDP garbage as the answer: refused, and the offer comes again.
    send(
        &mut bob,
        json!({"type": "answer", "sdp": "v=0\r\ngarbage", "revision": 1}),
    )
    .await;
    let error = expect_type(&mut bob, "error").await;
    assert_eq!(error["code"], "bad_sdp");
    assert_eq!(error["fatal"], false);
    let offer = expect_type(&mut bob, "offer").await;
    assert_eq!(offer["revision"], 1);
    // An answer to an offer that does not exist.
    send(
        &mut bob,
        json!({"type": "answer", "sdp": "v=0", "revision": 99}),
    )
    .await;
    assert_eq!(
        expect_type(&mut bob, "error").await["code"],
        "stale_revision"
    );

    // Alice is unaffected: her mute reaches Bob.
    send(
        &mut alice,
        json!({"type": "mute", "audio": true, "video": false}),
    )
    .await;
    let update = expect_type(&mut bob, "participant_updated").await;
    assert_eq!(update["participant"]["muted"]["audio"], true);

    // A 10 MB frame closes the sender's socket with 1009; Alice still works afterwards.
    let mut mallory = connect(addr).await;
    let huge = "x".repeat(10 * 1024 * 1024);
    let _ = mallory.send(Message::text(huge)).await;
    match next(&mut mallory).await {
        Err(Some((code, _))) => assert_eq!(code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    send(
        &mut alice,
        json!({"type": "mute", "audio": false, "video": false}),
    )
    .await;
    let update = expect_type(&mut bob, "participant_updated").await;
    assert_eq!(update["participant"]["muted"]["audio"], false);

    // Leaving is seen by the other.
    send(&mut bob, json!({"type": "leave"})).await;
    let left = expect_type(&mut alice, "participant_left").await;
    assert_eq!(left["participant_id"], bob_id.to_string());
    assert_eq!(left["reason"], "left");
}

#[tokio::test]
async fn refused_joins_close_with_a_reason() {
    let (addr, _sfu) = start(config()).await;

    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "join", "protocol": 1, "token": "forged"}),
    )
    .await;
    let error = expect_type(&mut ws, "error").await;
    assert_eq!(error["code"], "token_invalid");
    assert_eq!(error["fatal"], true);
    assert_eq!(
        next(&mut ws).await.unwrap_err().unwrap().0,
        CloseCode::Policy
    );

    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "join", "protocol": 1, "token": "expired"}),
    )
    .await;
    assert_eq!(expect_type(&mut ws, "error").await["code"], "token_expired");

    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "join", "protocol": 2, "token": "x"}),
    )
    .await;
    assert_eq!(
        expect_type(&mut ws, "error").await["code"],
        "unsupported_protocol"
    );

    // Anything before join is refused but the session may still join.
    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "mute", "audio": true, "video": true}),
    )
    .await;
    assert_eq!(expect_type(&mut ws, "error").await["code"], "not_joined");

    // Silence: closed with 4001 after the join timeout.
    let mut ws = connect(addr).await;
    match next(&mut ws).await {
        Err(Some((code, _))) => assert_eq!(u16::from(code), 4001),
        other => panic!("expected a 4001 close, got {other:?}"),
    }
}

/// The UDP port in the first host candidate of an offer.
fn candidate_port(offer: &Value) -> u16 {
    let sdp = offer["sdp"].as_str().unwrap();
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .expect("the offer carries a host candidate");
    // a=candidate:<foundation> <component> udp <priority> <ip> <port> typ host
    line.split_whitespace().nth(5).unwrap().parse().unwrap()
}

async fn join_and_offer(addr: SocketAddr, room: Uuid) -> (Ws, Value) {
    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"type": "join", "protocol": 1,
               "token": format!("grant:{room}:{}", Uuid::new_v4()),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    expect_type(&mut ws, "joined").await;
    let offer = expect_type(&mut ws, "offer").await;
    (ws, offer)
}

#[tokio::test]
async fn rooms_are_pinned_to_workers_each_with_its_own_port() {
    let (addr, sfu) = start(RelayConfig {
        media_workers: 2,
        ..config()
    })
    .await;
    assert_eq!(sfu.worker_count(), 2);
    let ports: Vec<u16> = sfu.udp_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1], "each worker owns its own socket");
    // Rooms hash to workers by id: find one room for each worker.
    let room_for = |worker: u128| loop {
        let room = Uuid::new_v4();
        if room.as_u128() % 2 == worker {
            return room;
        }
    };
    let mut seen = Vec::new();
    for worker in [0u128, 1] {
        let room = room_for(worker);
        let (_a, offer_a) = join_and_offer(addr, room).await;
        let (_b, offer_b) = join_and_offer(addr, room).await;
        let port = candidate_port(&offer_a);
        assert_eq!(
            port,
            candidate_port(&offer_b),
            "both participants of a visit land on the same worker"
        );
        assert_eq!(
            port, ports[worker as usize],
            "the room's worker announces its port"
        );
        seen.push(port);
    }
    assert_ne!(seen[0], seen[1], "the two rooms are on different workers");
}

#[tokio::test]
async fn malformed_admits_get_errors_and_a_real_one_lets_the_guest_in() {
    let (addr, _sfu) = start(config()).await;
    let room = Uuid::new_v4();
    let mut host = connect(addr).await;
    let host_id = Uuid::new_v4();
    send(
        &mut host,
        json!({"type": "join", "protocol": 1, "token": format!("host:{room}:{host_id}"),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    let joined = expect_type(&mut host, "joined").await;
    assert_eq!(joined["waiting"], json!([]));
    let mut guest = connect(addr).await;
    let guest_id = Uuid::new_v4();
    send(
        &mut guest,
        json!({"type": "join", "protocol": 1, "token": format!("waiting:{room}:{guest_id}"),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    let waiting = next(&mut guest).await.unwrap();
    assert_eq!(waiting["type"], "waiting");
    assert_eq!(waiting["you"]["id"], guest_id.to_string());
    let shown = expect_type(&mut host, "participant_waiting").await;
    assert_eq!(shown["participant"]["id"], guest_id.to_string());
    assert_eq!(shown["participant"]["display_name"], "<b>test</b>");

    // Nobody by that id waits; a bad id; no id at all; a guest trying it.
    send(
        &mut host,
        json!({"type": "admit", "participant_id": Uuid::new_v4().to_string()}),
    )
    .await;
    let error = expect_type(&mut host, "error").await;
    assert_eq!(error["code"], "unknown_participant");
    assert_eq!(error["fatal"], false);
    send(
        &mut host,
        json!({"type": "admit", "participant_id": "'; drop"}),
    )
    .await;
    let error = expect_type(&mut host, "error").await;
    assert_eq!(error["code"], "bad_message");
    send(&mut host, json!({"type": "deny"})).await;
    let error = expect_type(&mut host, "error").await;
    assert_eq!(error["code"], "bad_message");
    send(
        &mut guest,
        json!({"type": "admit", "participant_id": guest_id.to_string()}),
    )
    .await;
    let error = next(&mut guest).await.unwrap();
    assert_eq!(error["code"], "not_joined");

    // The host is still in the call and its admit lets the guest in.
    send(
        &mut host,
        json!({"type": "admit", "participant_id": guest_id.to_string()}),
    )
    .await;
    let joined = expect_type(&mut guest, "joined").await;
    assert_eq!(joined["participants"][0]["id"], host_id.to_string());
    expect_type(&mut guest, "offer").await;
    let entered = expect_type(&mut host, "participant_joined").await;
    assert_eq!(entered["participant"]["id"], guest_id.to_string());
}

#[tokio::test]
async fn a_denied_guest_is_told_and_closed_normally() {
    let (addr, _sfu) = start(config()).await;
    let room = Uuid::new_v4();
    let mut host = connect(addr).await;
    send(
        &mut host,
        json!({"type": "join", "protocol": 1, "token": format!("host:{room}:{}", Uuid::new_v4()),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    expect_type(&mut host, "joined").await;
    let mut guest = connect(addr).await;
    let guest_id = Uuid::new_v4();
    send(
        &mut guest,
        json!({"type": "join", "protocol": 1, "token": format!("waiting:{room}:{guest_id}")}),
    )
    .await;
    expect_type(&mut guest, "waiting").await;
    expect_type(&mut host, "participant_waiting").await;
    send(
        &mut host,
        json!({"type": "deny", "participant_id": guest_id.to_string()}),
    )
    .await;
    let ended = next(&mut guest).await.unwrap();
    assert_eq!(ended["type"], "ended");
    assert_eq!(ended["reason"], "denied");
    let closed = next(&mut guest).await.unwrap_err();
    assert_eq!(closed.map(|(code, _)| code), Some(CloseCode::Normal));
    let left = expect_type(&mut host, "participant_left").await;
    assert_eq!(left["participant_id"], guest_id.to_string());
    assert_eq!(left["reason"], "denied");
}

#[tokio::test]
async fn a_waiting_guest_that_stops_answering_is_dropped_and_hosts_are_told() {
    let (addr, _sfu) = start(RelayConfig {
        ping_interval: Duration::from_millis(200),
        ..config()
    })
    .await;
    let room = Uuid::new_v4();
    let mut host = connect(addr).await;
    send(
        &mut host,
        json!({"type": "join", "protocol": 1, "token": format!("host:{room}:{}", Uuid::new_v4()),
               "publish": {"audio": true, "video": true}}),
    )
    .await;
    expect_type(&mut host, "joined").await;
    let mut guest = connect(addr).await;
    let guest_id = Uuid::new_v4();
    send(
        &mut guest,
        json!({"type": "join", "protocol": 1, "token": format!("waiting:{room}:{guest_id}")}),
    )
    .await;
    expect_type(&mut guest, "waiting").await;
    expect_type(&mut host, "participant_waiting").await;
    // The guest's socket is no longer read, so its pings go unanswered: the waiting room keeps
    // the signalling timeouts, and the host (who keeps reading) hears that it is gone.
    let left = expect_type(&mut host, "participant_left").await;
    assert_eq!(left["participant_id"], guest_id.to_string());
    assert_eq!(left["reason"], "disconnected");
    send(
        &mut host,
        json!({"type": "admit", "participant_id": guest_id.to_string()}),
    )
    .await;
    assert_eq!(
        expect_type(&mut host, "error").await["code"],
        "unknown_participant"
    );
    drop(guest);
}

#[tokio::test]
async fn admitted_participants_chat_both_ways_and_waiting_guests_cannot() {
    let (addr, _sfu) = start(config()).await;
    let room = Uuid::new_v4();
    let (mut a, a_id) = join(addr, room).await;
    let (mut b, b_id) = join(addr, room).await;
    expect_type(&mut a, "participant_joined").await;

    // A waiting guest is in the lobby, not in the call: refused, and nobody hears it.
    let mut waiting = connect(addr).await;
    send(
        &mut waiting,
        json!({"type": "join", "protocol": 1,
               "token": format!("waiting:{room}:{}", Uuid::new_v4())}),
    )
    .await;
    assert_eq!(next(&mut waiting).await.unwrap()["type"], "waiting");
    send(&mut waiting, json!({"type": "chat", "text": "let me in"})).await;
    let error = next(&mut waiting).await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "not_joined");
    assert_eq!(error["fatal"], false);

    // A → room (A hears its own message back, in the relay's order), then B → room.
    send(
        &mut a,
        json!({"type": "chat", "text": "  <img src=x onerror=alert(1)>\n  "}),
    )
    .await;
    for ws in [&mut a, &mut b] {
        let chat = expect_type(ws, "chat").await;
        assert_eq!(chat["from"], a_id.to_string());
        assert_eq!(chat["text"], "<img src=x onerror=alert(1)>");
        assert!(chat["at"].as_u64().unwrap() > 1_600_000_000_000);
    }
    send(&mut b, json!({"type": "chat", "text": "hej\nmed dig"})).await;
    for ws in [&mut b, &mut a] {
        let chat = expect_type(ws, "chat").await;
        assert_eq!(chat["from"], b_id.to_string());
        assert_eq!(chat["text"], "hej\nmed dig");
    }
    // The waiting guest heard none of it: its next message is its own refusal again.
    send(&mut waiting, json!({"type": "chat", "text": "?"})).await;
    assert_eq!(next(&mut waiting).await.unwrap()["code"], "not_joined");
}

#[tokio::test]
async fn bad_chat_texts_are_refused_and_the_rate_limit_trips_and_recovers() {
    let (addr, _sfu) = start(config()).await;
    let room = Uuid::new_v4();
    let (mut a, a_id) = join(addr, room).await;

    for bad in [
        json!({"type": "chat", "text": ""}),
        json!({"type": "chat", "text": " \n\t "}),
        json!({"type": "chat", "text": "x".repeat(1001)}),
        json!({"type": "chat", "text": "bell\u{7}"}),
        json!({"type": "chat", "text": "a\rb"}),
        json!({"type": "chat", "text": 42}),
        json!({"type": "chat"}),
    ] {
        send(&mut a, bad.clone()).await;
        let error = expect_type(&mut a, "error").await;
        assert_eq!(error["code"], "bad_message", "{bad}");
        assert_eq!(error["fatal"], false);
    }
    // Exactly 1000 characters is fine (and uses one token).
    send(&mut a, json!({"type": "chat", "text": "æ".repeat(1000)})).await;
    let chat = expect_type(&mut a, "chat").await;
    assert_eq!(chat["text"].as_str().unwrap().chars().count(), 1000);
    assert_eq!(chat["from"], a_id.to_string());

    // Four more fill the bucket of five; the sixth is refused, not fatally.
    for i in 0..4 {
        send(&mut a, json!({"type": "chat", "text": format!("m{i}")})).await;
        assert_eq!(expect_type(&mut a, "chat").await["text"], format!("m{i}"));
    }
    send(&mut a, json!({"type": "chat", "text": "one too many"})).await;
    let error = expect_type(&mut a, "error").await;
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["fatal"], false);

    // One token a second comes back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut a, json!({"type": "chat", "text": "again"})).await;
    assert_eq!(expect_type(&mut a, "chat").await["text"], "again");
}

/// Writes raw bytes to the client's TCP socket under its WebSocket (to send what a
/// well-behaved library refuses to: bad frames).
async fn write_raw(ws: &mut Ws, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    match ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
        _ => unreachable!("plain ws:// only"),
    }
}

/// A masked client frame (RFC 6455 §5.3; a zero mask keeps the payload readable).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn a_clients_close_frame_is_answered_with_a_close_frame() {
    let (addr, _sfu) = start(config()).await;
    // Before joining and after.
    let mut early = connect(addr).await;
    early.send(Message::Close(None)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(2), early.next()).await {
        Ok(Some(Ok(Message::Close(_)))) => {}
        other => panic!("expected the server's Close frame, got {other:?}"),
    }
    let (mut joined, _) = join(addr, Uuid::new_v4()).await;
    joined.send(Message::Close(None)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), joined.next()).await {
            Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => continue, // messages already on their way
            other => panic!("expected the server's Close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let (addr, _sfu) = start(config()).await;
    // A text frame that is not UTF-8.
    let mut ws = connect(addr).await;
    write_raw(&mut ws, &masked_frame(0x1, &[0xff, 0xfe, 0xfd])).await;
    match next(&mut ws).await {
        Err(Some((code, _))) => assert_eq!(code, CloseCode::Invalid),
        other => panic!("expected a 1007 close, got {other:?}"),
    }
    // An unmasked frame from a client is a protocol error.
    let mut ws = connect(addr).await;
    write_raw(&mut ws, &[0x81, 0x02, b'h', b'i']).await;
    match next(&mut ws).await {
        Err(Some((code, _))) => assert_eq!(code, CloseCode::Protocol),
        other => panic!("expected a 1002 close, got {other:?}"),
    }
    // So is a reserved opcode, after joining too.
    let (mut ws, _) = join(addr, Uuid::new_v4()).await;
    write_raw(&mut ws, &masked_frame(0x3, b"x")).await;
    loop {
        match next(&mut ws).await {
            Ok(_) => continue,
            Err(Some((code, _))) => {
                assert_eq!(code, CloseCode::Protocol);
                break;
            }
            Err(None) => panic!("closed without a close frame"),
        }
    }
}

#[tokio::test]
async fn a_join_flood_that_never_reads_is_closed_at_the_join_deadline() {
    let (addr, _sfu) = start(config()).await; // join timeout 500 ms
    // A client with a small receive buffer that never reads: the server's answers back up
    // at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    let (mut sink, _never_read) = ws.split();
    let started = std::time::Instant::now();
    // Each message draws an error quoting its type: answers as big as the flood itself.
    let big = json!({"type": "t".repeat(190)}).to_string();
    // Writes until the server has dropped the connection.
    let flood = async {
        loop {
            if sink.send(Message::text(big.clone())).await.is_err() {
                return started.elapsed();
            }
        }
    };
    let closed_after = tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .expect("the flood was still accepted 10 s later");
    assert!(
        closed_after < Duration::from_secs(4),
        "closed only after {closed_after:?}"
    );
}

#[tokio::test]
async fn every_message_type_has_a_budget_and_mutes_are_coalesced_to_the_latest() {
    let registry = prometheus::Registry::new();
    let sfu = Sfu::start(config(), Arc::new(TestAuthorizer), &registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sfu.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let room = Uuid::new_v4();
    let (mut host, _) = join(addr, room).await;
    let (mut guest, guest_id) = join(addr, room).await;
    expect_type(&mut host, "participant_joined").await;

    // 1000 mutes in a burst: the host gets a few updates, the last one the final state.
    for i in 0..1000 {
        send(
            &mut guest,
            json!({"type": "mute", "audio": i % 2 == 0, "video": i == 999}),
        )
        .await;
    }
    let mut updates = 0;
    loop {
        let update = expect_type(&mut host, "participant_updated").await;
        updates += 1;
        assert_eq!(update["participant"]["id"], guest_id.to_string());
        if update["participant"]["muted"]["video"] == true {
            assert_eq!(update["participant"]["muted"]["audio"], false);
            break;
        }
    }
    assert!(updates <= 20, "{updates} updates for one burst");

    // 1000 candidates: the guest hears `rate_limited` once, and the drops are counted.
    for i in 0..1000 {
        send(
            &mut guest,
            json!({"type": "candidate", "candidate": {
                "candidate": format!("candidate:{i} 1 udp 1 192.0.2.1 {} typ host", 1000 + i),
                "sdpMid": "0", "sdpMLineIndex": 0}}),
        )
        .await;
    }
    send(&mut guest, json!({"type": "chat", "text": "still here"})).await;
    let mut rate_limited = 0;
    loop {
        let message = next(&mut guest).await.unwrap();
        if message["type"] == "error" && message["code"] == "rate_limited" {
            rate_limited += 1;
        }
        if message["type"] == "chat" {
            break;
        }
    }
    assert_eq!(rate_limited, 1, "told once, not once per candidate");
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let dropped: f64 = text
        .lines()
        .find(|l| l.starts_with("skaerm_signalling_rate_limited_total{type=\"candidate\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(dropped >= 900.0, "{text}");
}

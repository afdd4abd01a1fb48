//! TURN servers in the join, through the real server: `joined` carries coturn's URLs with a
//! short-lived REST-API credential (checked here with HMAC-SHA1 of our own) only when TURN is
//! configured, and only once the participant is in the room — a citizen in the waiting room
//! gets none until let in. A malformed TURN URL stops the server at start with a clear message.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::{Result, bail};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "e2e-turn-secret-0123456789abcdef";
const UDP_URL: &str = "turn:turn.example.dk:3478?transport=udp";
const TLS_URL: &str = "turns:turn.example.dk:443?transport=tcp";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw signalling socket that has sent `join` (the raw JSON is what this test is about).
async fn join(server: &TestServer, token: &str, room: uuid::Uuid) -> Result<Socket> {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let join = json!({"type": "join", "protocol": 1, "token": token, "room": room,
        "publish": {"audio": true, "video": true}});
    ws.send(Message::text(join.to_string())).await?;
    Ok(ws)
}

/// The next message of `type` (others are skipped), as raw JSON.
async fn next_of(ws: &mut Socket, wanted: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await;
        match frame {
            Err(_) => bail!("no {wanted} within 10 s"),
            Ok(None) => bail!("socket closed before {wanted}"),
            Ok(Some(frame)) => {
                if let Message::Text(text) = frame? {
                    let message: Value = serde_json::from_str(&text)?;
                    if message["type"] == wanted {
                        return Ok(message);
                    }
                    if message["type"] == "error" {
                        bail!("error while waiting for {wanted}: {message}");
                    }
                }
            }
        }
    }
}

/// Checks one `joined.ice_servers` as coturn would: returns the username.
fn check_turn_servers(joined: &Value, forbidden_ids: &[String]) -> String {
    let servers = joined["ice_servers"].as_array().expect("ice_servers");
    assert_eq!(servers.len(), 1, "{joined}");
    let server = &servers[0];
    assert_eq!(server["urls"], json!([UDP_URL, TLS_URL]));
    let username = server["username"].as_str().unwrap().to_owned();
    let credential = server["credential"].as_str().unwrap();
    let (expiry, opaque) = username.split_once(':').expect("<expiry>:<opaque id>");
    let lifetime = expiry.parse::<i64>().unwrap() - chrono::Utc::now().timestamp();
    assert!(
        (3 * 3600 - 60..=3 * 3600).contains(&lifetime),
        "default lifetime three hours: {lifetime} s"
    );
    for id in forbidden_ids {
        assert!(!username.contains(id.as_str()), "{username} names {id}");
        assert!(
            !username.contains(&id.replace('-', "")),
            "{username} names {id}"
        );
    }
    assert!(opaque.len() == 32 && opaque.chars().all(|c| c.is_ascii_hexdigit()));
    // coturn's check (`use-auth-secret`): base64(HMAC-SHA1(static-auth-secret, username)).
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(credential, expected, "the credential coturn would accept");
    username
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_carries_turn_credentials_only_when_configured_and_admitted() -> Result<()> {
    let server = TestServer::start_with(&[
        "--turn-url",
        UDP_URL,
        "--turn-url",
        TLS_URL,
        "--turn-secret",
        SECRET,
    ])
    .await?;
    let m = server.municipality("Turnkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let secret = staff_tab.citizen_link(&visit).await?;
    let (status, body) = Browser::new(&server.url())?.exchange_link(&secret).await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains("turn:") && body.get("ice_servers").is_none(),
        "the media-token answer carries no TURN servers: {body}"
    );
    let citizen_token = body["media_token"].as_str().unwrap().to_owned();
    let ids = [m.staff.id.to_string(), m.citizen.id.to_string()];

    let mut staff = join(&server, &staff_token, visit.id.0).await?;
    let staff_joined = next_of(&mut staff, "joined").await?;
    let staff_username = check_turn_servers(&staff_joined, &ids);

    // The citizen waits: no TURN credential yet.
    let mut citizen = join(&server, &citizen_token, visit.id.0).await?;
    let waiting = next_of(&mut citizen, "waiting").await?;
    assert!(waiting.get("ice_servers").is_none(), "{waiting}");
    assert!(!waiting.to_string().contains(UDP_URL), "{waiting}");
    next_of(&mut staff, "participant_waiting").await?;
    staff
        .send(Message::text(
            json!({"type": "admit", "participant_id": m.citizen.id.to_string()}).to_string(),
        ))
        .await?;
    let citizen_joined = next_of(&mut citizen, "joined").await?;
    let citizen_username = check_turn_servers(&citizen_joined, &ids);
    assert_ne!(staff_username, citizen_username, "one credential per join");
    next_of(&mut citizen, "offer").await?;

    // Without TURN settings `joined` is as before.
    let plain = TestServer::start().await?;
    let m = plain.municipality("Udenturn").await?;
    let visit = plain.visit_soon(&m).await?;
    let tab = Browser::new(&plain.url())?;
    tab.login(&m.username, PASSWORD).await?;
    let token = tab.start_visit(&visit).await?;
    let mut staff = join(&plain, &token, visit.id.0).await?;
    let joined = next_of(&mut staff, "joined").await?;
    assert!(joined.get("ice_servers").is_none(), "{joined}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_turn_settings_stop_the_server_at_start_with_a_clear_message() -> Result<()> {
    for (flags, expected) in [
        (
            vec![
                "--turn-url",
                "turn://turn.example.dk",
                "--turn-secret",
                SECRET,
            ],
            "invalid TURN URL \"turn://turn.example.dk\"",
        ),
        (
            vec![
                "--turn-url",
                "turns:turn.example.dk:443?transport=udp",
                "--turn-secret",
                SECRET,
            ],
            "only ?transport=tcp",
        ),
        (
            vec!["--turn-url", UDP_URL],
            "--turn-url needs --turn-secret",
        ),
        (
            vec![
                "--turn-url",
                UDP_URL,
                "--turn-secret",
                SECRET,
                "--turn-ttl-secs",
                "86400",
            ],
            "between 5 minutes and 6 hours",
        ),
    ] {
        let Err(err) = TestServer::start_with(&flags).await else {
            bail!("started with {flags:?}");
        };
        let message = format!("{err:#}");
        assert!(message.contains(expected), "{flags:?}: {message}");
        assert!(message.contains("TURN settings"), "{message}");
    }
    Ok(())
}

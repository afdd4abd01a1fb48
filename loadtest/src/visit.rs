//! One synthetic visit against Skærm, the way people use it: the staff member logs in and
//! starts the visit (`POST /api/session`, `POST /api/visits/{id}/start`), the citizen exchanges
//! the link secret (`POST /api/join/{secret}`); then each opens `/ws`, sends `join` and answers
//! every `offer` through the media engine (PROTOCOL.md). Each participant's HTTP client uses its
//! own loopback source address, as separate devices would (the server rate-limits per address).

use crate::accounting::JoinMark;
use crate::engine::{Command, EngineHandle};
use crate::seed::{PASSWORD, SeededVisit};
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use skaerm_sfu::protocol::{ClientMessage, Publish};
use std::net::{IpAddr, Ipv4Addr};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Media tokens of one visit.
#[derive(Debug, Clone)]
pub struct VisitTokens {
    /// The staff member's (host).
    pub staff: String,
    /// The citizen's (guest).
    pub citizen: String,
}

/// A distinct loopback address for HTTP client `n` (staff or citizen of a visit).
pub(crate) fn client_ip(n: u32) -> IpAddr {
    let base = u32::from_be_bytes([127, 3, 0, 1]);
    IpAddr::V4(Ipv4Addr::from(base + n))
}

pub(crate) async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<Value> {
    let response = client
        .post(&url)
        // What the web client sends on every write (the server's CSRF check).
        .header("X-Skaerm-CSRF", "1")
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// Gets the two media tokens of visit number `index`.
pub async fn tokens(base: &str, index: u32, visit: &SeededVisit) -> Result<VisitTokens> {
    let staff = reqwest::Client::builder()
        .cookie_store(true)
        .local_address(client_ip(index * 2))
        .build()?;
    post(
        &staff,
        format!("{base}/api/session"),
        json!({"username": visit.username, "password": PASSWORD}),
    )
    .await?;
    let started = post(
        &staff,
        format!("{base}/api/visits/{}/start", visit.visit_id),
        json!({}),
    )
    .await?;
    let citizen = reqwest::Client::builder()
        .local_address(client_ip(index * 2 + 1))
        .build()?;
    let joined = post(
        &citizen,
        format!("{base}/api/join/{}", visit.citizen_secret),
        json!({}),
    )
    .await?;
    let token = |v: &Value| v["media_token"].as_str().map(str::to_owned);
    Ok(VisitTokens {
        staff: token(&started).context("no staff media token")?,
        citizen: token(&joined).context("no citizen media token")?,
    })
}

/// Answers the relay's `offer` (a parsed server message) with the engine's peer `conn` and
/// sends the answer on `sink`.
pub async fn answer_offer(
    engine: &EngineHandle,
    sink: &mut WsSink,
    conn: usize,
    participant: u32,
    message: &Value,
) -> Result<()> {
    let sdp = message["sdp"]
        .as_str()
        .context("offer without sdp")?
        .to_owned();
    let revision = message["revision"]
        .as_u64()
        .context("offer without revision")?;
    let answer = engine
        .ask(|reply| Command::Answer {
            conn,
            participant,
            publishes: true,
            offer: sdp,
            reply,
        })
        .await??;
    let answer = ClientMessage::Answer {
        sdp: answer,
        revision: u32::try_from(revision).context("revision")?,
    };
    sink.send(Message::text(serde_json::to_string(&answer)?))
        .await?;
    Ok(())
}

/// A participant's signalling WebSocket to `ws_url`, its `join` (audio and video) sent, and
/// the engine told the socket is open.
pub async fn open_and_join(
    ws_url: &str,
    engine: &EngineHandle,
    participant: u32,
    token: String,
) -> Result<(WsSink, WsStream)> {
    // Without Nagle, as a browser's WebSocket: a small message (an `admit` right after the
    // `join`) must not wait for the server's delayed ACK of the one before.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true)
        .await
        .with_context(|| format!("connecting {ws_url}"))?;
    engine.send(Command::WsOpen { participant }).await?;
    let (mut sink, stream) = ws.split();
    let join = ClientMessage::Join {
        protocol: 1,
        token,
        publish: Publish {
            audio: true,
            video: true,
        },
        room: None,
    };
    sink.send(Message::text(serde_json::to_string(&join)?))
        .await?;
    Ok((sink, stream))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
/// The sending half of a participant's WebSocket.
pub type WsSink = futures_util::stream::SplitSink<Ws, Message>;
/// The receiving half of a participant's WebSocket.
pub type WsStream = futures_util::stream::SplitStream<Ws>;

/// Runs one participant's signalling until `stop` turns true: joins with `token` and answers
/// offers on engine connection `conn`.
pub async fn participant(
    ws_url: String,
    token: String,
    participant: u32,
    conn: usize,
    engine: EngineHandle,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let (mut sink, mut stream) = open_and_join(&ws_url, &engine, participant, token).await?;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = stop.wait_for(|s| *s) => {
                let leave = serde_json::to_string(&ClientMessage::Leave)?;
                let _ = sink.send(Message::text(leave)).await;
                let _ = sink.close().await;
                return Ok(());
            }
        };
        let Some(frame) = frame else {
            bail!("participant {participant}: the server closed the WebSocket");
        };
        let text = match frame.context("WebSocket")? {
            Message::Text(text) => text,
            Message::Close(close) => {
                bail!("participant {participant}: closed by the server: {close:?}")
            }
            _ => continue,
        };
        // Parsed loosely: message types added to the protocol later are ignored, not fatal.
        let message: Value = serde_json::from_str(text.as_str()).context("server message")?;
        match message["type"].as_str() {
            Some("offer") => {
                mark(&engine, participant, JoinMark::OfferReceived).await?;
                answer_offer(&engine, &mut sink, conn, participant, &message).await?;
                mark(&engine, participant, JoinMark::AnswerSent).await?;
            }
            // The staff participant (the host) lets the citizen in from the waiting room.
            Some("participant_waiting") => {
                admit(&mut sink, &message["participant"]["id"]).await?;
            }
            Some("joined") => {
                mark(&engine, participant, JoinMark::Joined).await?;
                for waiting in message["waiting"].as_array().into_iter().flatten() {
                    admit(&mut sink, &waiting["id"]).await?;
                }
            }
            Some("error") if message["fatal"].as_bool() == Some(true) => {
                bail!("participant {participant}: fatal error {message}");
            }
            Some("ended") => bail!("participant {participant}: ended {message}"),
            _ => {}
        }
    }
}

/// Tells the engine `participant` reached `mark` now.
async fn mark(engine: &EngineHandle, participant: u32, mark: JoinMark) -> Result<()> {
    let at = std::time::Instant::now();
    engine
        .send(Command::Mark {
            participant,
            mark,
            at,
        })
        .await
}

/// Sends `admit` for the waiting participant whose id is `id`.
pub(crate) async fn admit<S>(sink: &mut S, id: &Value) -> Result<()>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let id: uuid::Uuid = id
        .as_str()
        .context("waiting participant without id")?
        .parse()
        .context("waiting participant id")?;
    let admit = ClientMessage::Admit {
        participant_id: skaerm_sfu::ids::ParticipantId(id),
    };
    sink.send(Message::text(serde_json::to_string(&admit)?))
        .await?;
    Ok(())
}

//! Attacks on the relay and its signalling from a participant or an unauthenticated client:
//! floods of candidates and mutes, a join flood that never reads, too many WebSockets from
//! one address, forged ICE checks. Each must cost the attacker its own session at most, never
//! another participant's.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, Municipality, PASSWORD, TestServer};
use skaerm_scheduling::Visit;
use skaerm_server::ids::IdInto;
use skaerm_sfu::protocol::{ClientCandidate, ClientMessage, Publish, ServerMessage};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const BOTH: Publish = Publish {
    audio: true,
    video: true,
};

fn joined(outcome: JoinOutcome) -> Result<Participant> {
    match outcome {
        JoinOutcome::Joined(p) => Ok(*p),
        JoinOutcome::Refused { code, close } => bail!("join refused: {code} (close {close:?})"),
    }
}

/// A visit in progress: the staff member (host) and the citizen (admitted), media connected.
async fn call(
    server: &TestServer,
    m: &Municipality,
    visit: &Visit,
) -> Result<(Participant, Participant)> {
    let room = Some(visit.id.id_into());
    let staff_tab = Browser::new(&server.url())?;
    staff_tab.login(&m.username, PASSWORD).await?;
    let staff_token = staff_tab.start_visit(visit).await?;
    let citizen_token = staff_tab.citizen_token(visit).await?;
    let staff = joined(Participant::join(&server.ws_url(), &staff_token, BOTH, room).await?)?;
    let citizen = joined(Participant::join(&server.ws_url(), &citizen_token, BOTH, room).await?)?;
    staff.let_in(&citizen).await?;
    staff.wait_connected(Duration::from_secs(10)).await?;
    citizen.wait_connected(Duration::from_secs(10)).await?;
    Ok((staff, citizen))
}

fn audio(tag: &str, i: usize) -> Bytes {
    let mut text = format!("{tag}-{i:05}-").into_bytes();
    text.resize(160, b'.');
    Bytes::from(text)
}

/// Sends `count` audio packets from `from` 20 ms apart; returns how many of them reached `to`.
async fn audio_through(
    from: &Participant,
    to: &Participant,
    tag: &str,
    count: usize,
) -> Result<usize> {
    for i in 0..count {
        from.send_rtp(RtpCodecKind::Audio, audio(tag, i)).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<Bytes> = (0..count).map(|i| audio(tag, i)).collect();
    Ok(to
        .received()
        .iter()
        .filter(|r| r.from == from.id && sent.contains(&r.payload))
        .count())
}

/// The value of one series in the server's `/metrics` (0 when absent).
async fn metric(server: &TestServer, series: &str) -> Result<f64> {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

/// Which media worker a room is pinned to (the relay pins by the room id; the test server
/// runs two workers).
fn worker_of(visit: &Visit) -> u128 {
    visit.id.0.as_u128() % 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_candidate_flood_from_a_participant_does_not_stall_another_visit_on_the_same_worker()
-> Result<()> {
    let server = TestServer::start().await?;
    // The victim's visit, and the attacker's visit of another municipality on the same worker.
    let victim_m = server.municipality("Offerkommune").await?;
    let victim_visit = server.visit_soon(&victim_m).await?;
    let mut attacker = None;
    for i in 0..20 {
        let m = server.municipality(&format!("Angriberkommune {i}")).await?;
        let visit = server.visit_soon(&m).await?;
        if worker_of(&visit) == worker_of(&victim_visit) {
            attacker = Some((m, visit));
            break;
        }
    }
    let (attacker_m, attacker_visit) = attacker.context("no visit on the victim's worker")?;
    let (staff, citizen) = call(&server, &victim_m, &victim_visit).await?;
    let (_attacker_staff, mallory) = call(&server, &attacker_m, &attacker_visit).await?;
    // Media flows in the victim's visit before the attack.
    assert!(audio_through(&staff, &citizen, "before", 20).await? >= 18);

    // Mallory floods candidates as fast as its socket takes them, while the victim talks.
    let flood = async {
        for i in 0..50_000u32 {
            let candidate = ClientCandidate {
                candidate: format!(
                    "candidate:{i} 1 udp 2122260223 10.{}.{}.{} {} typ host",
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff,
                    1024 + i % 60_000
                ),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            };
            if mallory
                .send(ClientMessage::Candidate { candidate })
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let started = Instant::now();
    let (_, during) = tokio::join!(flood, audio_through(&staff, &citizen, "during", 100));
    let during = during?;
    assert!(
        during >= 90,
        "only {during} of 100 packets crossed the victim's visit during the flood ({:?})",
        started.elapsed()
    );
    assert!(audio_through(&staff, &citizen, "after", 20).await? >= 18);
    // Mallory was told it is rate limited (once), and the drops are counted.
    mallory
        .wait_for(
            Duration::from_secs(5),
            |m| matches!(m, ServerMessage::Error { code, .. } if code.as_str() == "rate_limited"),
        )
        .await?;
    let dropped = metric(
        &server,
        "skaerm_signalling_rate_limited_total{type=\"candidate\"}",
    )
    .await?;
    assert!(
        dropped > 40_000.0,
        "{dropped} candidates counted as rate limited"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mutes_from_a_guest_leave_the_host_connected_with_the_final_state() -> Result<()>
{
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let (staff, citizen) = call(&server, &m, &visit).await?;

    for i in 0..1000 {
        citizen
            .send(ClientMessage::Mute {
                audio: i % 2 == 1,
                video: i % 3 == 0,
            })
            .await?;
    }
    // The last one: audio muted (999 is odd), video muted (999 % 3 == 0).
    let citizen_id = citizen.id.clone();
    let final_state = |m: &ServerMessage| {
        matches!(m, ServerMessage::ParticipantUpdated { participant }
            if participant.id.to_string() == citizen_id
                && participant.muted.audio && participant.muted.video)
    };
    staff.wait_for(Duration::from_secs(5), final_state).await?;
    // The host is still there (not closed as "too slow") and saw few updates, the final one last.
    assert!(
        staff.wait_closed(Duration::from_secs(1)).await.is_err(),
        "the host's session was closed"
    );
    let updates: Vec<ServerMessage> = staff
        .messages()
        .into_iter()
        .filter(|m| matches!(m, ServerMessage::ParticipantUpdated { .. }))
        .collect();
    assert!(
        updates.len() <= 30,
        "{} updates queued for the host",
        updates.len()
    );
    assert!(updates.last().is_some_and(final_state));
    // And the call works.
    assert!(audio_through(&citizen, &staff, "after-mutes", 20).await? >= 18);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unjoined_flood_that_never_reads_is_closed_by_the_join_deadline() -> Result<()> {
    let server = TestServer::start().await?;
    let addr = server.url().trim_start_matches("http://").to_owned();
    // A client with a small receive buffer that never reads its socket.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(addr.parse()?).await?;
    let (ws, _) = tokio_tungstenite::client_async(
        server.ws_url(),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await?;
    let (mut sink, _never_read) = ws.split();
    // Each message draws an error quoting its type: answers as big as the flood.
    let message = serde_json::json!({"type": "t".repeat(190)}).to_string();
    let started = Instant::now();
    let flood = async {
        loop {
            if sink.send(Message::text(message.clone())).await.is_err() {
                return started.elapsed();
            }
        }
    };
    let Ok(closed_after) = tokio::time::timeout(Duration::from_secs(20), flood).await else {
        bail!("the flood was still accepted after 20 s (join timeout 10 s)");
    };
    assert!(
        closed_after < Duration::from_secs(12),
        "closed only after {closed_after:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_over_the_per_address_cap_is_refused_and_counted() -> Result<()> {
    let server = TestServer::start_with(&["--max-websockets-per-address", "3"]).await?;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio_tungstenite::connect_async(server.ws_url()).await?.0);
    }
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        Err(other) => bail!("refused, but not with HTTP 429: {other}"),
        Ok(_) => bail!("the fourth WebSocket from one address was accepted"),
    }
    assert_eq!(
        metric(
            &server,
            "skaerm_websockets_refused_total{reason=\"per_address\"}"
        )
        .await?,
        1.0
    );
    // A place comes back when a WebSocket closes.
    let mut first = held.remove(0);
    first.close(None).await?;
    while first.next().await.is_some() {}
    drop(first);
    let mut reopened = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(server.ws_url())
            .await
            .is_ok()
        {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reopened,
        "the place of a closed WebSocket was not given back"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ice_checks_against_a_live_participant_are_counted_not_logged_per_packet()
-> Result<()> {
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::message::{BINDING_REQUEST, Message as Stun, Setter, TransactionId};
    use rtc::stun::textattrs::Username;

    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let (staff, citizen) = call(&server, &m, &visit).await?;
    // The citizen's live ufrag and the worker's port, from its last offer.
    let offer = citizen
        .messages()
        .into_iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::Offer { sdp, .. } => Some(sdp),
            _ => None,
        })
        .context("no offer")?;
    let ufrag = offer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .context("no ufrag")?
        .to_owned();
    let port: u16 = offer
        .lines()
        .find_map(|l| l.strip_prefix("a=candidate:"))
        .and_then(|c| c.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .context("no candidate port")?;
    let before = metric(
        &server,
        "skaerm_packets_dropped_total{reason=\"stun_bad_integrity\"}",
    )
    .await?;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for _ in 0..200 {
        let mut check = Stun::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, format!("{ufrag}:forged"))),
        ];
        check.build(&setters)?;
        udp.send_to(&check.raw, ("127.0.0.1", port)).await?;
    }
    let mut counted = 0.0;
    for _ in 0..50 {
        counted = metric(
            &server,
            "skaerm_packets_dropped_total{reason=\"stun_bad_integrity\"}",
        )
        .await?
            - before;
        if counted >= 200.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 200.0, "every forged check counted");
    // The call is untouched.
    assert!(audio_through(&staff, &citizen, "after-forgery", 20).await? >= 18);
    Ok(())
}

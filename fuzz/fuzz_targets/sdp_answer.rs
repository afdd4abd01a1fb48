//! A client's answer to the relay's offer, fuzzed: either any text, or the real client's
//! answer edited line by line (lines dropped, repeated, replaced or appended, attribute values
//! swapped) so the input stays close enough to SDP to reach the negotiation. After the answer,
//! a valid STUN check and time passing exercise whatever the answer set up.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use skaerm_fuzz::relay::{Relay, client_answer};
use std::time::Duration;

#[derive(Debug, Arbitrary)]
enum Edit {
    Drop(u16),
    Repeat(u16),
    Replace(u16, String),
    /// Keeps the line's `a=name:` (or `x=`) and replaces the value.
    Value(u16, String),
    Insert(u16, String),
}

#[derive(Debug, Arbitrary)]
enum Answer {
    Text(String),
    Edited(Vec<Edit>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    answer: Answer,
    revision: Option<u32>,
    /// Then the real answer too (a second answer to the same or a later offer).
    then_valid: bool,
    transaction: [u8; 12],
}

fn edited(valid: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = valid.lines().map(str::to_owned).collect();
    for edit in edits.iter().take(16) {
        let at = |i: u16, len: usize| usize::from(i) % len.max(1);
        match edit {
            Edit::Drop(i) if !lines.is_empty() => {
                let i = at(*i, lines.len());
                lines.remove(i);
            }
            Edit::Repeat(i) if !lines.is_empty() => {
                let i = at(*i, lines.len());
                lines.insert(i, lines[i].clone());
            }
            Edit::Replace(i, text) if !lines.is_empty() => {
                let i = at(*i, lines.len());
                lines[i] = text.clone();
            }
            Edit::Value(i, value) if !lines.is_empty() => {
                let i = at(*i, lines.len());
                let keep = lines[i]
                    .find(':')
                    .or_else(|| lines[i].find('='))
                    .map_or(0, |p| p + 1);
                lines[i] = format!("{}{value}", &lines[i][..keep]);
            }
            Edit::Insert(i, text) => {
                let i = at(*i, lines.len() + 1);
                lines.insert(i.min(lines.len()), text.clone());
            }
            _ => {}
        }
    }
    let mut sdp = lines.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

fuzz_target!(|input: Input| {
    let mut relay = Relay::new(2);
    let Some((offer, _)) = relay.peers[0].offer.clone() else {
        return;
    };
    let valid = client_answer(&offer);
    // The second participant answers properly: the fuzzed answer meets a room with media.
    relay.answer_all_but(Some(0));
    let sdp = match &input.answer {
        Answer::Text(text) => text.clone(),
        Answer::Edited(edits) => edited(valid, edits),
    };
    relay.answer(0, sdp, input.revision);
    let from = relay.peers[0].addr;
    relay.check(0, from, input.transaction, true, false, &[]);
    relay.advance(Duration::from_millis(1500));
    if input.then_valid {
        relay.answer(0, valid.to_owned(), None);
        relay.check(0, from, input.transaction, true, false, &[]);
        relay.advance(Duration::from_millis(1500));
    }
});

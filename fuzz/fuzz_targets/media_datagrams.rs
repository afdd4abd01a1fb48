//! Datagrams into the media core (`MediaCore::handle_datagrams`, the worker's per-batch entry)
//! with two participants joined and answered: raw bytes, STUN checks carrying the relay's real
//! credentials (so DTLS from a bound address reaches the handshake), DTLS records, RTP and RTCP
//! headers around fuzzed bodies, from the peers' addresses and from strangers, mixed with the
//! signalling commands a participant can send and with time passing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skaerm_fuzz::input::{Step, run};
use skaerm_fuzz::relay::Relay;

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    /// Leave the second participant's offer unanswered (its checks are held as early checks).
    second_unanswered: bool,
    steps: Vec<Step>,
}

fuzz_target!(|input: Input| {
    let mut relay = Relay::new(2);
    relay.answer_all_but(input.second_unanswered.then_some(1));
    run(&mut relay, &input.steps);
});

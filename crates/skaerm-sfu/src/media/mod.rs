//! The media plane: everything that touches RTP, as sans-I/O logic.
//!
//! [`core::MediaCore`] owns the peer connections and rooms of one worker; the other modules are
//! its parts: datagram routing ([`demux`]), the relay's own check of ICE checks
//! ([`stun_check`]), the bounded set of a client's trickled candidates ([`candidates`]), ICE checks that beat the answer
//! ([`early_checks`]), building `rtc` connections ([`engine`]), which
//! inbound RTCP the core sees ([`feedback`]), subscribers' bandwidth and the audio-only
//! fallback ([`bandwidth`]), the waiting room ([`lobby`]), offer/answer bookkeeping ([`negotiation`]), how often a client may restart ICE
//! ([`restart`]), per-participant state
//! ([`peer`]), packet rewriting for forwarding ([`rewrite`]), switching a stream's source on
//! keyframes with continuous numbering ([`simulcast`]), drop/traffic counters ([`counters`]) and the
//! once-per-interval log line about hostile drops ([`drop_report`]),
//! what RTCP reports say about a connection ([`rtcp_reports`]), the relay's one interceptor that
//! reads, gates and marks what passes ([`tap`]) and the per-participant quality snapshot for
//! operations ([`quality`]).

pub mod bandwidth;
pub(crate) mod candidates;
pub mod core;
pub mod counters;
pub(crate) mod demux;
pub mod drop_report;
pub(crate) mod early_checks;
pub(crate) mod engine;
pub(crate) mod feedback;
pub mod lobby;
pub(crate) mod negotiation;
pub(crate) mod peer;
pub mod quality;
pub(crate) mod restart;
pub(crate) mod rewrite;
pub(crate) mod rtcp_reports;
pub(crate) mod simulcast;
pub(crate) mod stun_check;
pub(crate) mod tap;

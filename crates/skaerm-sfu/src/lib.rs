//! Skærm's media relay and its signalling.
//!
//! - [`media`]: the sans-I/O media plane — one [`media::core::MediaCore`] per worker owns the
//!   `rtc` peer connections of its rooms and forwards RTP between them;
//! - [`worker`]: the I/O edge of a media worker — a thread with its own UDP socket, driving
//!   its core; `gso` groups its outgoing datagrams into GSO sends;
//! - [`signalling`]: the WebSocket endpoint speaking [`protocol`] (see `PROTOCOL.md`), with
//!   its per-session message budgets ([`signal_limits`]) and WebSocket caps ([`ws_caps`]);
//! - [`grant`]: how the application decides who may join which room;
//! - [`metrics`]: Prometheus metrics of the relay;
//! - [`join_failures`]: failed joins by reason, for metrics and the ops view;
//! - [`Sfu`]: the handle the server holds to start all of it.

pub mod chat;
pub mod config;
pub mod grant;
mod gso;
pub mod ids;
pub mod join_failures;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod signal_limits;
pub mod signalling;
pub mod worker;
pub mod ws_caps;

mod sfu;
pub use sfu::{OpsView, Sfu, SfuError, WorkerQuality};

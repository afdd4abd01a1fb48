//! Test harness for Skærm's end-to-end tests: run the real server in-process on ephemeral
//! ports, drive its HTTP API like the web client does, and join its visits as synthetic
//! participants with real WebRTC peers; a real OpenID Provider for single sign-on; the setup
//! most tests share.

pub mod oidc;
pub mod participant;
pub mod server;
pub mod setup;

//! Test harness for Skærm's end-to-end tests: run the real server in-process on ephemeral
//! ports, and join its visits as synthetic participants with real WebRTC peers.

pub mod participant;

//! What the fuzz targets share: a relay core with joined peers (`relay`), a STUN binding
//! request writer with real short-term integrity (`stun`) so fuzzed input gets past the ICE
//! check and reaches DTLS, and the fuzzed input shapes (`input`).

pub mod input;
pub mod relay;
pub mod stun;

//! Janus mode (Debian's `janus`, VideoRoom plugin): not wired yet.

use crate::engine::EngineHandle;
use crate::target::Target;
use anyhow::{Result, bail};
use std::path::Path;
use tokio::sync::watch;

/// Starts Janus.
pub async fn start(_dir: &Path, _cpu: Option<usize>) -> Result<Target> {
    bail!("Janus mode is not implemented yet")
}

/// One participant through Janus's API.
pub async fn participant(
    _base: String,
    _visit: u32,
    _participant: u32,
    _engine: EngineHandle,
    _stop: watch::Receiver<bool>,
) -> Result<()> {
    bail!("Janus mode is not implemented yet")
}

//! The ticker: appends a tick to the log when a timer or a schedule is due, so time reaches the state
//! through the log like every other input (and a replay fires the same timers at the same times).
//!
//! It polls the applier's "next due" time against the injected clock every `tick_interval`. Tests turn
//! it off and call [`crate::Engine::tick`] after moving a manual clock, so the order of ticks and
//! events is theirs to choose.

use crate::clock::Clock;
use crate::ingestor::{EngineError, Ingestor};
use crate::progress::Progress;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn spawn(
    interval: Duration,
    ingestor: Ingestor,
    clock: Arc<dyn Clock>,
    progress: Arc<Progress>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cairn-tick".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            if progress.is_log_closed() {
                return;
            }
            let now = clock.now();
            if now.timestamp_millis() < progress.next_due_ms() {
                continue;
            }
            match ingestor.submit_tick_blocking(now) {
                Ok(_) | Err(EngineError::Overloaded) => {}
                Err(EngineError::ShuttingDown) => return,
                Err(error) => tracing::warn!(%error, "cannot append a tick; will retry"),
            }
        })
}

//! A named background thread that runs until its handle is dropped, at background CPU priority
//! ([`cairn_storage::background`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running background thread; dropping it asks the thread to stop, wakes it and waits for it.
pub(crate) struct BackgroundThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundThread {
    /// Runs `body` on a thread called `name`; `body` returns once the flag it is given is set, and
    /// should sleep with `std::thread::park_timeout` so that dropping the handle wakes it.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<BackgroundThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                cairn_storage::background::lower_cpu_priority();
                body(&stopping)
            })?;
        Ok(BackgroundThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

//! The wall clock providers read (webhook signature timestamps, OAuth token expiry, `Retry-After`
//! dates), injected so tests control it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64)
    }
}

/// A fixed clock (tests, replays).
#[derive(Debug, Clone, Copy)]
pub struct FixedWallClock(pub i64);

impl WallClock for FixedWallClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

//! The clocks a driver runs on: the wall clock in production, simulated time
//! in the demo, so the same driver core writes `emitted_at` and the daily
//! cut-offs from whichever time the run lives in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the epoch, by the wall clock.
pub fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A source of "now", in milliseconds since the epoch.
pub trait Clock {
    /// The current time of the run.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        wall_clock_ms()
    }
}

/// A clock that moves only when its driver moves it (the demo's simulated
/// time). Clones share the same time, so a driver can keep a handle while
/// the core reads it.
#[derive(Debug, Clone, Default)]
pub struct SimulatedClock(Arc<AtomicI64>);

impl SimulatedClock {
    /// A clock standing at `ms`.
    pub fn at(ms: i64) -> Self {
        SimulatedClock(Arc::new(AtomicI64::new(ms)))
    }

    /// Moves the clock to `ms` (simulated time may only be set, never run).
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl Clock for SimulatedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_shows_the_time_its_driver_set_to_every_clone() {
        let clock = SimulatedClock::at(5);
        let seen_by_core = clock.clone();
        assert_eq!(seen_by_core.now_ms(), 5);
        clock.set(86_400_000);
        assert_eq!(seen_by_core.now_ms(), 86_400_000);
    }
}

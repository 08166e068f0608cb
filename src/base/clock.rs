//! The clocks a driver runs on: the wall clock in production, simulated time
//! in the demo, so the same driver core writes `emitted_at` and the daily
//! cut-offs from whichever time the run lives in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::time::ClockTime;

/// Milliseconds since the epoch, by the wall clock.
pub fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A source of "now": the driver's clock (see [`crate::base::time`]).
pub trait Clock {
    /// The current time of the run.
    fn now(&self) -> ClockTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> ClockTime {
        ClockTime::from_ms(wall_clock_ms())
    }
}

/// A clock that moves only when its driver moves it (the demo's simulated
/// time). Clones share the same time, so a driver can keep a handle while
/// the core reads it.
#[derive(Debug, Clone, Default)]
pub struct SimulatedClock(Arc<AtomicI64>);

impl SimulatedClock {
    /// A clock standing at `t`.
    pub fn at(t: ClockTime) -> Self {
        SimulatedClock(Arc::new(AtomicI64::new(t.ms())))
    }

    /// Moves the clock to `t` (simulated time may only be set, never run).
    pub fn set(&self, t: ClockTime) {
        self.0.store(t.ms(), Ordering::Relaxed);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> ClockTime {
        ClockTime::from_ms(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_shows_the_time_its_driver_set_to_every_clone() {
        let clock = SimulatedClock::at(ClockTime::from_ms(5));
        let seen_by_core = clock.clone();
        assert_eq!(seen_by_core.now().ms(), 5);
        clock.set(ClockTime::from_ms(86_400_000));
        assert_eq!(seen_by_core.now().ms(), 86_400_000);
    }
}

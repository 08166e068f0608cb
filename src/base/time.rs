//! The two times sagak lives in, as types the compiler tells apart.
//!
//! **Event time** ([`EventTime`]) is when an agency observed something (a
//! signal's `observed_at`): windows, watermarks, lateness and eviction run
//! on it, so a replay of last year decides as last year did. **The
//! driver's clock** ([`ClockTime`]) is the time the run lives in: the wall
//! clock under `sagak run`, simulated time in the demo and a replay. An
//! alert's `emitted_at`, due times, cooldowns against outcomes, escalations
//! and the daily cut-offs are on it. Mixing them was the classic bug of a
//! catch-up (a backlog's old signals judged against today's clock), so a
//! function taking one does not take the other; both are milliseconds
//! since the Unix epoch underneath, and [`crate::base::civil::LocalClock`]
//! reads either as an office's local day.
//!
//! Inside a stage, times sit in Arrow columns and compact records as plain
//! `i64` (the hot path works on columns); they become typed where they
//! cross a stage's edge.

/// An instant of event time, ms since the epoch (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(i64);

/// An instant on the driver's clock, ms since the epoch (see the module
/// docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(i64);

/// Either time, as a local clock reads it.
pub trait Instant: Copy {
    /// Milliseconds since the epoch.
    fn ms(self) -> i64;
}

macro_rules! instant {
    ($t:ident) => {
        impl $t {
            /// The instant `ms` milliseconds after the epoch.
            pub const fn from_ms(ms: i64) -> Self {
                $t(ms)
            }

            /// Milliseconds since the epoch.
            pub const fn ms(self) -> i64 {
                self.0
            }

            /// `ms` milliseconds later (earlier when negative), saturating.
            pub const fn plus(self, ms: i64) -> Self {
                $t(self.0.saturating_add(ms))
            }

            /// `ms` milliseconds earlier, saturating.
            pub const fn minus(self, ms: i64) -> Self {
                $t(self.0.saturating_sub(ms))
            }

            /// Milliseconds from `earlier` to this instant.
            pub const fn since(self, earlier: Self) -> i64 {
                self.0.saturating_sub(earlier.0)
            }
        }

        impl Instant for $t {
            fn ms(self) -> i64 {
                self.0
            }
        }
    };
}

instant!(EventTime);
instant!(ClockTime);

impl EventTime {
    /// The driver's clock read as event time, in the two places that must:
    /// a daily cut-off (a list made at clock time `t` counts the signals
    /// observed before `t`) and a quiet feed's watermark (a feed that sends
    /// nothing has no event time of its own to move it).
    pub const fn of_clock(t: ClockTime) -> EventTime {
        EventTime(t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_move_and_measure_without_overflow() {
        let t = EventTime::from_ms(1_000);
        assert_eq!(t.plus(500).ms(), 1_500);
        assert_eq!(t.minus(2_000).ms(), -1_000);
        assert_eq!(t.plus(500).since(t), 500);
        assert_eq!(ClockTime::from_ms(i64::MAX).plus(1).ms(), i64::MAX);
    }
}

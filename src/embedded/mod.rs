//! Sources and sinks that need no broker, for the drivers that run without
//! one (`sagak demo`, `sagak replay`): the generator's messages in
//! simulated time, signal files, the dong offices simulated as a source of
//! outcomes, and NDJSON files as the sink of alerts, escalations and dead
//! letters.

pub mod files;
pub mod inbox;
pub mod offices;
pub(crate) mod sink;
pub(crate) mod source;

use crate::base::message::InputMessage;
use crate::base::time::ClockTime;

/// A source whose messages come in time order: the replay loop takes what
/// arrives before each step's end, then moves its clock on.
pub(crate) trait TimedSource {
    /// When the next message arrives (on the driver's clock), if any is
    /// left.
    fn next_arrival(&self) -> Option<ClockTime>;

    /// The next message if it arrives before `until`.
    fn next_before(&mut self, until: ClockTime) -> Option<InputMessage>;
}

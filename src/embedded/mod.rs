//! Sources and sinks that need no broker, for the drivers that run without
//! one (`sagak demo`): the generator's messages as a source in simulated
//! time, the dong offices simulated as a source of outcomes, and NDJSON
//! files as the sink of alerts, escalations and dead letters.

pub mod offices;
pub mod sink;
pub mod source;

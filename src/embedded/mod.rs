//! Sources and sinks that need no broker, for the drivers that run without
//! one (`sagak demo`): the generator's messages as a source in simulated
//! time, and NDJSON files as the sink of alerts and dead letters.

pub mod sink;
pub mod source;

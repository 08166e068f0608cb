//! What every part of sagak shares, low in the tree so nothing above it
//! forms a cycle: the raw input message, the clock, the lanes, stable hashes,
//! compact household-keyed records, calendar arithmetic and identifier rules.

pub mod civil;
pub mod clock;
pub mod files;
pub mod hash;
pub(crate) mod ids;
pub mod keyed;
pub(crate) mod lanes;
pub(crate) mod listener;
pub mod message;
pub mod time;

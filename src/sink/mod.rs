//! Where alerts and rejects go.

pub mod kafka;

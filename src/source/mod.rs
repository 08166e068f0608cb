//! Where input comes from.

pub mod kafka;

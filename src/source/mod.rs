//! Where input comes from.

pub mod kafka;
pub mod ownership;

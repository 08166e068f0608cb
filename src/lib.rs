//! sagak finds households in crisis while there is still time to help.
//!
//! Agencies publish crisis signals (utility arrears and cut-offs, job loss,
//! health-insurance premium arrears) to Kafka. sagak decodes and validates
//! them into Arrow record batches, keeps the live signals of every household
//! in an event-time window, evaluates the window and the score with
//! DataFusion SQL from `pipelines/`, and sends prioritized, explained alerts
//! to the queue of the dong welfare office that serves each household.
//!
//! The data path, one module per stage:
//!
//! ```text
//! source::kafka -> decode -> window -> score -> alert -> sink::kafka
//!                    |         |
//!                    +---------+--> dead-letter topic (reject)
//! ```
//!
//! [`engine::Engine`] wires the stages for one micro-batch and knows nothing
//! about Kafka; [`run`] drives it from Kafka with at-least-once delivery and
//! [`checkpoint`] makes its state survive a restart.

pub mod alert;
pub mod checkpoint;
pub mod civil;
pub mod config;
pub mod decode;
pub mod demo;
pub mod engine;
pub mod generate;
pub mod hash;
pub mod keyed;
pub mod lists;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod run;
pub mod score;
pub mod signal;
pub mod sink;
pub mod source;
pub mod window;

#[cfg(test)]
mod testkit;

//! sagak finds households in crisis while there is still time to help.
//!
//! Agencies publish crisis signals (utility arrears and cut-offs, job loss,
//! health-insurance premium arrears) to Kafka. sagak decodes and validates
//! them into Arrow record batches, keeps the live signals of every household
//! in an event-time window, evaluates the window and the score with
//! DataFusion SQL from `pipelines/`, and sends prioritized, explained alerts
//! to the queue of the dong welfare office that serves each household.
//! The offices' outcomes come back (`dong-office.outcomes`) and change what
//! is sent next; what nobody acts on goes to the city team.
//!
//! The data path, one folder per part:
//!
//! ```text
//! kafka::source -> stages::decode -> stages::window -> stages::score -> stages::alert -> kafka::sink
//! (embedded::*)          |                 |                      stages::case ->+  (embedded::sink)
//!                        +-----------------+--> dead letters (decode::Reject)   +-> escalations
//! ```
//!
//! * [`stages`]: the stages and the contract their state follows
//!   ([`stages::StatefulStage`]); they know nothing of I/O. The case stage
//!   ([`stages::case`]) keeps what the offices did about each household.
//! * [`engine`]: wires the stages for one micro-batch, lane by lane.
//! * [`drivers`]: the loops that feed the engine: [`drivers::kafka`]
//!   (`sagak run`), [`drivers::demo`] (`sagak demo`), [`drivers::replay`]
//!   (`sagak replay`, and [`drivers::compare`] on it), all on one
//!   [`drivers::DriverCore`].
//! * [`kafka`] and [`embedded`]: where messages come from and go to (Kafka;
//!   the generator, files, the simulated offices, NDJSON).
//! * [`checkpoint`]: snapshots that carry the state over a restart;
//!   [`lists`]: the daily lists; [`ops`]: metrics, health and the live
//!   state the pages read; [`web`]: the offices' and the city's pages,
//!   accounts and the audit log; [`retention`]: deleting what is past its
//!   time.
//! * [`definition`]: the pipeline an operator edits (`pipelines/<name>/`);
//!   [`config`]: the settings of one deployment (`sagak.toml`).
//! * [`base`]: what all of them share.

pub mod base;
pub mod checkpoint;
pub mod config;
pub mod definition;
pub mod drivers;
pub mod embedded;
pub mod engine;
pub mod generate;
pub mod kafka;
pub mod lists;
pub mod metrics;
pub mod ops;
pub mod retention;
pub mod stages;
pub mod store;
pub mod web;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

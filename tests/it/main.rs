//! Integration tests: one binary, so linking happens once.
//!
//! They start a real Kafka-protocol broker (tansu, in-process, listening on
//! loopback TCP) and talk to it with rdkafka, as production clients do.

mod cli;
mod demo;
mod deploy;
mod faults;
mod front;
mod house;
mod instances;
mod kafka_pipeline;
mod meeting;
mod open_work;
mod ops;
mod outcomes;
mod replay;
mod storage;
mod support;
mod tls;
mod web;

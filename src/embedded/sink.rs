//! NDJSON files as the sink of a run without a broker: `alerts.ndjson`
//! holds every alert as it would be sent to `dong-office.alerts`,
//! `escalations.ndjson` every escalation as it would be sent to
//! `city.escalations`, `dead-letters.ndjson` every rejected message with
//! its class and reason.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::base::message::InputMessage;
use crate::engine::{BatchResult, Outputs};
use crate::stages::decode::RejectClass;

/// Why an NDJSON output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {error}. Check the output folder (`--out`) and the free disk space")]
pub struct SinkError {
    /// The file.
    pub(crate) path: PathBuf,
    /// The I/O error.
    pub(crate) error: std::io::Error,
}

/// Alerts and dead letters as NDJSON files in one folder.
pub(crate) struct NdjsonSink {
    alerts: BufWriter<fs::File>,
    alerts_path: PathBuf,
    dead_letters: BufWriter<fs::File>,
    dead_letters_path: PathBuf,
    escalations: BufWriter<fs::File>,
    escalations_path: PathBuf,
}

impl NdjsonSink {
    /// Creates (truncating) `alerts.ndjson`, `escalations.ndjson` and
    /// `dead-letters.ndjson` in `dir`.
    pub(crate) fn create(dir: &Path) -> Result<Self, SinkError> {
        let open = |name: &str| {
            let path = dir.join(name);
            crate::base::files::create_private(&path)
                .map(|f| (BufWriter::new(f), path.clone()))
                .map_err(|error| SinkError { path, error })
        };
        let (alerts, alerts_path) = open("alerts.ndjson")?;
        let (dead_letters, dead_letters_path) = open("dead-letters.ndjson")?;
        let (escalations, escalations_path) = open("escalations.ndjson")?;
        Ok(NdjsonSink {
            alerts,
            alerts_path,
            dead_letters,
            dead_letters_path,
            escalations,
            escalations_path,
        })
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) -> Result<(), SinkError> {
        self.alerts.flush().map_err(|error| SinkError {
            path: self.alerts_path.clone(),
            error,
        })?;
        self.escalations.flush().map_err(|error| SinkError {
            path: self.escalations_path.clone(),
            error,
        })?;
        self.dead_letters.flush().map_err(|error| SinkError {
            path: self.dead_letters_path.clone(),
            error,
        })
    }

    fn write(&mut self, result: &BatchResult, batch: &[InputMessage]) -> std::io::Result<()> {
        for (i, reject) in &result.rejects {
            let Some(m) = batch.get(*i) else { continue };
            // the message itself stays out: an RRN in it must never be stored
            let mut line = serde_json::json!({
                "class": reject.class.as_str(),
                "reason": reject.reason,
                "topic": &*m.topic,
                "offset": m.offset,
                "redacted": reject.class == RejectClass::ResidentRegistrationNumber,
            });
            // a replayed file's line, as the headers sagak.source.file and
            // sagak.source.line name it
            if let Some(file) = &m.source_file {
                line["sagak.source.file"] = serde_json::Value::from(&**file);
                line["sagak.source.line"] = serde_json::Value::from(m.offset);
            }
            writeln!(self.dead_letters, "{line}")?;
        }
        for a in &result.alerts {
            serde_json::to_writer(&mut self.alerts, a)?;
            writeln!(self.alerts)?;
        }
        for e in &result.escalations {
            serde_json::to_writer(&mut self.escalations, e)?;
            writeln!(self.escalations)?;
        }
        Ok(())
    }
}

impl Outputs for NdjsonSink {
    type Error = SinkError;

    async fn deliver(
        &mut self,
        result: &BatchResult,
        batch: &[InputMessage],
    ) -> Result<(), SinkError> {
        self.write(result, batch).map_err(|error| SinkError {
            // the files are written by one call; the error names the folder's alerts file
            path: self.alerts_path.clone(),
            error,
        })
    }
}

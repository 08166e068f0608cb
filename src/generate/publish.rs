//! Writing generated messages to a Kafka cluster or to NDJSON files.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::{Expect, GeneratedMessage};
use crate::config::KafkaSettings;
use crate::kafka::client_config;

/// What was sent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sent {
    /// Messages per feed.
    pub per_feed: BTreeMap<String, usize>,
    /// Wall-clock seconds it took.
    pub seconds: f64,
}

impl Sent {
    /// Messages in total.
    pub fn total(&self) -> usize {
        self.per_feed.values().sum()
    }
}

/// Sends `msgs` to the topics (`topic_of(feed)`), at `rate` messages per
/// second or as fast as the broker takes them (`None`), waiting for every
/// acknowledgement.
pub async fn to_kafka(
    kafka: &KafkaSettings,
    msgs: &[GeneratedMessage],
    topic_of: impl Fn(&str) -> String,
    rate: Option<u64>,
) -> Result<Sent, KafkaError> {
    let mut cfg = client_config(kafka, &kafka.producer);
    cfg.set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000");
    let producer: FutureProducer = cfg.create()?;
    let started = Instant::now();
    let mut sent = Sent::default();
    // 10 ms slices: close to a steady rate without one send per sleep
    let chunk = rate.map_or(20_000, |r| (r / 100).clamp(1, 20_000) as usize);
    let topics: BTreeMap<&str, String> = msgs.iter().map(|m| (m.feed, topic_of(m.feed))).collect();
    for (n, part) in msgs.chunks(chunk).enumerate() {
        let results = join_all(part.iter().map(|m| {
            let mut record = FutureRecord::to(&topics[m.feed]).payload(&m.payload);
            if let Some(k) = &m.key {
                record = record.key(k);
            }
            producer.send(record, Timeout::Never)
        }))
        .await;
        for (m, r) in part.iter().zip(results) {
            r.map_err(|(e, _)| e)?;
            *sent.per_feed.entry(m.feed.to_string()).or_default() += 1;
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(((n + 1) * chunk) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    sent.seconds = started.elapsed().as_secs_f64();
    Ok(sent)
}

/// The files of [`to_ndjson`]: one per feed, and `bad-input.ndjson`.
struct NdjsonFiles {
    dir: std::path::PathBuf,
    files: BTreeMap<&'static str, BufWriter<fs::File>>,
    bad: BufWriter<fs::File>,
    sent: Sent,
}

impl NdjsonFiles {
    fn create(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(NdjsonFiles {
            dir: dir.into(),
            files: BTreeMap::new(),
            bad: BufWriter::new(fs::File::create(dir.join("bad-input.ndjson"))?),
            sent: Sent::default(),
        })
    }

    fn write(&mut self, m: &GeneratedMessage) -> std::io::Result<()> {
        match m.expect {
            Expect::Valid | Expect::Duplicate => {
                if !self.files.contains_key(m.feed) {
                    let f = fs::File::create(self.dir.join(format!("{}.ndjson", m.feed)))?;
                    self.files.insert(m.feed, BufWriter::new(f));
                }
                if let Some(f) = self.files.get_mut(m.feed) {
                    f.write_all(&m.payload)?;
                    f.write_all(b"\n")?;
                }
            }
            Expect::Reject(class) => {
                let line = serde_json::json!({
                    "feed": m.feed,
                    "key": m.key.as_deref().map(String::from_utf8_lossy),
                    "value": String::from_utf8_lossy(&m.payload),
                    "expect": class.as_str(),
                });
                writeln!(self.bad, "{line}")?;
            }
        }
        *self.sent.per_feed.entry(m.feed.to_string()).or_default() += 1;
        Ok(())
    }

    fn finish(mut self, started: Instant) -> std::io::Result<Sent> {
        for f in self.files.values_mut() {
            f.flush()?;
        }
        self.bad.flush()?;
        self.sent.seconds = started.elapsed().as_secs_f64();
        Ok(self.sent)
    }
}

/// Writes the valid messages as `<dir>/<feed>.ndjson` (one JSON value per
/// line, in arrival order; the key is the value's household_id) and the
/// planted bad input as `<dir>/bad-input.ndjson` (`feed`, `key`, `value`
/// as text, `expect`: the reject class).
pub fn to_ndjson(dir: &Path, msgs: &[GeneratedMessage]) -> std::io::Result<Sent> {
    let started = Instant::now();
    let mut files = NdjsonFiles::create(dir)?;
    for m in msgs {
        files.write(m)?;
    }
    files.finish(started)
}

/// Generates `cfg` straight into the files of [`to_ndjson`], household by
/// household: memory holds one household's messages, not the history (a
/// replay merges the files in event-time order, whatever their order).
pub fn generate_to_ndjson(
    dir: &Path,
    cfg: &super::GeneratorConfig,
) -> std::io::Result<(Sent, usize)> {
    let started = Instant::now();
    let mut files = NdjsonFiles::create(dir)?;
    let mut failed = None;
    let planted = super::generate_each(cfg, |household| {
        if failed.is_some() {
            return;
        }
        for m in household.iter() {
            if let Err(e) = files.write(m) {
                failed = Some(e);
                return;
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((files.finish(started)?, planted.len()))
}

/// One line of [`to_ndjson_with_arrival`], its fields in this order.
#[derive(serde::Serialize)]
struct ArrivalLine<'a> {
    ts: i64,
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_hex: Option<String>,
}

/// Writes every message, bad ones included, as `<dir>/<feed>.ndjson` with
/// its arrival time: one `{"ts": ms, "key": text, "value": text}` per line
/// in arrival order (`value_hex` instead of `value` for bytes that are not
/// UTF-8). `sagak replay` of these files runs exactly as `sagak demo
/// --without-offices` on the same seed.
pub fn to_ndjson_with_arrival(dir: &Path, msgs: &[GeneratedMessage]) -> std::io::Result<Sent> {
    let started = Instant::now();
    fs::create_dir_all(dir)?;
    let mut files: BTreeMap<&str, BufWriter<fs::File>> = BTreeMap::new();
    let mut sent = Sent::default();
    for m in msgs {
        if !files.contains_key(m.feed) {
            let f = fs::File::create(dir.join(format!("{}.ndjson", m.feed)))?;
            files.insert(m.feed, BufWriter::new(f));
        }
        let key = m
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let text = std::str::from_utf8(&m.payload).ok();
        let line = ArrivalLine {
            ts: m.arrival_ms,
            key,
            value: text,
            value_hex: text
                .is_none()
                .then(|| m.payload.iter().map(|b| format!("{b:02x}")).collect()),
        };
        if let Some(f) = files.get_mut(m.feed) {
            serde_json::to_writer(&mut *f, &line)?;
            f.write_all(b"\n")?;
        }
        *sent.per_feed.entry(m.feed.to_string()).or_default() += 1;
    }
    for f in files.values_mut() {
        f.flush()?;
    }
    sent.seconds = started.elapsed().as_secs_f64();
    Ok(sent)
}

//! Runtime settings: `sagak.toml` layered with `SAGAK__SECTION__KEY`
//! environment variables (the `config` crate), checked at start-up.
//!
//! ```
//! let settings = sagak::config::Settings::load(None).unwrap();
//! assert_eq!(settings.topics.alerts, "dong-office.alerts");
//! ```

mod storage;
pub use storage::{Storage, StorageSettings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::definition::{PipelineError, PipelineSpec};

/// A setting that stops sagak at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not deserialize.
    #[error("configuration error: {0}. Run `sagak check-config` to see the effective settings")]
    Load(#[from] config::ConfigError),
    /// A value is present but cannot work.
    #[error("configuration error: `{key}` {problem}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The pipeline named by `pipeline.dir` is broken.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// A duration written as text in the settings (`"8h"`, `"5y"`, `"1825d"`),
/// parsed once when the settings are read: a value that is not one stops
/// start-up naming its key, and no later reader parses it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub std::time::Duration);

impl Span {
    /// `text` as a duration, or what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Span, String> {
        humantime::parse_duration(text).map(Span).map_err(|e| {
            format!("{text:?} is not a duration ({e}): write one like \"8h\", \"30d\" or \"5y\"")
        })
    }

    /// In milliseconds (saturating).
    pub(crate) fn as_ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl From<&str> for Span {
    /// A duration known to be well written (defaults and tests); zero
    /// otherwise, which validation refuses.
    fn from(text: &str) -> Span {
        Span::parse(text).unwrap_or(Span(std::time::Duration::ZERO))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Kafka connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: comma-separated host:port list.
    pub brokers: String,
    /// Consumer group id; instances with the same id share the partitions.
    pub group_id: String,
    /// Create missing topics at start-up (development and tests; in
    /// production topics are usually managed by the platform team).
    pub create_topics: bool,
    /// Partitions of topics created by `create_topics`.
    pub partitions: i32,
    /// Read every partition of the input topics without joining the
    /// consumer group (offsets are still committed for the group). For a
    /// single instance: a restart resumes at the snapshot's offsets at once,
    /// with no rebalance to wait for.
    pub static_assignment: bool,
    /// Any librdkafka property for both consumer and producer, e.g.
    /// `security.protocol`. In environment variables write `_` for `.`:
    /// `SAGAK__KAFKA__PROPERTIES__SECURITY_PROTOCOL=SASL_SSL`.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "localhost:9092".into(),
            group_id: "sagak".into(),
            create_topics: false,
            partitions: 4,
            static_assignment: false,
            properties: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// Topic names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSettings {
    /// Where alerts go (key: dong code).
    pub alerts: String,
    /// Where rejected input goes.
    pub dlq: String,
    /// Outcomes the dong offices record (key: household id; partitioned
    /// like the signal topics).
    pub outcomes: String,
    /// Escalations to the city team (key: dong code).
    pub escalations: String,
    /// The households' open work as each partition's owner sees it (key:
    /// household id; partitioned like the signal topics; compacted), read
    /// whole by every instance so any of them serves any dong's queue.
    /// Empty: each instance's pages show only the partitions it holds.
    pub open_work: String,
    /// Input topic per feed name; a feed not listed reads the topic its
    /// pipeline definition names.
    pub inputs: BTreeMap<String, String>,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            alerts: "dong-office.alerts".into(),
            dlq: "signals.dlq".into(),
            outcomes: "dong-office.outcomes".into(),
            escalations: "city.escalations".into(),
            open_work: "sagak.open-work".into(),
            inputs: BTreeMap::new(),
        }
    }
}

/// Which pipeline to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Folder holding `pipeline.toml` and its SQL.
    pub dir: PathBuf,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            dir: PathBuf::from("pipelines/default"),
        }
    }
}

/// Micro-batching and checkpointing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// A micro-batch is processed at the latest this long after its first
    /// message arrived, even while the consumer keeps delivering (it goes
    /// at once when the consumer has nothing more ready).
    pub flush_interval_ms: u64,
    /// A micro-batch is processed as soon as it holds this many messages.
    pub(crate) max_batch: usize,
    /// State is snapshotted and offsets committed this often (or every 20
    /// times the last snapshot's pause of the loop, when that is longer).
    pub checkpoint_interval_ms: u64,
    /// Folder for state snapshots.
    pub state_dir: PathBuf,
    /// Snapshots kept (the newest good one is used on start).
    pub keep_checkpoints: usize,
    /// A feed that has sent nothing on an input partition for this long,
    /// while the consumer is at the end of that partition, no longer holds
    /// back eviction there (see README, "Event time").
    pub(crate) idle_partition_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            flush_interval_ms: 50,
            max_batch: 10_000,
            checkpoint_interval_ms: 10_000,
            state_dir: PathBuf::from("sagak-state"),
            keep_checkpoints: 3,
            idle_partition_ms: 60_000,
        }
    }
}

/// Daily candidate lists written by the running pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListSettings {
    /// Write the lists at every cut-off (time set in the pipeline).
    pub enabled: bool,
    /// Lists go to `<out_dir>/lists/<date>/`.
    pub out_dir: PathBuf,
}

impl Default for ListSettings {
    fn default() -> Self {
        ListSettings {
            enabled: true,
            out_dir: PathBuf::from("sagak-out"),
        }
    }
}

/// The operations HTTP endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve `/metrics`, `/healthz` and `/readyz`.
    pub enabled: bool,
    /// Address to listen on; `0.0.0.0:9464` for Prometheus on another host.
    pub listen: String,
    /// No longer used: a set value stops start-up and says what replaced
    /// it (per-person accounts on the web front).
    pub token: String,
}

/// The web front for dong offices and the city team (pages with household
/// data, on their own listener).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Serve the pages.
    pub enabled: bool,
    /// Address to listen on; loopback unless TLS or a TLS proxy is set.
    pub(crate) listen: String,
    /// PEM certificate chain: the pages are served over TLS.
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub(crate) tls_key: Option<PathBuf>,
    /// Address of a TLS-terminating proxy in front (its `X-Forwarded-For`
    /// is trusted and cookies are marked Secure).
    pub(crate) trusted_proxy: Option<String>,
    /// The accounts (`sagak users add`); written 0600.
    pub users_file: PathBuf,
    /// Daily audit files (`audit-YYYY-MM-DD.jsonl`).
    pub audit_dir: PathBuf,
    /// A session ends after this long without a request ("8h").
    pub(crate) session_idle: Span,
    /// Failed logins per client address and minute before it must wait.
    pub(crate) login_failures_per_minute: u32,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            enabled: true,
            listen: "127.0.0.1:9465".into(),
            tls_cert: None,
            tls_key: None,
            trusted_proxy: None,
            users_file: PathBuf::from("sagak-state/users.json"),
            audit_dir: PathBuf::from("sagak-state/audit"),
            session_idle: Span::from("8h"),
            login_failures_per_minute: 5,
        }
    }
}

impl WebSettings {
    /// The idle time after which a session ends.
    pub(crate) fn idle(&self) -> std::time::Duration {
        self.session_idle.0
    }
}

/// How long data is kept (the law: social-security information at most
/// five years; access logs at least two).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Household data on disk (daily lists, escalation lists, dead-letter
    /// copies, snapshots): deleted this long after the day it describes.
    /// At most 5 years ("5y", "1825d").
    pub data: Span,
    /// Audit files: at least 2 years.
    pub audit: Span,
    /// Group allowed to read files with household data (mode 0640); empty:
    /// owner only (0600). A group name or a numeric gid.
    pub group: String,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            data: Span::from("5y"),
            audit: Span::from("2y"),
            group: String::new(),
        }
    }
}

/// The legal bounds of [`RetentionSettings`].
pub(crate) const MAX_DATA_RETENTION: &str = "5y";
/// See [`MAX_DATA_RETENTION`].
pub(crate) const MIN_AUDIT_RETENTION: &str = "2y";

impl RetentionSettings {
    /// Household data retention.
    pub(crate) fn data_ms(&self) -> i64 {
        self.data.as_ms()
    }

    /// Audit retention.
    pub(crate) fn audit_ms(&self) -> i64 {
        self.audit.as_ms()
    }
}

/// A setting that cannot work: `key` and what is wrong with it.
fn invalid<T>(key: &str, problem: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    })
}

/// `value` of `key` must be a duration longer than zero, like `example`.
fn nonzero_duration(key: &str, value: Span, example: &str) -> Result<(), ConfigError> {
    if value.0.is_zero() {
        return invalid(
            key,
            format!("= {value} is no time at all: write a duration like {example}"),
        );
    }
    Ok(())
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            token: String::new(),
        }
    }
}

/// All settings of a sagak process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Kafka connection.
    pub kafka: KafkaSettings,
    /// Topic names.
    pub topics: TopicSettings,
    /// Pipeline definition.
    pub pipeline: PipelineSettings,
    /// Micro-batching and checkpoints.
    pub engine: EngineSettings,
    /// Daily lists.
    pub lists: ListSettings,
    /// Operations endpoints.
    pub http: HttpSettings,
    /// Pages for dong offices and the city team.
    pub web: WebSettings,
    /// How long data is kept, and who may read its files.
    pub retention: RetentionSettings,
    /// Log output.
    pub log: LogSettings,
    /// Where snapshots and lists are kept (folders, or object storage).
    pub storage: StorageSettings,
}

/// How log lines are written (to stderr, one line per event; never a
/// household id or a message value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text for a person; colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for Loki, Elasticsearch and the like.
    Json,
}

/// Log output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (default) or `json`; by environment: SAGAK__LOG__FORMAT=json.
    pub format: LogFormat,
}

impl Settings {
    /// Loads defaults, then `file` (if given; it must exist), then
    /// `SAGAK__…` environment variables, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, None)
    }

    /// [`Settings::load`] with `env` in place of the process environment.
    ///
    /// Values are taken as written: an id or a secret that looks like a
    /// number or a boolean (`0123`, `1e3`, `true`) stays that text; keys of
    /// a number or boolean type are still parsed and checked.
    pub(crate) fn load_from(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config".into(),
                    problem: format!(
                        "names {}, which does not exist; pass the path of your sagak.toml",
                        path.display()
                    ),
                });
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("SAGAK")
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        for map in [
            &mut settings.kafka.properties,
            &mut settings.kafka.consumer,
            &mut settings.kafka.producer,
        ] {
            // Environment variables cannot hold dots: SASL_MECHANISMS -> sasl.mechanisms
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase().replace('_', "."), v))
                .collect();
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The topics' checks of [`Settings::validate`]: named, and no output
    /// read back as an input.
    fn validate_topics(&self) -> Result<(), ConfigError> {
        if self.topics.alerts.is_empty() || self.topics.dlq.is_empty() {
            return invalid("topics.alerts", "and topics.dlq must name topics");
        }
        if self.topics.alerts == self.topics.dlq {
            return invalid("topics.dlq", "must differ from topics.alerts");
        }
        for (key, topic) in [
            ("topics.outcomes", &self.topics.outcomes),
            ("topics.escalations", &self.topics.escalations),
        ] {
            if topic.is_empty() {
                return invalid(key, "must name a topic");
            }
        }
        let outputs = [
            &self.topics.alerts,
            &self.topics.dlq,
            &self.topics.escalations,
        ];
        if outputs.contains(&&self.topics.outcomes) {
            return invalid(
                "topics.outcomes",
                "must differ from topics.alerts, topics.escalations and topics.dlq (sagak reads it)",
            );
        }
        if self.topics.escalations == self.topics.alerts
            || self.topics.escalations == self.topics.dlq
        {
            return invalid(
                "topics.escalations",
                "must differ from topics.alerts and topics.dlq",
            );
        }
        if outputs.contains(&&self.topics.open_work)
            || self.topics.open_work == self.topics.outcomes
        {
            return invalid(
                "topics.open_work",
                "must differ from topics.alerts, topics.escalations, topics.dlq and topics.outcomes (or be empty)",
            );
        }
        Ok(())
    }

    /// Checks values that deserialize but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.kafka.brokers.trim().is_empty() {
            return invalid("kafka.brokers", "is empty: set host:port of at least one broker, e.g. SAGAK__KAFKA__BROKERS=kafka1:9092");
        }
        if self.kafka.group_id.trim().is_empty() {
            return invalid(
                "kafka.group_id",
                "is empty: set the consumer group id, e.g. \"sagak\"",
            );
        }
        if self.kafka.partitions < 1 {
            return invalid("kafka.partitions", "must be at least 1");
        }
        for key in ["group.id", "bootstrap.servers", "enable.auto.commit"] {
            if self.kafka.properties.contains_key(key) || self.kafka.consumer.contains_key(key) {
                return invalid(
                    &format!("kafka.properties.{key}"),
                    "is managed by sagak: use kafka.brokers / kafka.group_id (offsets are committed by sagak after each checkpoint)",
                );
            }
        }
        // State moves with whole assignments (every partition is re-seeked
        // on a rebalance); incremental protocols keep partitions running
        // across it, which the hand-over does not support.
        for (section, map) in [
            ("kafka.properties", &self.kafka.properties),
            ("kafka.consumer", &self.kafka.consumer),
        ] {
            if map
                .get("partition.assignment.strategy")
                .is_some_and(|v| v.contains("cooperative"))
            {
                return invalid(
                    &format!("{section}.\"partition.assignment.strategy\""),
                    "cooperative assignment is not supported: remove it (librdkafka's default \"range,roundrobin\" is what sagak's state hand-over needs)",
                );
            }
            if map.get("group.protocol").is_some_and(|v| v == "consumer") {
                return invalid(
                    &format!("{section}.\"group.protocol\""),
                    "the incremental \"consumer\" protocol is not supported: remove it (sagak needs the classic group protocol)",
                );
            }
        }
        self.validate_topics()?;
        if self.engine.flush_interval_ms == 0 || self.engine.flush_interval_ms > 60_000 {
            return invalid(
                "engine.flush_interval_ms",
                "must be between 1 and 60000 (milliseconds)",
            );
        }
        if self.engine.max_batch == 0 || self.engine.max_batch > 1_000_000 {
            return invalid(
                "engine.max_batch",
                "must be between 1 and 1000000 (messages)",
            );
        }
        if self.engine.checkpoint_interval_ms < 100 {
            return invalid(
                "engine.checkpoint_interval_ms",
                "must be at least 100 (milliseconds)",
            );
        }
        if self.http.enabled && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "http.listen",
                "must be an address like 127.0.0.1:9464 or 0.0.0.0:9464",
            );
        }
        if !self.http.token.is_empty() {
            return invalid(
                "http.token",
                "is no longer used: one shared token is replaced by per-person accounts. Remove it, create accounts with `sagak users add --name NAME --role dong --dong CODE` (or --role city), and open the pages on web.listen",
            );
        }
        self.validate_web()?;
        self.storage.validate()?;
        self.validate_retention()?;
        if self.engine.keep_checkpoints == 0 {
            return invalid("engine.keep_checkpoints", "must be at least 1");
        }
        Ok(())
    }

    fn validate_web(&self) -> Result<(), ConfigError> {
        let w = &self.web;
        nonzero_duration("web.session_idle", w.session_idle, "\"8h\" or \"30m\"")?;
        if w.tls_cert.is_some() != w.tls_key.is_some() {
            return invalid(
                "web.tls_cert",
                "and web.tls_key go together: set both (PEM certificate chain and its private key) or neither"
            );
        }
        if let Some(proxy) = &w.trusted_proxy {
            if proxy.parse::<std::net::IpAddr>().is_err() {
                return invalid(
                    "web.trusted_proxy",
                    format!("= {proxy:?} must be the IP address of the TLS-terminating proxy, e.g. 10.0.0.5"),
                );
            }
        }
        if !w.enabled {
            return Ok(());
        }
        let Ok(addr) = w.listen.parse::<std::net::SocketAddr>() else {
            return invalid("web.listen", "must be an address like 127.0.0.1:9465");
        };
        if !addr.ip().is_loopback() && w.tls_cert.is_none() && w.trusted_proxy.is_none() {
            return invalid(
                "web.listen",
                format!("= {addr} is not loopback, and the pages carry household data: set web.tls_cert and web.tls_key to serve TLS, or web.trusted_proxy to the address of the TLS-terminating proxy in front, or listen on 127.0.0.1"),
            );
        }
        if w.login_failures_per_minute == 0 {
            return invalid("web.login_failures_per_minute", "must be at least 1");
        }
        Ok(())
    }

    fn validate_retention(&self) -> Result<(), ConfigError> {
        let r = &self.retention;
        nonzero_duration("retention.data", r.data, "\"5y\" or \"1825d\"")?;
        nonzero_duration("retention.audit", r.audit, "\"2y\" or \"730d\"")?;
        if r.data > Span::from(MAX_DATA_RETENTION) {
            return invalid("retention.data", format!("= {} is longer than the law allows for social-security information (at most {MAX_DATA_RETENTION}): set 5y or less", r.data));
        }
        if r.audit < Span::from(MIN_AUDIT_RETENTION) {
            return invalid("retention.audit", format!("= {} is shorter than access logs must be kept (at least {MIN_AUDIT_RETENTION}): set 2y or more", r.audit));
        }
        Ok(())
    }

    /// Loads the pipeline named by `pipeline.dir` and checks that every
    /// `topics.inputs` entry names one of its feeds.
    pub fn pipeline(&self) -> Result<PipelineSpec, ConfigError> {
        let default_dir = PipelineSettings::default().dir;
        let spec =
            if self.pipeline.dir == default_dir && !default_dir.join("pipeline.toml").exists() {
                // Run from outside the repository: the default pipeline is built in.
                PipelineSpec::embedded_default()?
            } else {
                PipelineSpec::load(&self.pipeline.dir)?
            };
        let kept = i64::try_from(spec.outcomes.retention.as_millis()).unwrap_or(i64::MAX);
        if kept > self.retention.data_ms() {
            return Err(ConfigError::Invalid {
                key: "outcomes.retention".into(),
                problem: format!(
                    "of pipeline `{}` keeps case records {} after their last activity, longer than retention.data = {}: shorten it in pipeline.toml",
                    spec.name,
                    humantime::format_duration(spec.outcomes.retention),
                    self.retention.data
                ),
            });
        }
        for feed in self.topics.inputs.keys() {
            if spec.feed_index(feed).is_none() {
                let known: Vec<&str> = spec.feeds.iter().map(|f| f.name.as_str()).collect();
                return Err(ConfigError::Invalid {
                    key: format!("topics.inputs.{feed}"),
                    problem: format!(
                        "names no feed of pipeline `{}`; feeds are: {}",
                        spec.name,
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(spec)
    }

    /// Input topic of each feed of `spec`, in feed order, then the
    /// outcomes topic (whose messages carry [`PipelineSpec::outcome_feed`]).
    pub fn input_topics(&self, spec: &PipelineSpec) -> Vec<String> {
        spec.feeds
            .iter()
            .map(|f| {
                self.topics
                    .inputs
                    .get(&f.name)
                    .cloned()
                    .unwrap_or_else(|| f.topic.clone())
            })
            .chain([self.topics.outcomes.clone()])
            .collect()
    }
}

#[cfg(test)]
mod tests;

//! Test support: a real Kafka-protocol broker (tansu, in-process, over TCP),
//! unique topic names per test, a producer, a collecting consumer and a
//! pipeline running in the background.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use sagak::config::Settings;
use sagak::definition::PipelineSpec;
use sagak::drivers::kafka::RunSummary;
use sagak::metrics::Metrics;
use sagak::ops::OpsState;
use std::sync::Arc;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A tansu broker running on its own runtime and thread.
pub struct TestBroker {
    pub addr: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestBroker {
    /// Starts a broker on `port` (0: any free port) with `storage`
    /// (`memory://tansu/`, or `sqlite://FILE` relative to the working
    /// directory, which keeps topics and offsets across a restart).
    pub fn start(port: u16, storage: &str) -> TestBroker {
        TestBroker::advertising(port, storage, None)
    }

    /// [`TestBroker::start`], telling clients to connect to
    /// `127.0.0.1:advertised` instead (a TLS terminator in front of it).
    pub fn advertising(port: u16, storage: &str, advertised: Option<u16>) -> TestBroker {
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port on loopback")
                .port()
        } else {
            port
        };
        let url = url::Url::parse(&format!("tcp://127.0.0.1:{port}")).expect("valid url");
        let public = url::Url::parse(&format!("tcp://127.0.0.1:{}", advertised.unwrap_or(port)))
            .expect("valid url");
        let storage = url::Url::parse(storage).expect("valid storage url");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("broker runtime");
        runtime.spawn(async move {
            let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(111)
                .cluster_id("sagak-tests")
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(public)
                .listener(url)
                .storage(storage)
                .silent(true)
                .build()
                .await
                .expect("tansu broker builds");
            broker
                .serve(tokio::time::Instant::now())
                .await
                .expect("tansu broker serves");
        });
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return TestBroker {
                    addr,
                    runtime: Some(runtime),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tansu broker did not start listening on {addr}");
    }

    /// Stops the broker: its listener and connections close.
    pub fn stop(mut self) {
        if let Some(rt) = self.runtime.take() {
            // Called from async tests: shutting a runtime down blocks.
            tokio::task::block_in_place(|| rt.shutdown_timeout(Duration::from_secs(2)));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Address of the shared test broker (memory storage), started on first use.
pub fn broker() -> &'static str {
    static BROKER: OnceLock<TestBroker> = OnceLock::new();
    &BROKER
        .get_or_init(|| TestBroker::start(0, "memory://tansu/"))
        .addr
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub use sagak::testkit::{default_spec, health, utility};

/// Topics and settings of one test.
pub struct Scenario {
    pub settings: Settings,
    pub spec: PipelineSpec,
    /// Kept so the directory lives as long as the scenario.
    _state_dir: tempfile::TempDir,
}

impl Scenario {
    /// Fresh topics, group and state directory on the shared broker.
    pub async fn new(name: &str) -> Scenario {
        Scenario::on(name, broker()).await
    }

    /// Fresh topics, group and state directory on the broker at `addr`;
    /// topics are created.
    pub async fn on(name: &str, addr: &str) -> Scenario {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
        Scenario::with_pipeline(name, addr, &dir).await
    }

    /// [`Scenario::on`] with librdkafka `properties` for sagak's clients
    /// (TLS, say), used from the topics' creation on.
    pub async fn with_properties(name: &str, addr: &str, properties: &[(&str, &str)]) -> Scenario {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/default");
        Scenario::build(name, addr, &dir, properties).await
    }

    /// Fresh topics (one per feed of the pipeline in `dir`), group and state
    /// directory on the broker at `addr`; topics are created.
    pub async fn with_pipeline(name: &str, addr: &str, dir: &std::path::Path) -> Scenario {
        Scenario::build(name, addr, dir, &[]).await
    }

    async fn build(
        name: &str,
        addr: &str,
        dir: &std::path::Path,
        properties: &[(&str, &str)],
    ) -> Scenario {
        let id = unique(name);
        let spec = PipelineSpec::load(dir).expect("the test pipeline loads");
        let mut settings = Settings::default();
        settings.kafka.brokers = addr.to_string();
        for (k, v) in properties {
            settings
                .kafka
                .properties
                .insert(k.to_string(), v.to_string());
        }
        settings.kafka.group_id = format!("{id}.sagak");
        settings.kafka.create_topics = true;
        settings.kafka.partitions = 4;
        for feed in &spec.feeds {
            let topic = format!("{id}.signals.{}", feed.name);
            settings.topics.inputs.insert(feed.name.clone(), topic);
        }
        settings.topics.alerts = format!("{id}.dong-office.alerts");
        settings.topics.dlq = format!("{id}.signals.dlq");
        settings.topics.outcomes = format!("{id}.dong-office.outcomes");
        settings.topics.escalations = format!("{id}.city.escalations");
        settings.topics.open_work = format!("{id}.sagak.open-work");
        settings.pipeline.dir = dir.to_path_buf();
        settings.engine.flush_interval_ms = 50;
        settings.engine.checkpoint_interval_ms = 300;
        let state_dir = tempfile::tempdir().expect("temp dir");
        settings.engine.state_dir = state_dir.path().to_path_buf();
        settings.validate().expect("test settings are valid");
        let mut topics = settings.input_topics(&spec);
        topics.push(settings.topics.alerts.clone());
        topics.push(settings.topics.escalations.clone());
        topics.push(settings.topics.dlq.clone());
        sagak::kafka::create_topics(&settings.kafka, &topics)
            .await
            .expect("topics created");
        sagak::kafka::create_compacted(&settings.kafka, &settings.topics.open_work, 4)
            .await
            .expect("the open-work topic created");
        Scenario {
            settings,
            spec,
            _state_dir: state_dir,
        }
    }

    /// Input topic of a feed.
    pub fn topic(&self, feed: &str) -> String {
        self.settings.topics.inputs[feed].clone()
    }

    /// Starts the pipeline in the background.
    pub fn start(&self) -> RunningPipeline {
        let (stop, stopped) = oneshot::channel::<()>();
        let settings = self.settings.clone();
        let spec = self.spec.clone();
        let ops = Arc::new(OpsState::new(&spec, Metrics::new(&spec), "kafka"));
        let metrics = ops.metrics.clone();
        let task_ops = ops.clone();
        let task = tokio::spawn(async move {
            sagak::drivers::kafka::run(&settings, &spec, task_ops, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        });
        RunningPipeline {
            stop: Some(stop),
            task,
            metrics,
            ops,
        }
    }

    /// A consumer of the alerts topic from its beginning.
    pub fn alerts(&self) -> Collector {
        Collector::new(&self.settings.topics.alerts, &self.settings.kafka.brokers)
    }

    /// A consumer of the escalations topic from its beginning.
    pub fn escalations(&self) -> Collector {
        Collector::new(
            &self.settings.topics.escalations,
            &self.settings.kafka.brokers,
        )
    }

    /// The outcomes topic.
    pub fn outcomes_topic(&self) -> String {
        self.settings.topics.outcomes.clone()
    }

    /// A consumer of the dead-letter topic from its beginning.
    pub fn dead_letters(&self) -> Collector {
        Collector::new(&self.settings.topics.dlq, &self.settings.kafka.brokers)
    }

    /// A producer to this scenario's broker.
    pub fn producer(&self) -> Producer {
        Producer::to(&self.settings.kafka.brokers)
    }
}

/// A pipeline running in a background task.
pub struct RunningPipeline {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<RunSummary, String>>,
    pub metrics: Metrics,
    pub ops: Arc<OpsState>,
}

impl RunningPipeline {
    /// Asks for a clean shutdown and waits for it.
    pub async fn stop(mut self) -> RunSummary {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("pipeline stops within 30 s")
            .expect("pipeline task did not panic")
            .expect("pipeline ended without error")
    }

    /// Kills the pipeline without a final checkpoint, as a crash would.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Current value of a metric line, e.g. `sagak_signals_duplicate_total`.
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix(name_and_labels)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Waits until a metric reaches `at_least`.
    pub async fn wait_metric(&self, name_and_labels: &str, at_least: f64) {
        for _ in 0..600 {
            if self.metric(name_and_labels) >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{name_and_labels} did not reach {at_least}; metrics:\n{}",
            self.metrics.render()
        );
    }
}

/// A producer that waits for the broker's acknowledgement.
pub struct Producer(FutureProducer);

impl Producer {
    /// A producer to the shared broker.
    pub fn new() -> Producer {
        Producer::to(broker())
    }

    /// A producer to the broker at `addr`.
    pub fn to(addr: &str) -> Producer {
        Producer::with(addr, &[])
    }

    /// A producer to the broker at `addr` with librdkafka `properties`.
    pub fn with(addr: &str, properties: &[(&str, &str)]) -> Producer {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", addr).set("linger.ms", "0");
        for (k, v) in properties {
            config.set(*k, *v);
        }
        Producer(config.create().expect("producer"))
    }

    /// Sends `value` with `key` to `topic`.
    pub async fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) {
        let mut record = FutureRecord::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        self.0
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(e, _)| e)
            .expect("broker acknowledged the test message");
    }

    /// Sends water arrears, a job loss and premium arrears of `household`
    /// observed on `day`: three categories, a P1.
    pub async fn crisis(&self, s: &Scenario, household: &str, day: &str) {
        let water = utility("u-1", household, day, "water", 3, false);
        self.signal(&s.topic("utility-arrears"), &water).await;
        self.signal(&s.topic("job-loss"), &job_loss("j-1", household, day))
            .await;
        self.signal(
            &s.topic("health-insurance"),
            &health("h-1", household, day, 5),
        )
        .await;
    }

    /// Sends a signal keyed by its household id.
    pub async fn signal(&self, topic: &str, json: &str) {
        let v: serde_json::Value = serde_json::from_str(json).expect("test signal is JSON");
        let key = v["household_id"]
            .as_str()
            .expect("household_id")
            .to_string();
        self.send(topic, Some(key.as_bytes()), json.as_bytes())
            .await;
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Received {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("JSON value")
    }
}

/// Reads a topic from its beginning and keeps what it saw.
pub struct Collector {
    consumer: StreamConsumer,
    pub seen: Vec<Received>,
}

impl Collector {
    /// A consumer of `topic` on the broker at `addr`, from its beginning.
    pub fn on(topic: &str, addr: &str) -> Collector {
        Collector::new(topic, addr)
    }

    fn new(topic: &str, addr: &str) -> Collector {
        Collector::with(topic, addr, &[])
    }

    /// [`Collector::on`] with librdkafka `properties` (TLS, say).
    pub fn with(topic: &str, addr: &str, properties: &[(&str, &str)]) -> Collector {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", addr)
            .set("group.id", unique("collector"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        for (k, v) in properties {
            config.set(*k, *v);
        }
        let consumer: StreamConsumer = config.create().expect("collector consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Collector {
            consumer,
            seen: Vec::new(),
        }
    }

    async fn next(&mut self, wait: Duration) -> bool {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Ok(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.seen.push(Received {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                });
                true
            }
            Ok(Err(e)) => panic!("collector consumer error: {e}"),
            Err(_) => false,
        }
    }

    /// Reads until `done(seen)` holds; panics after 60 s.
    pub async fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> &[Received] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !done(&self.seen) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; saw {} messages: {:#?}",
                    self.seen.len(),
                    self.seen
                );
            }
            self.next(Duration::from_millis(500)).await;
        }
        &self.seen
    }

    /// Reads until nothing new arrives for `quiet`.
    pub async fn settle(&mut self, quiet: Duration) -> &[Received] {
        while self.next(quiet).await {}
        &self.seen
    }
}

/// Alerts (as JSON) of one household, in arrival order.
pub fn alerts_of(seen: &[Received], household: &str) -> Vec<serde_json::Value> {
    seen.iter()
        .map(Received::json)
        .filter(|a| a["household_id"] == household)
        .collect()
}

/// Priorities of one household's alerts, in arrival order.
pub fn priorities_of(seen: &[Received], household: &str) -> Vec<serde_json::Value> {
    alerts_of(seen, household)
        .iter()
        .map(|a| a["priority"].clone())
        .collect()
}

/// Whether every one of `households` has had an alert at priority `p`:
/// what a test waits for.
pub fn all_reached(
    households: &[String],
    p: &'static str,
) -> impl Fn(&[Received]) -> bool + 'static {
    let households = households.to_vec();
    move |seen: &[Received]| {
        households
            .iter()
            .all(|h| priorities_of(seen, h).iter().any(|v| v == p))
    }
}

/// Today's date minus `days`, as YYYY-MM-DD (signals must not be in the future).
pub fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// A job-loss signal in dong 4125052000, the dong of the other test signals.
pub fn job_loss(event_id: &str, household: &str, day: &str) -> String {
    sagak::testkit::job_loss(event_id, household, day, "4125052000")
}

/// Checks that every `alert_id` names one alert: alerts that share an id
/// are equal in every field but `emitted_at` (and, when a crash lost the
/// state that kept the first one, what the case state said: `due_at`,
/// counted from `emitted_at`, and `times_flagged_before`). Returns the distinct ids and
/// how many alerts repeated one.
pub fn each_id_names_one_alert(
    alerts: impl IntoIterator<Item = serde_json::Value>,
) -> (usize, usize) {
    let mut by_id: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut repeats = 0;
    for mut a in alerts {
        let id = a["alert_id"].as_str().expect("an alert_id").to_string();
        if let Some(fields) = a.as_object_mut() {
            fields.remove("emitted_at");
            fields.remove("due_at");
            fields.remove("times_flagged_before");
        }
        match by_id.get(&id) {
            Some(first) => {
                assert_eq!(first, &a, "two different alerts share the id {id}");
                repeats += 1;
            }
            None => {
                by_id.insert(id, a);
            }
        }
    }
    (by_id.len(), repeats)
}

/// Installs a Debian package when its binary is missing (the test setup the
/// README promises); fails with a clear message when that is impossible.
pub fn ensure_tool(binary: &str, package: &str) -> PathBuf {
    use std::process::Command;
    let find = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {binary}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    // apt holds one lock: tests that install run one at a time.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find() {
        return p;
    }
    let sudo = if unsafe_is_root() { "" } else { "sudo " };
    let script = format!(
        "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq --no-install-recommends {package}"
    );
    let status = Command::new("sh").args(["-c", &script]).status();
    find().unwrap_or_else(|| {
        panic!("{binary} is missing and `{script}` did not install it ({status:?})")
    })
}

/// True when the tests run as root (no sudo needed for apt).
fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A test certificate authority and a server certificate for 127.0.0.1
/// it signed, made with the openssl command: (ca.pem, server.pem,
/// server.key) in `dir`.
pub fn test_ca(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = ensure_tool("openssl", "openssl");
    let at = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca_key, ca, key, csr, cert, ext) = (
        at("ca.key"),
        at("ca.pem"),
        at("server.key"),
        at("server.csr"),
        at("server.pem"),
        at("ext.cnf"),
    );
    let p = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]);
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").expect("ext file");
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}

/// A TLS terminator in front of a plain listener, on its own runtime and
/// thread: what a city's TLS-fronted Kafka looks like to sagak (tansu's own
/// TLS listener is not wired up in 0.6.0).
pub struct TlsFront {
    pub port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        // dropped inside an async test: stop without waiting for its tasks
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl TlsFront {
    /// Accepts TLS on a free port with `cert` and `key` (PEM) and forwards
    /// each connection to `backend`.
    pub fn start(backend: String, cert: &std::path::Path, key: &std::path::Path) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("certificate file")
            .collect::<Result<_, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(key).expect("key file");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("TLS runtime");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let backend = backend.clone();
                tokio::spawn(async move {
                    // a client that refuses our certificate just goes away
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
        TlsFront {
            port,
            runtime: Some(runtime),
        }
    }
}

/// The published JSON Schema at `path` (from the repository root), with
/// formats checked.
pub fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap_or_else(|e| panic!("{path} is a valid JSON Schema: {e}"))
}

/// The default pipeline with its first-contact due times set to `due`
/// (`"4s"`), so a test sees an alert go overdue.
pub fn pipeline_due_in(due: &str) -> tempfile::TempDir {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["pipeline.toml", "score.sql", "lists.sql", "dongs.csv"] {
        std::fs::copy(root.join("pipelines/default").join(f), dir.path().join(f)).expect("copy");
    }
    let path = dir.path().join("pipeline.toml");
    let toml = std::fs::read_to_string(&path).expect("read");
    let mut edited = String::new();
    for line in toml.lines() {
        if line.starts_with("due_p") {
            let key = line.split('=').next().unwrap_or_default().trim();
            edited.push_str(&format!("{key} = \"{due}\"\n"));
        } else {
            edited.push_str(line);
            edited.push('\n');
        }
    }
    assert!(edited.contains(&format!("due_p2 = \"{due}\"")));
    std::fs::write(&path, edited).expect("write");
    dir
}

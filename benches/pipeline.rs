//! sagak's benchmarks. Prints one JSON object per line per figure:
//!
//! ```sh
//! cargo bench --bench pipeline                 # engine, parse-only, memory (1M, 5M), lists (1M)
//! cargo bench --bench pipeline -- --national   # adds 23M households (memory and lists)
//! cargo bench --bench pipeline -- --quick      # small sizes, to check the bench itself
//! cargo bench --bench pipeline -- --only engine   # one part: engine, kafka (with latency) or state
//! cargo bench --bench pipeline -- --mix stress     # state with half the households at a priority
//! ```
//!
//! Targets (issue 5, for a 2-core machine) are printed beside each figure.

use std::time::Instant;

use sagak::base::message::InputMessage;
use sagak::base::time::ClockTime;
use sagak::definition::PipelineSpec;
use sagak::engine::Engine;
use sagak::generate::{generate, GeneratorConfig};
use sagak::lists::DailyLists;
use sagak::metrics::{Metrics, Recorder};
use serde::Deserialize;
use serde_json::json;

/// The allocator of the `sagak` binary (src/main.rs), so the figures are
/// the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn spec() -> PipelineSpec {
    PipelineSpec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default").as_ref())
        .expect("default pipeline")
}

/// Resident memory: (all of it, of which file-backed), in bytes.
fn resident() -> (u64, u64) {
    let pages: Vec<u64> = std::fs::read_to_string("/proc/self/statm")
        .map(|s| {
            s.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let page = |i: usize| pages.get(i).map_or(0, |p| p * 4096);
    (page(1), page(2))
}

fn rss_bytes() -> u64 {
    resident().0
}

/// Resident memory that is not a mapped file. The binary's code counts in
/// the RSS once it has run: DataFusion's first plan and run page in tens of
/// megabytes of it, whatever the size of the state.
fn anonymous_bytes() -> u64 {
    let (all, file) = resident();
    all.saturating_sub(file)
}

/// CPU time (user + system) this process has used so far, in seconds. On
/// a shared machine the CPU time a phase takes moves less between runs than
/// its wall-clock rate does.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // fields 14 and 15 (utime, stime), counted after the command name,
            // which may itself hold spaces
            let rest = s.rsplit_once(')')?.1;
            let mut fields = rest.split_whitespace().skip(11);
            let user: u64 = fields.next()?.parse().ok()?;
            let system: u64 = fields.next()?.parse().ok()?;
            Some((user + system) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// Anonymous resident memory once the allocator has given back the pages
/// it holds free (what the batches used and will use again): the state's
/// own footprint, beside `rss_bytes` as the process has it.
fn state_memory() -> u64 {
    // SAFETY: mi_collect only walks the allocator's own structures; the
    // benchmark's global allocator is mimalloc (above).
    unsafe { libmimalloc_sys::mi_collect(true) };
    anonymous_bytes()
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

/// The wire structs, for the parse-only baseline.
#[allow(dead_code)]
#[derive(Deserialize)]
struct Common<'a> {
    event_id: &'a str,
    household_id: &'a str,
    dong_code: &'a str,
    observed_at: &'a str,
    source: &'a str,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct AnySignal<'a> {
    #[serde(borrow, flatten)]
    common: Common<'a>,
    utility: Option<&'a str>,
    months_overdue: Option<i64>,
    amount_krw: Option<i64>,
    disconnected: Option<bool>,
    person_id: Option<&'a str>,
    kind: Option<&'a str>,
    occurred_on: Option<&'a str>,
}

/// The generated messages as the Kafka source hands them to the engine.
///
/// The generator writes each household's signals together and then sorts
/// them by arrival, so its buffers lie in household order, scattered over
/// the whole heap. The source copies each message it polls (topic, key,
/// payload) into buffers of its own, one message after the other; the
/// copies here are made the same way, in arrival order, so the engine reads
/// a batch's bytes where a consumer would have put them.
fn inputs(spec: &PipelineSpec, cfg: &GeneratorConfig) -> Vec<InputMessage> {
    let generated: Vec<InputMessage> = generate(cfg)
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_input(spec, i as i64, 1))
        .collect();
    generated
        .iter()
        .map(|m| InputMessage {
            topic: std::sync::Arc::clone(&m.topic),
            key: m.key.as_deref().map(<[u8]>::to_vec),
            payload: m.payload.as_deref().map(<[u8]>::to_vec),
            source_file: None,
            ..*m
        })
        .collect()
}

/// One pass of the engine over `msgs`, from a fresh engine:
/// (wall seconds, CPU seconds, alerts, suppressed by cooldown).
async fn engine_pass(spec: &PipelineSpec, msgs: &[InputMessage]) -> (f64, f64, usize, usize) {
    let mut engine = Engine::new(spec);
    // the metrics as the driver records them after each batch
    let mut recorder = Recorder::new(Metrics::new(spec), engine.feed_names());
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let (mut alerts, mut suppressed) = (0, 0);
    for batch in msgs.chunks(10_000) {
        let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
        let result = engine
            .process_batch(batch, ClockTime::from_ms(now))
            .await
            .expect("batch");
        recorder.batch(&result, ClockTime::from_ms(now), engine.watermark());
        recorder.households(engine.households());
        alerts += result.alerts.len();
        suppressed += result.suppressed;
    }
    let wall = started.elapsed().as_secs_f64();
    (wall, cpu_seconds() - cpu_before, alerts, suppressed)
}

/// Two inputs for the engine passes: a copy of `msgs`, and the same
/// signals with one outcome per alert a first pass sent, each placed one
/// batch after the batch that sent the alert (as an office answering soon
/// after): contacts, counselling, support, cases, holds. Also the number
/// of outcomes.
async fn with_outcomes(
    spec: &PipelineSpec,
    msgs: &[InputMessage],
) -> (Vec<InputMessage>, Vec<InputMessage>, usize) {
    let mut engine = Engine::new(spec);
    let mut answers: Vec<Vec<InputMessage>> = Vec::new();
    let feed = spec.outcome_feed();
    let kinds = [
        r#""kind":"contact_attempted","channel":"phone","result":"reached""#,
        r#""kind":"contact_attempted","channel":"visit","result":"no_answer""#,
        r#""kind":"counselled""#,
        r#""kind":"support_linked","services":["energy"]"#,
        r#""kind":"case_opened","track":"case_management""#,
        r#""kind":"declined""#,
    ];
    let mut n = 0usize;
    for batch in msgs.chunks(10_000) {
        let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
        let result = engine
            .process_batch(batch, ClockTime::from_ms(now))
            .await
            .expect("batch");
        let mut these = Vec::with_capacity(result.alerts.len());
        for a in &result.alerts {
            n += 1;
            let value = format!(
                r#"{{"outcome_id":"b-{n}","household_id":"{}","dong_code":"{}","alert_id":"{}","recorded_at":"{}","staff_id":"bench",{}}}"#,
                a.household_id,
                a.dong_code,
                a.alert_id,
                sagak::stages::alert::rfc3339(now + 3_600_000),
                kinds[n % kinds.len()]
            );
            these.push(InputMessage {
                feed: Some(feed),
                topic: "dong-office.outcomes".into(),
                partition: 0,
                offset: n as i64,
                key: Some(a.household_id.as_bytes().to_vec()),
                payload: Some(value.into_bytes()),
                timestamp_ms: Some(now + 3_600_000),
                source_file: None,
            });
        }
        answers.push(these);
    }
    // both sets copied side by side, so neither pass reads messages laid
    // out in memory more favourably than the other (the answers were
    // made among the first pass's records: copied too)
    let mut plain = Vec::with_capacity(msgs.len());
    let mut mixed = Vec::with_capacity(msgs.len() + n);
    for (i, batch) in msgs.chunks(10_000).enumerate() {
        plain.extend(batch.iter().cloned());
        mixed.extend(batch.iter().cloned());
        if i > 0 {
            mixed.extend(answers[i - 1].iter().cloned());
        }
    }
    (plain, mixed, n)
}

/// One pass of the parse-only loop over `msgs`: (seconds, messages parsed).
fn parse_pass(msgs: &[InputMessage]) -> (f64, usize) {
    let started = Instant::now();
    let mut parsed = 0usize;
    for m in msgs {
        if let Some(p) = &m.payload {
            if serde_json::from_slice::<AnySignal<'_>>(p).is_ok() {
                parsed += 1;
            }
        }
    }
    (started.elapsed().as_secs_f64(), parsed)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `x` rounded to `places` decimal places, for the printed figures.
fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Engine and parse-only passes in alternation, `rounds` of each, so both
/// see the same state of this machine: one pass of either varied by up to
/// a quarter from one minute to the next, more than most changes it judges.
async fn engine_throughput(spec: &PipelineSpec, households: usize, rounds: usize) {
    let cfg = GeneratorConfig {
        households,
        days: 180,
        ..GeneratorConfig::default()
    };
    let msgs = inputs(spec, &cfg);
    let bytes: usize = msgs
        .iter()
        .map(|m| m.payload.as_ref().map_or(0, Vec::len))
        .sum();
    let n = msgs.len().max(1) as f64;
    let (plain, mixed, outcomes) = with_outcomes(spec, &msgs).await;
    let (mut rates, mut cpus, mut parse_rates, mut ratios) = (vec![], vec![], vec![], vec![]);
    let (mut mixed_rates, mut mixed_ratios) = (vec![], vec![]);
    let (mut alerts, mut suppressed, mut parsed) = (0, 0, 0);
    for _ in 0..rounds.max(1) {
        let (wall, cpu, a, s) = engine_pass(spec, &plain).await;
        let (parse_s, p) = parse_pass(&msgs);
        // the same signals with one outcome per alert mixed in, counted as
        // signals per second (the outcomes ride along)
        let (mixed_wall, ..) = engine_pass(spec, &mixed).await;
        (alerts, suppressed, parsed) = (a, s, p);
        rates.push(n / wall);
        cpus.push(cpu * 1e6 / n);
        parse_rates.push(n / parse_s);
        ratios.push(parse_s / wall);
        mixed_rates.push(n / mixed_wall);
        mixed_ratios.push(wall / mixed_wall);
    }
    let range = |v: &[f64], places| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        [round_to(lo, places), round_to(hi, places)]
    };
    emit(json!({
        "bench": "engine_throughput",
        "messages": msgs.len(),
        "mean_message_bytes": bytes / msgs.len().max(1),
        "batch_size": 10_000,
        "rounds": rates.len(),
        "alerts": alerts,
        "suppressed_by_cooldown": suppressed,
        "signals_per_s": median(&rates).round(),
        "signals_per_s_range": range(&rates, 0),
        "engine_cpu_us_per_signal": round_to(median(&cpus), 2),
        "engine_cpu_us_range": range(&cpus, 2),
        "parse_only_per_s": median(&parse_rates).round(),
        "parsed": parsed,
        "ratio_to_parse_only": round_to(median(&ratios), 3),
        "ratio_range": range(&ratios, 3),
        "ratio_per_round": ratios.iter().map(|r| round_to(*r, 3)).collect::<Vec<_>>(),
        "target_signals_per_s": 2_000_000,
        "target_ratio": 0.5,
    }));
    emit(json!({
        "bench": "engine_with_outcomes",
        "signals": msgs.len(),
        "outcomes_mixed_in": outcomes,
        "signals_per_s": median(&mixed_rates).round(),
        "signals_per_s_range": range(&mixed_rates, 0),
        "ratio_to_signals_only": round_to(median(&mixed_ratios), 3),
        "ratio_per_round": mixed_ratios.iter().map(|r| round_to(*r, 3)).collect::<Vec<_>>(),
        "target_ratio": 0.9,
    }));
}

/// How many of the benchmark state's households reach a priority.
#[derive(Clone, Copy, PartialEq)]
enum Mix {
    /// About 3% (the generator's crisis share; a national round lists
    /// 150,000-200,000 households, under 1% of 23M): most tracked
    /// households are a month or two behind, below every threshold.
    Realistic,
    /// About 55%: every household's arrears climb to 3-4 months in turn, a
    /// country in which half the households are in crisis at once.
    Stress,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Realistic => "realistic",
            Mix::Stress => "stress",
        }
    }

    /// Months overdue of household `n`'s health and utility signals (3 or
    /// more qualifies either).
    fn months(self, n: usize) -> (i64, i64) {
        match self {
            Mix::Stress => ((n % 5) as i64, (n % 4) as i64),
            Mix::Realistic => {
                // spread over the dongs and days, which follow n
                let r = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
                let r = r as i64;
                let health = if r < 20 { 3 + r % 3 } else { r % 3 };
                let utility = if (20..31).contains(&r) { 3 } else { r % 3 };
                (health, utility)
            }
        }
    }
}

/// Builds the state of `households` households, each with a health and a
/// utility signal (a realistic live state), then measures memory and the
/// time to make every dong's list.
async fn state_and_lists(spec: &PipelineSpec, households: usize, mix: Mix) {
    let mut engine = Engine::new(spec);
    let health = spec.feed_index("health-insurance").map(|f| f as u16);
    let utility = spec.feed_index("utility-arrears").map(|f| f as u16);
    let dongs = [
        "4125051000",
        "4125052000",
        "4125053500",
        "4125055000",
        "4125056500",
        "4125056600",
        "4125058000",
        "4125060000",
    ];
    let now = 1_795_000_000_000i64;
    let held_base = rss_bytes();
    let anonymous_base = anonymous_bytes();
    let base = state_memory();
    let started = Instant::now();
    let chunk = 20_000;
    let mut batch = Vec::with_capacity(chunk * 2);
    for start in (0..households).step_by(chunk) {
        batch.clear();
        for n in start..(start + chunk).min(households) {
            let hh = format!("kr-{n:09}");
            let dong = dongs[n % dongs.len()];
            let (months, utility_months) = mix.months(n);
            let day = 1 + n % 27;
            let h = format!(
                r#"{{"event_id":"h{n}","household_id":"{hh}","dong_code":"{dong}","observed_at":"2026-10-{day:02}T09:00:00+09:00","source":"nhis","months_overdue":{months},"amount_krw":{}}}"#,
                months * 210_000
            );
            let u = format!(
                r#"{{"event_id":"u{n}","household_id":"{hh}","dong_code":"{dong}","observed_at":"2026-11-{day:02}T09:00:00+09:00","source":"kepco","utility":"gas","months_overdue":{},"amount_krw":90000,"disconnected":false}}"#,
                utility_months
            );
            for (feed, json) in [(health, h), (utility, u)] {
                batch.push(InputMessage {
                    feed,
                    topic: std::sync::Arc::from(""),
                    partition: 0,
                    offset: 0,
                    key: Some(hh.as_bytes().to_vec()),
                    payload: Some(json.into_bytes()),
                    timestamp_ms: Some(now),
                    source_file: None,
                });
            }
        }
        engine
            .process_batch(&batch, ClockTime::from_ms(now))
            .await
            .expect("batch");
    }
    batch = Vec::new();
    drop(batch);
    let build_s = started.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(held_base);
    let anonymous = anonymous_bytes().saturating_sub(anonymous_base);
    let state = state_memory().saturating_sub(base);
    emit(json!({
        "bench": "memory_per_household",
        "mix": mix.name(),
        "households": engine.households(),
        "live_signals_per_household": 2,
        "rss_growth_bytes": rss,
        "bytes_per_household": rss / households.max(1) as u64,
        "anonymous_bytes_per_household": anonymous / households.max(1) as u64,
        "state_bytes_per_household": state / households.max(1) as u64,
        "build_seconds": round_to(build_s, 1),
        "target_bytes_per_household": 120,
    }));

    // The case state: what the alerted households' kept history costs, and
    // what an open case with its outcome adds.
    let (alerted, history_bytes) = engine.case_state_bytes();
    // of which the kept alerts themselves (the rest is the household's id,
    // the record's header, its shard and dong)
    let (mut with_alerts, mut without) = (0usize, 0usize);
    let mut encoded = Vec::new();
    let opened: Vec<InputMessage> = (0..households)
        .filter_map(|n| {
            let hh = format!("kr-{n:09}");
            let mut record = engine.case_record(&hh)?;
            record.encode(&mut encoded);
            with_alerts += encoded.len();
            record.alerts.clear();
            record.encode(&mut encoded);
            without += encoded.len();
            let value = format!(
                r#"{{"outcome_id":"c-{n}","household_id":"{hh}","dong_code":"{}","recorded_at":"2026-11-18T10:00:00+09:00","staff_id":"bench","kind":"case_opened","track":"case_management"}}"#,
                dongs[n % dongs.len()]
            );
            Some(InputMessage {
                feed: Some(spec.outcome_feed()),
                topic: std::sync::Arc::from(""),
                partition: 0,
                offset: 0,
                key: Some(hh.into_bytes()),
                payload: Some(value.into_bytes()),
                timestamp_ms: Some(now),
                source_file: None,
            })
        })
        .collect();
    for batch in opened.chunks(chunk) {
        engine
            .process_batch(batch, ClockTime::from_ms(now))
            .await
            .expect("outcomes");
    }
    let (_, with_cases) = engine.case_state_bytes();
    emit(json!({
        "bench": "case_state_bytes",
        "mix": mix.name(),
        "alerted_households": alerted,
        "record_bytes_per_alerted_household": history_bytes / alerted.max(1),
        "alert_history_bytes_per_alerted_household": (with_alerts - without) / alerted.max(1),
        "open_cases": opened.len(),
        "bytes_per_open_case_with_its_outcome": with_cases.saturating_sub(history_bytes) / opened.len().max(1),
        "measure": "record allocation (length, id, payload) + 8 B table slot; the allocator's size classes come on top",
        "target_history_bytes": 24,
        "target_case_bytes": 64 + 12,
    }));
    drop(opened);

    // Restart cost: copy the state, write it, read it back into a new
    // engine (beside the live one: about twice the state's memory, plus one
    // shard's file at a time).
    restart_cost(spec, &mut engine, now).await;

    let lists = DailyLists::new(spec).expect("lists");
    let out = std::env::temp_dir().join(format!("sagak-bench-lists-{}", std::process::id()));
    let started = Instant::now();
    let (manifest, _) = lists
        .make_day(
            &mut engine,
            &*sagak::store::open(&out).expect("lists folder"),
            ClockTime::from_ms(now + 86_400_000),
            &Default::default(),
        )
        .await
        .expect("lists");
    let lists_s = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    emit(json!({
        "bench": "daily_lists",
        "mix": mix.name(),
        "households_in_state": engine.households(),
        "households_listed": manifest.households,
        "seconds": round_to(lists_s, 2),
        "target_seconds_for_23m": 10,
    }));
}

/// Writes every shard of `engine` to snapshots, reads them back into a new
/// engine and prints the times and size.
async fn restart_cost(spec: &PipelineSpec, engine: &mut Engine, now: i64) {
    let dir = std::env::temp_dir().join(format!("sagak-bench-state-{}", std::process::id()));
    let folder = sagak::store::open(&dir).expect("state dir");
    snapshot_cost(spec, engine, now, folder, "checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    // the same against object storage, when a server is named (an
    // S3-compatible one on loopback: `weed mini`, bucket `sagak-bench`)
    if let Ok(endpoint) = std::env::var("SAGAK_BENCH_S3_ENDPOINT") {
        let at = sagak::store::Location {
            url: format!("s3://sagak-bench/run-{}", std::process::id()),
            endpoint,
            region: "us-east-1".into(),
            path_style: true,
            allow_http: true,
            access_key: Some(("sagak".into(), "sagak-bench".into())),
        };
        let store = at.open("state").expect("the bench's bucket");
        snapshot_cost(
            spec,
            engine,
            now,
            store.clone(),
            "checkpoint_object_storage",
        );
        for key in store.list("").unwrap_or_default() {
            let _ = store.delete(&key);
        }
    }
}

/// The loop's pause, the write beside it and a restart's restore, of one
/// snapshot of `engine` into `state`.
fn snapshot_cost(
    spec: &PipelineSpec,
    engine: &mut Engine,
    now: i64,
    state: sagak::store::SharedStore,
    bench: &str,
) {
    let store = sagak::checkpoint::ShardedStore::on(state.clone(), 1).expect("state store");
    // what the run loop waits for (eviction, then the copy), then the write
    // beside it
    let started = Instant::now();
    engine.on_watermark();
    let evict_s = started.elapsed().as_secs_f64();
    let state = engine.encode_state();
    let pause_s = started.elapsed().as_secs_f64();
    let copy_s = pause_s - evict_s;
    let started = Instant::now();
    let shards: Vec<i32> = state.shards.keys().copied().collect();
    let files = store
        .write_state(&spec.name, now, &state, shards, &[])
        .expect("snapshot");
    let write_s = started.elapsed().as_secs_f64();
    drop(state);
    let bytes: u64 = files
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let started = Instant::now();
    let mut restored = Engine::new(spec);
    store
        .each_newest(|s| restored.restore_shard(&s))
        .expect("load");
    let restore_s = started.elapsed().as_secs_f64();
    emit(json!({
        "bench": bench,
        "households": restored.households(),
        "snapshot_bytes": bytes,
        "loop_pause_seconds": round_to(pause_s, 3),
        "of_which_evict_seconds": round_to(evict_s, 3),
        "of_which_copy_seconds": round_to(copy_s, 3),
        "write_seconds": round_to(write_s, 2),
        "restart_restore_seconds": round_to(restore_s, 2),
    }));
    drop(restored);
}

/// Creates the input, alert and dead-letter topics of `settings`; returns
/// the input topics in feed order.
async fn create_topics(spec: &PipelineSpec, settings: &sagak::config::Settings) -> Vec<String> {
    let topics = settings.input_topics(spec);
    let mut all = topics.clone();
    all.push(settings.topics.alerts.clone());
    all.push(settings.topics.dlq.clone());
    sagak::kafka::create_topics(&settings.kafka, &all)
        .await
        .expect("topics");
    topics
}

/// A consumer of `topics` from their beginning, in its own group, with
/// auto-commit off and `extra` librdkafka properties.
fn reader(
    brokers: &str,
    group: &str,
    topics: &[String],
    extra: &[(&str, &str)],
) -> rdkafka::consumer::StreamConsumer {
    use rdkafka::consumer::Consumer;
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let consumer: rdkafka::consumer::StreamConsumer = cfg.create().expect("consumer");
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).expect("subscribe");
    consumer
}

/// Kafka mode on an in-process tansu broker (memory storage): a consume-only
/// loop against the sagak pipeline on the same preloaded topics, then the
/// event-to-alert latency at half the pipeline's rate.
async fn kafka_mode(spec: &PipelineSpec, households: usize) {
    use std::sync::Arc;
    use tansu_broker::broker::Broker;
    use tansu_broker::coordinator::group::administrator::Controller;
    use tansu_storage::StorageContainer;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19092);
    let url = url::Url::parse(&format!("tcp://127.0.0.1:{port}")).expect("url");
    tokio::spawn(async move {
        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("sagak-bench")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(url.clone())
            .listener(url)
            .storage(url::Url::parse("memory://tansu/").expect("url"))
            .silent(true)
            .build()
            .await
            .expect("broker");
        let _ = broker.serve(tokio::time::Instant::now()).await;
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let mut settings = sagak::config::Settings::default();
    settings.kafka.brokers = format!("127.0.0.1:{port}");
    settings.kafka.group_id = "bench-sagak".into();
    settings.kafka.create_topics = true;
    settings.kafka.static_assignment = true;
    settings.http.enabled = false;
    settings.lists.enabled = false;
    settings.engine.state_dir =
        std::env::temp_dir().join(format!("sagak-bench-kafka-{}", std::process::id()));
    let topics = create_topics(spec, &settings).await;

    let generated = generate(&GeneratorConfig {
        households,
        days: 180,
        ..GeneratorConfig::default()
    });
    let n = generated.messages.len();
    let topic_of = |feed: &str| {
        spec.feed_index(feed)
            .map(|i| topics[i].clone())
            .unwrap_or_default()
    };
    let sent =
        sagak::generate::publish::to_kafka(&settings.kafka, &generated.messages, topic_of, None)
            .await
            .expect("preload");

    let consumer = reader(&settings.kafka.brokers, "bench-consume-only", &topics, &[]);
    let mut read = 0;
    let mut started = None;
    while read < n {
        if consumer.recv().await.is_ok() {
            started.get_or_insert_with(Instant::now);
            read += 1;
        }
    }
    let consume_s = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    drop(consumer);

    let ops = Arc::new(sagak::ops::OpsState::new(spec, Metrics::new(spec), "kafka"));
    let watch = ops.clone();
    let started = Instant::now();
    let first_at = Arc::new(std::sync::OnceLock::new());
    let first = first_at.clone();
    let done = async move {
        loop {
            let received: u64 = watch
                .feeds
                .iter()
                .map(|f| {
                    watch
                        .metrics
                        .received
                        .with_label_values(&[f.as_str()])
                        .get()
                })
                .sum();
            if received > 0 {
                first.get_or_init(Instant::now);
            }
            if received as usize >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let summary = sagak::drivers::kafka::run(&settings, spec, ops.clone(), done)
        .await
        .expect("pipeline");
    let startup_s = first_at
        .get()
        .map_or(0.0, |f| f.duration_since(started).as_secs_f64());
    let pipeline_s = started.elapsed().as_secs_f64() - startup_s;
    let _ = std::fs::remove_dir_all(&settings.engine.state_dir);
    emit(json!({
        "bench": "kafka_mode_throughput",
        "messages": n,
        "preload_per_s": (sent.total() as f64 / sent.seconds).round(),
        "consume_only_per_s": (n as f64 / consume_s).round(),
        "pipeline_per_s": (summary.messages as f64 / pipeline_s).round(),
        "pipeline_startup_seconds": round_to(startup_s, 2),
        "ratio": round_to((summary.messages as f64 / pipeline_s) / (n as f64 / consume_s), 3),
        "alerts": summary.alerts,
        "target_ratio": 0.9,
    }));
    let pipeline_rate = summary.messages as f64 / pipeline_s;
    latency(
        spec,
        &settings,
        households / 4,
        (pipeline_rate / 2.0) as u64,
    )
    .await;
}

/// Event-to-alert latency at a fixed input rate: signals are produced at
/// `rate` per second to fresh topics while the pipeline runs; each alert's
/// latency is the time a consumer received it minus the broker timestamp of
/// the household's newest signal before it (so it includes the alert's
/// acknowledgement and one fetch by the dong office's consumer).
async fn latency(
    spec: &PipelineSpec,
    base: &sagak::config::Settings,
    households: usize,
    rate: u64,
) {
    use rdkafka::message::Message;
    use std::collections::HashMap;
    use std::sync::Arc;

    let mut settings = base.clone();
    for feed in &spec.feeds {
        settings
            .topics
            .inputs
            .insert(feed.name.clone(), format!("latency.{}", feed.name));
    }
    settings.topics.alerts = "latency.alerts".into();
    settings.topics.dlq = "latency.dlq".into();
    settings.kafka.group_id = "bench-latency".into();
    settings.engine.state_dir =
        std::env::temp_dir().join(format!("sagak-bench-latency-{}", std::process::id()));
    let topics = create_topics(spec, &settings).await;

    let ops = Arc::new(sagak::ops::OpsState::new(spec, Metrics::new(spec), "kafka"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run_settings = settings.clone();
    let run_spec = spec.clone();
    let run_ops = ops.clone();
    let pipeline = tokio::spawn(async move {
        sagak::drivers::kafka::run(&run_settings, &run_spec, run_ops, async {
            let _ = stopped.await;
        })
        .await
        .map(|s| s.alerts)
    });
    let alerts = reader(
        &settings.kafka.brokers,
        "bench-latency-alerts",
        std::slice::from_ref(&settings.topics.alerts),
        &[("fetch.wait.max.ms", "5")],
    );
    while ops.health.status().is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let generated = generate(&GeneratorConfig {
        households,
        days: 180,
        seed: 7,
        ..GeneratorConfig::default()
    });
    let feed_topics: HashMap<String, String> = spec
        .feeds
        .iter()
        .map(|f| f.name.clone())
        .zip(topics.iter().cloned())
        .collect();
    let kafka = settings.kafka.clone();
    let msgs = generated.messages;
    let producing = tokio::spawn(async move {
        let topic_of = |feed: &str| feed_topics.get(feed).cloned().unwrap_or_default();
        sagak::generate::publish::to_kafka(&kafka, &msgs, topic_of, Some(rate)).await
    });
    // alerts as (household, received at ms)
    let mut received: Vec<(String, i64)> = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(200), alerts.recv()).await {
            Ok(Ok(m)) => {
                let at = sagak::base::clock::wall_clock_ms();
                if let Some(hh) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                {
                    received.push((
                        hh["household_id"].as_str().unwrap_or_default().to_string(),
                        at,
                    ));
                }
                quiet_since = Instant::now();
            }
            _ if producing.is_finished() && quiet_since.elapsed().as_secs() >= 3 => break,
            _ => {}
        }
    }
    let sent = producing.await.expect("producer task").expect("produced");
    let _ = stop.send(());
    let _ = pipeline.await;

    // broker timestamps of every signal, per household
    let inputs = reader(
        &settings.kafka.brokers,
        "bench-latency-inputs",
        &topics,
        &[],
    );
    let mut stamps: HashMap<Vec<u8>, Vec<i64>> = HashMap::new();
    let mut read = 0;
    while read < sent.total() {
        match tokio::time::timeout(std::time::Duration::from_secs(10), inputs.recv()).await {
            Ok(Ok(m)) => {
                read += 1;
                if let (Some(k), Some(t)) = (m.key(), m.timestamp().to_millis()) {
                    stamps.entry(k.to_vec()).or_default().push(t);
                }
            }
            _ => break,
        }
    }
    for v in stamps.values_mut() {
        v.sort_unstable();
    }
    // (latency, received at) per alert
    let mut timed: Vec<(i64, i64)> = received
        .iter()
        .filter_map(|(hh, at)| {
            let times = stamps.get(hh.as_bytes())?;
            let before = times.partition_point(|t| t <= at);
            before.checked_sub(1).map(|i| (at - times[i], *at))
        })
        .collect();
    timed.sort_unstable();
    let first_at = timed.iter().map(|&(_, at)| at).min().unwrap_or(0);
    // where the slowest alerts fall in the run: start-up, or periodic work
    let slowest: Vec<serde_json::Value> = timed
        .iter()
        .rev()
        .take(5)
        .map(|&(ms, at)| json!({"ms": ms, "seconds_after_first_alert": (at - first_at) as f64 / 1000.0}))
        .collect();
    let latencies: Vec<i64> = timed.iter().map(|&(ms, _)| ms).collect();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    let _ = std::fs::remove_dir_all(&settings.engine.state_dir);
    emit(json!({
        "bench": "latency",
        "input_rate_per_s": rate,
        "signals": sent.total(),
        "alerts": latencies.len(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies.last().copied().unwrap_or(0),
        "slowest": slowest,
        "over_500_ms": latencies.iter().filter(|&&ms| ms > 500).count(),
        // steady state: alerts received more than a second into the run
        "max_ms_after_first_second": timed
            .iter()
            .filter(|&&(_, at)| at - first_at > 1_000)
            .map(|&(ms, _)| ms)
            .max()
            .unwrap_or(0),
        "flush_interval_ms": settings.engine.flush_interval_ms,
        "target_p99_ms": 200,
    }));
}
fn main() {
    // `RUST_LOG=sagak=info` shows sagak's own log lines on stderr, e.g. the
    // phases of the daily lists; the figures stay alone on stdout.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let national = args.iter().any(|a| a == "--national");
    // `--mix stress`: half the households at a priority (see `Mix`)
    let stress = args.windows(2).any(|w| w[0] == "--mix" && w[1] == "stress");
    let mix = if stress { Mix::Stress } else { Mix::Realistic };
    // `--only engine|kafka|state`: one part, e.g. under a profiler
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--rounds N`: engine and parse-only passes in alternation (default 5)
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });
    let want = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = spec();
    // One state size per process, so memory freed by a smaller run does not
    // hide the growth of a larger one.
    if let Some(n) = args
        .iter()
        .position(|a| a == "--one")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
    {
        runtime.block_on(state_and_lists(&spec, n, mix));
        return;
    }
    emit(json!({
        "bench": "machine",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    }));
    runtime.block_on(async {
        if want("engine") {
            engine_throughput(&spec, if quick { 20_000 } else { 1_000_000 }, rounds).await;
        }
        if want("kafka") {
            kafka_mode(&spec, if quick { 20_000 } else { 200_000 }).await;
        }
        if !want("state") {
            return;
        }
        let sizes: Vec<usize> = if quick {
            vec![50_000]
        } else if national {
            vec![1_000_000, 5_000_000, 23_000_000]
        } else {
            vec![1_000_000, 5_000_000]
        };
        let exe = std::env::current_exe().expect("bench executable");
        for n in sizes {
            let status = std::process::Command::new(&exe)
                .args(["--one", &n.to_string(), "--mix", mix.name()])
                .status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                emit(json!({"bench": "memory_per_household", "households": n, "error": format!("{status:?}")}));
            }
        }
    });
}

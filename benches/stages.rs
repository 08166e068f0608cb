//! Criterion micro-benchmarks of the hot stages, so a change to one stage
//! can be judged on its own:
//!
//! ```sh
//! cargo bench --bench stages               # all stages
//! cargo bench --bench stages -- window     # one stage
//! ```
//!
//! `live_board` is the dashboard's board of the most urgent households per
//! dong, which the run loop updates after each batch.
//!
//! Every stage gets the same micro-batch: 10,000 generated messages of the
//! demo's city (a realistic mix of feeds, ~200-byte JSON), decoded once up
//! front for the stages after decode.
//! `score_steady` scores instead the last batch of a 180-day city, whose
//! households already hold history: the state the engine benchmark runs in.

use std::hint::black_box;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sagak::definition::PipelineSpec;
use sagak::generate::{generate, GeneratorConfig};
use sagak::ops::{LiveView, TOP_PER_DONG};
use sagak::stages::alert::{Alert, AlertGate, AlertReason, PipelineTag};
use sagak::stages::decode::Decoder;
use sagak::stages::score::Priority;
use sagak::stages::score::Scorer;
use sagak::stages::window::HouseholdWindows;

/// The allocator of the `sagak` binary (src/main.rs), so the figures are
/// the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 10_000;

fn spec() -> PipelineSpec {
    PipelineSpec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default").as_ref())
        .expect("default pipeline")
}

/// One micro-batch: (feed, key, payload) of the first `BATCH` valid-feed
/// messages of a generated city.
fn messages(spec: &PipelineSpec) -> Vec<(u16, Vec<u8>, Vec<u8>)> {
    let cfg = GeneratorConfig {
        households: 20_000,
        malformed_share: 0.0,
        late_share: 0.0,
        ..GeneratorConfig::default()
    };
    generate(&cfg)
        .messages
        .into_iter()
        .filter_map(|m| {
            let feed = spec.feed_index(m.feed)? as u16;
            Some((feed, m.key.unwrap_or_default(), m.payload))
        })
        .take(BATCH)
        .collect()
}

const NOW: i64 = 1_900_000_000_000;

fn decode_all(decoder: &mut Decoder, msgs: &[(u16, Vec<u8>, Vec<u8>)]) -> RecordBatch {
    for (i, (feed, key, payload)) in msgs.iter().enumerate() {
        let _ = decoder.decode(i as u32, *feed, Some(key), Some(payload), NOW);
    }
    decoder.finish()
}

/// The `signals` table of the last micro-batch of a 180-day city of 20,000
/// households, after the window stage has taken in every batch before it.
fn steady_table(spec: &PipelineSpec) -> RecordBatch {
    let cfg = GeneratorConfig {
        households: 20_000,
        days: 180,
        malformed_share: 0.0,
        late_share: 0.0,
        ..GeneratorConfig::default()
    };
    let msgs: Vec<(u16, Vec<u8>, Vec<u8>)> = generate(&cfg)
        .messages
        .into_iter()
        .filter_map(|m| {
            Some((
                spec.feed_index(m.feed)? as u16,
                m.key.unwrap_or_default(),
                m.payload,
            ))
        })
        .collect();
    let mut windows = HouseholdWindows::new(spec);
    let mut decoder = Decoder::new(spec);
    let mut table = RecordBatch::new_empty(sagak::stages::signal::signal_table_schema());
    for batch in msgs.chunks(BATCH) {
        table = windows
            .process_batch(&decode_all(&mut decoder, batch), &[], &[])
            .table;
    }
    table
}

fn stages(c: &mut Criterion) {
    let spec = spec();
    let msgs = messages(&spec);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Elements(msgs.len() as u64));
    group.sample_size(20);

    let mut decoder = Decoder::new(&spec);
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decode_all(&mut decoder, &msgs)))
    });

    let decoded = decode_all(&mut Decoder::new(&spec), &msgs);
    group.bench_function("window", |b| {
        b.iter_batched(
            || HouseholdWindows::new(&spec),
            |mut windows| black_box(windows.process_batch(&decoded, &[], &[]).table.num_rows()),
            BatchSize::LargeInput,
        )
    });

    let table = HouseholdWindows::new(&spec)
        .process_batch(&decoded, &[], &[])
        .table;
    let scorer = Scorer::new(&spec);
    // assessments made from one `signals` table
    let score = |signals: &RecordBatch| {
        runtime
            .block_on(scorer.assess(signals.clone()))
            .expect("scoring runs")
            .len()
    };
    group.bench_function("score", |b| b.iter(|| score(&table)));

    // Scoring in steady state: the households a batch touches already hold
    // history (the engine benchmark's 180 days), so the table has more rows
    // per message and more households reach a priority than in the first
    // batch above.
    let steady = steady_table(&spec);
    group.bench_function("score_steady", |b| b.iter(|| score(&steady)));

    // The fixed cost of one scoring query (planning and start-up), on the
    // smallest table: one household.
    let one = table.slice(0, 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("score_one_household", |b| b.iter(|| score(&one)));
    group.throughput(Throughput::Elements(msgs.len() as u64));

    let assessments = runtime
        .block_on(scorer.assess(table.clone()))
        .expect("scoring runs");
    group.bench_function("alert", |b| {
        b.iter_batched(
            || (AlertGate::new(&spec), assessments.clone()),
            |(mut gate, batch)| black_box(gate.process_batch(batch, NOW, |_| 0).alerts.len()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The dashboard board at national scale: 3,500 dongs with full lists take
/// in a batch of 10,000 alerts spread over them (the run loop does this
/// after every batch that alerts).
fn live_board(c: &mut Criterion) {
    const DONGS: usize = 3_500;
    let tag = Arc::new(PipelineTag {
        name: "default".into(),
        version: "1".into(),
    });
    let alert = |n: usize, score: f64| Alert {
        alert_id: format!("al-{n}"),
        household_id: format!("hh-{n:08}"),
        dong_code: format!("41{:08}", n % DONGS),
        priority: Priority::ALL[n % 3],
        score,
        reasons: vec![AlertReason {
            signal: "job-loss".into(),
            category: "employment".into(),
            detail: "job lost".into(),
            detail_ko: "실직".into(),
            observed_at: NOW,
            months_overdue: None,
            amount_krw: None,
        }],
        categories: vec!["employment".into()],
        first_signal_at: NOW,
        last_signal_at: NOW,
        emitted_at: NOW,
        pipeline: Arc::clone(&tag),
        case: Default::default(),
    };
    let full: Vec<Alert> = (0..DONGS * TOP_PER_DONG)
        .map(|n| alert(n, (n % 97) as f64))
        .collect();
    let batch: Vec<Alert> = (0..BATCH)
        .map(|n| alert(DONGS * TOP_PER_DONG + n, (n % 89) as f64))
        .collect();
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("live_board", |b| {
        b.iter_batched(
            || {
                let view = LiveView::new(sagak::base::civil::LocalClock::from_hours(9));
                view.record(&full);
                view
            },
            |view| {
                view.record(&batch);
                black_box(view)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, stages, live_board);
criterion_main!(benches);

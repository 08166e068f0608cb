//! Criterion micro-benchmarks of the hot stages, so a change to one stage
//! can be judged on its own:
//!
//! ```sh
//! cargo bench --bench stages               # all stages
//! cargo bench --bench stages -- window     # one stage
//! ```
//!
//! Every stage gets the same micro-batch: 10,000 generated messages of the
//! demo's city (a realistic mix of feeds, ~200-byte JSON), decoded once up
//! front for the stages after decode.

use std::hint::black_box;

use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sagak::alert::AlertGate;
use sagak::decode::Decoder;
use sagak::generate::{generate, GeneratorConfig};
use sagak::pipeline::PipelineSpec;
use sagak::score::Scorer;
use sagak::window::HouseholdWindows;

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
            |mut windows| black_box(windows.process_batch(&decoded, &[]).table.num_rows()),
            BatchSize::LargeInput,
        )
    });

    let table = HouseholdWindows::new(&spec)
        .process_batch(&decoded, &[])
        .table;
    let scorer = Scorer::new(&spec);
    group.bench_function("score", |b| {
        b.iter(|| {
            runtime
                .block_on(scorer.process_batch(table.clone()))
                .expect("scoring runs")
                .len()
        })
    });

    // The fixed cost of one scoring query (planning and start-up), on the
    // smallest table: one household.
    let one = table.slice(0, 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("score_one_household", |b| {
        b.iter(|| {
            runtime
                .block_on(scorer.process_batch(one.clone()))
                .expect("scoring runs")
                .len()
        })
    });
    group.throughput(Throughput::Elements(msgs.len() as u64));

    let assessments = runtime
        .block_on(scorer.process_batch(table.clone()))
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

criterion_group!(benches, stages);
criterion_main!(benches);

//! The driver core on a simulated clock: batches, lists at the cut-off, the
//! metrics the on-call reads.

use std::convert::Infallible;

use super::*;
use crate::base::clock::SimulatedClock;
use crate::engine::BatchResult;
use crate::metrics::Metrics;
use crate::testkit::{default_spec, health, input, job_loss, NOW};

/// The tests' start, on the driver's clock.
const START: ClockTime = ClockTime::from_ms(NOW);

/// Outputs that keep what they were given.
#[derive(Default)]
struct Kept {
    alerts: Vec<String>,
    batches: usize,
}

impl Outputs for Kept {
    type Error = Infallible;

    async fn deliver(
        &mut self,
        result: &BatchResult,
        _: &[InputMessage],
    ) -> Result<(), Infallible> {
        self.batches += 1;
        self.alerts
            .extend(result.alerts.iter().map(|a| a.household_id.clone()));
        Ok(())
    }
}

fn three_households(spec: &crate::definition::PipelineSpec) -> Vec<InputMessage> {
    vec![
        input(
            spec,
            "health-insurance",
            "hh-1",
            health("h1", "hh-1", "2026-11-01", 5),
        ),
        input(
            spec,
            "job-loss",
            "hh-2",
            job_loss("j2", "hh-2", "2026-11-02", "4125052000"),
        ),
        input(
            spec,
            "health-insurance",
            "hh-3",
            health("h3", "hh-3", "2026-11-03", 1),
        ),
    ]
}

/// A core on `clock` of batches of 100, its lists under `dir` from `NOW`.
fn listing_core<'o>(
    spec: &crate::definition::PipelineSpec,
    ops: &'o OpsState,
    clock: &SimulatedClock,
    dir: std::path::PathBuf,
    on_failure: OnListFailure,
) -> DriverCore<'o, SimulatedClock> {
    let schedule = ListSchedule::new(
        DailyLists::new(spec).expect("lists"),
        crate::store::open(&dir).expect("store"),
        START,
        on_failure,
    );
    let engine = Engine::new(spec);
    DriverCore::new(engine, clock.clone(), ops, 100).with_lists(schedule)
}

/// An output folder in which no list can be written: its `lists` is a
/// file.
fn blocked_lists(dir: &std::path::Path) -> std::path::PathBuf {
    let blocked = dir.join("blocked");
    std::fs::create_dir_all(&blocked).expect("folder");
    std::fs::write(blocked.join("lists"), b"x").expect("file");
    blocked
}

/// What the on-call sees of a morning's lists: how long they took, how
/// many households were listed and when, and a failure counted while the
/// core goes on.
#[tokio::test]
async fn daily_lists_report_their_time_size_and_failures_as_metrics() {
    let spec = default_spec();
    let metrics = Metrics::new(&spec);
    let ops = OpsState::new(&spec, metrics.clone(), "test");
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = SimulatedClock::at(START);
    let mut core = listing_core(
        &spec,
        &ops,
        &clock,
        dir.path().to_path_buf(),
        OnListFailure::LogAndContinue,
    );
    let mut out = Kept::default();
    for m in three_households(&spec) {
        core.push(m);
    }
    let cutoff = core.next_cutoff().expect("lists are on");
    assert!(cutoff > START && cutoff.since(START) <= DAY_MS);

    // before the cut-off the timer does nothing, not even flush
    clock.set(cutoff.minus(1));
    assert_eq!(core.tick(&mut out).await.expect("tick"), 0);
    assert_eq!((out.batches, core.buffered()), (0, 3));

    // at the cut-off the batch in flight goes first, so the list has it
    clock.set(cutoff);
    assert_eq!(core.tick(&mut out).await.expect("tick"), 1);
    assert_eq!((out.batches, core.buffered()), (1, 0));
    // hh-3's one month of arrears reaches no priority
    assert_eq!(metrics.lists.households.get(), 2);
    assert_eq!(core.last_list().map(|m| m.households), Some(2));
    assert!(metrics.lists.written_at.get() * 1000 > NOW);
    assert_eq!(metrics.lists.seconds.get_sample_count(), 1);
    assert_eq!(metrics.lists.failures.get(), 0);
    assert_eq!(core.next_cutoff(), Some(cutoff.plus(DAY_MS)));

    // an output folder whose `lists` is a file: counted, and the core goes on
    let blocked = blocked_lists(dir.path());
    let mut core = listing_core(&spec, &ops, &clock, blocked, OnListFailure::LogAndContinue);
    metrics.lists.written_at.set(0);
    clock.set(cutoff.plus(2 * DAY_MS));
    assert_eq!(
        core.tick(&mut out)
            .await
            .expect("a failed list does not stop it"),
        3
    );
    assert_eq!(metrics.lists.failures.get(), 3);
    assert_eq!(metrics.lists.written_at.get(), 0);
    assert_eq!(metrics.lists.seconds.get_sample_count(), 4);
}

/// A driver that must stop on a failed list (the demo) gets the error.
#[tokio::test]
async fn a_failed_list_stops_a_core_that_is_told_to_stop() {
    let spec = default_spec();
    let metrics = Metrics::new(&spec);
    let ops = OpsState::new(&spec, metrics.clone(), "test");
    let dir = tempfile::tempdir().expect("temp dir");
    let blocked = blocked_lists(dir.path());
    let clock = SimulatedClock::at(START);
    let mut core = listing_core(&spec, &ops, &clock, blocked, OnListFailure::Stop);
    clock.set(START.plus(DAY_MS));
    let err = core.tick(&mut Kept::default()).await.expect_err("stops");
    assert!(matches!(err, DriverError::Lists(_)), "{err}");
}

/// A full batch says so, and what the engine sends reaches the outputs
/// and the live view, stamped with the core's clock.
#[tokio::test]
async fn a_batch_is_cut_at_its_size_and_delivered_at_the_clocks_time() {
    let spec = default_spec();
    let metrics = Metrics::new(&spec);
    let ops = OpsState::new(&spec, metrics.clone(), "test");
    let clock = SimulatedClock::at(START);
    let engine = Engine::new(&spec);
    let mut core = DriverCore::new(engine, clock.clone(), &ops, 2);
    let mut msgs = three_households(&spec).into_iter();
    assert!(!core.push(msgs.next().expect("one")));
    assert!(core.push(msgs.next().expect("two")), "the second fills it");
    let mut out = Kept::default();
    assert_eq!(core.flush(&mut out).await.expect("flush"), 2);
    assert_eq!(out.alerts, ["hh-1", "hh-2"]);
    assert_eq!(core.counts().alerts, 2);
    assert_eq!(core.counts().messages, 2);
    let board = ops.live.snapshot();
    assert!(board.values().flatten().any(|h| h.household_id == "hh-1"));
    // an empty batch delivers nothing
    assert_eq!(core.flush(&mut out).await.expect("flush"), 0);
    assert_eq!(out.batches, 1);
}

/// Two instances sharing the partitions of one group, each holding its own
/// half of the state, write one complete list per dong between them: the
/// same files, byte for byte, as one instance that holds everything.
#[tokio::test]
async fn two_instances_sharing_the_partitions_write_one_complete_list_per_dong() {
    let spec = default_spec();
    let msgs = crate::testkit::city();
    let last = msgs
        .iter()
        .filter_map(|m| m.timestamp_ms)
        .max()
        .unwrap_or(0);
    let shared_dir = tempfile::tempdir().expect("temp dir");
    let alone_dir = tempfile::tempdir().expect("temp dir");
    let metrics = Metrics::new(&spec);
    let ops = OpsState::new(&spec, metrics.clone(), "test");
    let clock = SimulatedClock::at(ClockTime::from_ms(last));
    let core = |owned: Option<Vec<i32>>, dir: &std::path::Path| {
        let mut schedule = ListSchedule::new(
            DailyLists::new(&spec).expect("lists"),
            crate::store::open(dir).expect("store"),
            ClockTime::from_ms(last),
            OnListFailure::Stop,
        );
        if let Some(owned) = owned {
            schedule = schedule.shared(SharedLists {
                partitions: 4,
                owned: Box::new(move || owned.iter().map(|&p| (p, 1)).collect()),
            });
        }
        DriverCore::new(Engine::new(&spec), clock.clone(), &ops, 1_000).with_lists(schedule)
    };
    let mut first = core(Some(vec![0, 1]), shared_dir.path());
    let mut second = core(Some(vec![2, 3]), shared_dir.path());
    let mut alone = core(None, alone_dir.path());
    let mut out = Kept::default();
    // the same batches, split by partition: a household's signals meet in
    // the same batch either way, so its alerts (and their count on the
    // list) are the same too
    for batch in msgs.chunks(1_000) {
        for m in batch {
            let instance = if m.partition < 2 {
                &mut first
            } else {
                &mut second
            };
            instance.push(m.clone());
            alone.push(m.clone());
        }
        for core in [&mut first, &mut second, &mut alone] {
            core.flush(&mut out).await.expect("flush");
        }
    }
    clock.set(alone.next_cutoff().expect("lists on"));
    assert_eq!(alone.tick(&mut out).await.expect("lists"), 1);
    let day = alone.last_list().expect("a list").date.clone();

    // the first instance's parts alone make no day
    first.tick(&mut out).await.expect("parts");
    assert!(first.last_list().is_none());
    let lists_of = |dir: &std::path::Path| dir.join("lists").join(&day);
    assert!(
        !lists_of(shared_dir.path()).exists(),
        "half a day is never shown"
    );
    // the second instance's parts complete it
    second.tick(&mut out).await.expect("parts and the day");
    let manifest = second.last_list().expect("assembled").clone();
    let expected = alone.last_list().expect("alone").clone();
    assert!(expected.households > 10, "{} listed", expected.households);
    assert_eq!(manifest.households, expected.households);
    let files = |dir: std::path::PathBuf| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("the day's folder")
            .flatten()
            .filter(|e| e.file_name() != "manifest.json")
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("file"),
                )
            })
            .collect();
        files.sort();
        files
    };
    let (shared, one) = (
        files(lists_of(shared_dir.path())),
        files(lists_of(alone_dir.path())),
    );
    assert_eq!(shared.len(), one.len());
    for ((name, a), (_, b)) in shared.iter().zip(&one) {
        assert!(
            a == b,
            "{name} differs between the shared and the single instance"
        );
    }
    // the first instance finds the day complete on its next tick, and
    // leaves the day the second one wrote as it is
    first.tick(&mut out).await.expect("retry");
    assert_eq!(
        first.last_list().map(|m| m.households),
        Some(expected.households)
    );
    assert_eq!(
        first.last_list().map(|m| m.written_at.clone()),
        Some(manifest.written_at.clone()),
        "not written a second time"
    );
    assert_eq!(
        ops.metrics.lists.households.get() as usize,
        expected.households
    );
}

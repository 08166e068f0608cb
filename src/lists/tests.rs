use super::*;
use crate::base::time::ClockTime;
use crate::stages::score::{Priority, Reason};
use crate::testkit::{default_spec, split_csv};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;

/// The lists' store in the folder `dir`.
fn store_at(dir: &Path) -> crate::store::SharedStore {
    crate::store::open(dir).expect("store")
}

const DAY: i64 = 86_400_000;
/// 2026-11-22T06:00+09:00
const CUTOFF: i64 = 1_795_294_800_000;

fn assessment(hh: &str, dong: &str, p: Priority, score: f64, days_ago: i64) -> Assessment {
    let t = CUTOFF - days_ago * DAY;
    Assessment {
        household_id: hh.into(),
        dong_code: dong.into(),
        priority: p,
        score,
        window_end: t,
        categories: vec!["health".into()],
        reasons: vec![Reason {
            signal: "health-insurance".into(),
            category: "health".into(),
            detail: "health insurance premium 5 months overdue (1,230,000 KRW)".into(),
            detail_ko: "건강보험료 5개월 체납 (1,230,000원), \"독촉\"".into(),
            observed_at: t,
            months_overdue: Some(5),
            amount_krw: Some(1_230_000),
        }],
        first_signal_at: t - 10 * DAY,
        last_signal_at: t,
        evidence: 0,
    }
}

async fn make(assessments: &[Assessment], previous: &[&str]) -> (tempfile::TempDir, Manifest) {
    make_with(assessments, previous, |_| CaseColumns::default()).await
}

async fn make_with(
    assessments: &[Assessment],
    previous: &[&str],
    case: impl Fn(&Assessment) -> CaseColumns,
) -> (tempfile::TempDir, Manifest) {
    let lists = DailyLists::new(&default_spec()).unwrap();
    let previous: HashSet<String> = previous.iter().map(|s| s.to_string()).collect();
    let candidates = lists
        .candidates(assessments, |_| None, case, &previous, CUTOFF)
        .unwrap();
    let ranked = lists.rank(vec![candidates]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let date = lists.list_day_at(ClockTime::from_ms(CUTOFF));
    assert_eq!(date.to_string(), "2026-11-22");
    let manifest = lists
        .write(&*store_at(dir.path()), date, &ranked, CUTOFF)
        .unwrap();
    (dir, manifest)
}

fn csv_rows(dir: &Path, file: &str) -> (String, Vec<Vec<String>>) {
    csv_rows_on(dir, "2026-11-22", file)
}

fn csv_rows_on(dir: &Path, date: &str, file: &str) -> (String, Vec<Vec<String>>) {
    let bytes = std::fs::read(dir.join("lists").join(date).join(file)).unwrap();
    assert_eq!(&bytes[..3], b"\xef\xbb\xbf", "UTF-8 BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header = lines.next().unwrap().to_string();
    let rows = lines.map(split_csv).collect();
    (header, rows)
}

#[tokio::test]
async fn each_dong_gets_a_ranked_list_with_korean_reasons() {
    let a = [
        assessment("hh-low", "4125052000", Priority::P3, 150.0, 1),
        assessment("hh-top", "4125052000", Priority::P1, 300.0, 2),
        assessment("hh-mid", "4125052000", Priority::P2, 260.0, 3),
        assessment("hh-mid2", "4125052000", Priority::P2, 280.0, 3),
    ];
    let (dir, manifest) = make(&a, &[]).await;
    let (header, rows) = csv_rows(dir.path(), "4125052000.csv");
    assert!(
        header.starts_with("순위 rank,가구ID household_id,우선순위 priority"),
        "{header}"
    );
    let order: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(order, vec!["hh-top", "hh-mid2", "hh-mid", "hh-low"]);
    let ranks: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ranks, vec!["1", "2", "3", "4"]);
    assert_eq!(
        rows[0][16], "건강보험료 5개월 체납 (1,230,000원), \"독촉\"",
        "Korean text and quotes round-trip"
    );
    assert_eq!(rows[0][18], "2026-11-10", "first signal date in local time");
    assert_eq!(rows[0][20], "12", "days since the first signal");
    assert_eq!(
        (
            rows[0][4].as_str(),
            rows[0][5].as_str(),
            rows[0][7].as_str()
        ),
        ("신규", "N", "N"),
        "status, open (no alert yet: no office has it), overdue"
    );
    let l = manifest
        .lists
        .iter()
        .find(|l| l.list == "4125052000")
        .unwrap();
    assert_eq!((l.households, l.p1, l.p2, l.p3), (4, 1, 2, 1));
    assert_eq!(l.name_ko, "생연2동");
    assert_eq!(
        manifest.lists.len(),
        9,
        "8 served dongs and the unassigned list, empty or not"
    );
    let (_, empty) = csv_rows(dir.path(), "4125051000.csv");
    assert!(empty.is_empty());
}

#[tokio::test]
async fn unserved_dongs_go_to_the_unassigned_list_and_stale_households_drop_off() {
    let a = [
        assessment("hh-elsewhere", "4163051000", Priority::P2, 200.0, 1),
        assessment("hh-stale", "4125052000", Priority::P1, 300.0, 120),
    ];
    let (dir, manifest) = make(&a, &[]).await;
    let (_, rows) = csv_rows(dir.path(), "unassigned.csv");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "hh-elsewhere");
    assert_eq!(rows[0][24], "4163051000");
    assert_eq!(
        manifest.households, 1,
        "a household whose evidence left the window is not listed"
    );
}

/// The list follows the work queue's order (unreachable, then overdue,
/// then new) and carries the same open work; the city team's escalations
/// list has the overdue and unreachable; households in case management
/// are on their dong's cases list instead.
#[tokio::test]
async fn open_work_leads_in_the_queues_order_and_cases_have_their_own_list() {
    use crate::stages::case::outcome::{ContactResult, OutcomeKind, Track};
    use crate::stages::case::record::CaseRecord;
    let spec = default_spec();
    let tag = std::sync::Arc::new(crate::stages::alert::PipelineTag {
        name: spec.name.clone(),
        version: spec.version.clone(),
    });
    let book = crate::stages::case::CaseBook::new(&spec, tag);
    let a = [
        assessment("hh-top", "4125052000", Priority::P1, 300.0, 1),
        assessment("hh-overdue", "4125052000", Priority::P3, 100.0, 1),
        assessment("hh-gone", "4125052000", Priority::P3, 90.0, 1),
        assessment("hh-case", "4125052000", Priority::P1, 310.0, 1),
    ];
    use crate::testkit::{held_outcome as held, kept_alert as alert};
    let record = |hh: &str| {
        let mut r = CaseRecord::new(0, 4125052000);
        match hh {
            // a P3 alert 16 days old: due after 14, two days over
            "hh-overdue" => r.alerts.push(alert(Priority::P3, CUTOFF - 16 * DAY)),
            "hh-gone" => {
                r.alerts.push(alert(Priority::P3, CUTOFF - 5 * DAY));
                for (i, days) in [4, 3, 2].into_iter().enumerate() {
                    let at = CUTOFF - days * DAY;
                    r.outcomes.push(held(
                        i as u32 + 1,
                        OutcomeKind::ContactAttempted,
                        ContactResult::NoAnswer.code(),
                        at,
                    ));
                }
            }
            "hh-case" => {
                r.opened_with = Some((Priority::P2, 1));
                r.outcomes.push(held(
                    9,
                    OutcomeKind::CaseOpened,
                    Track::CaseManagement.code(),
                    CUTOFF - 30 * DAY,
                ));
            }
            _ => return None,
        }
        Some(r)
    };
    let case = |a: &Assessment| CaseColumns {
        worsened: a.household_id == "hh-case",
        case: record(&a.household_id).map(|r| book.open_work(&r, CUTOFF)),
    };
    let (dir, manifest) = make_with(&a, &[], case).await;
    let (header, rows) = csv_rows(dir.path(), "4125052000.csv");
    let col = |name: &str| {
        header
            .split(',')
            .position(|h| h.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {header}"))
    };
    let order: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(order, ["hh-gone", "hh-overdue", "hh-top"], "cases apart");
    assert_eq!(rows[0][col("status")], "소재파악 필요");
    assert_eq!(rows[0][col("attempts")], "3");
    assert_eq!(rows[0][col("last_outcome")], "연락 시도 (응답 없음)");
    assert_eq!(
        (
            rows[1][col("overdue")].as_str(),
            rows[1][col("overdue_days")].as_str(),
            rows[1][col("due_date")].as_str(),
            rows[1][col("next_step")].as_str()
        ),
        ("Y", "2", "2026-11-20", "D+2 초과")
    );
    assert_eq!(
        rows[2][col("open")],
        "N",
        "never alerted: no office has it yet"
    );
    let (header, cases) = csv_rows(dir.path(), "4125052000.cases.csv");
    assert!(header.contains("사례관리경과일"), "{header}");
    assert_eq!(cases.len(), 1);
    assert_eq!(
        (
            cases[0][1].as_str(),
            cases[0][5].as_str(),
            cases[0][6].as_str()
        ),
        ("hh-case", "30", "Y"),
        "case age and worsened"
    );
    let (_, escalated) = csv_rows(dir.path(), "escalations.csv");
    let reasons: Vec<(&str, &str)> = escalated
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("hh-gone", "unreachable"), ("hh-overdue", "overdue")]
    );
    assert_eq!(
        manifest.households, 3,
        "cases are not counted as candidates"
    );
    assert_eq!(
        manifest.cases.iter().map(|l| l.households).sum::<usize>(),
        1
    );
    assert_eq!(manifest.escalations.as_ref().map(|l| l.households), Some(2));
    assert!(manifest
        .cases
        .iter()
        .any(|l| l.csv.file == "4125052000.cases.csv"));
}

#[tokio::test]
async fn new_since_the_previous_list_is_marked() {
    let a = [
        assessment("hh-old", "4125052000", Priority::P2, 200.0, 1),
        assessment("hh-new", "4125052000", Priority::P3, 100.0, 1),
    ];
    let (dir, manifest) = make(&a, &["hh-old"]).await;
    let (_, rows) = csv_rows(dir.path(), "4125052000.csv");
    assert_eq!((rows[0][1].as_str(), rows[0][21].as_str()), ("hh-old", "N"));
    assert_eq!((rows[1][1].as_str(), rows[1][21].as_str()), ("hh-new", "Y"));
    assert_eq!(manifest.lists.iter().map(|l| l.new).sum::<usize>(), 1);
}

#[tokio::test]
async fn parquet_is_compressed_has_the_documented_schema_and_the_manifest_checksums_match() {
    let a = [assessment("hh-1", "4125060000", Priority::P1, 300.0, 1)];
    let (dir, manifest) = make(&a, &[]).await;
    let day = dir.path().join("lists/2026-11-22");
    let file = std::fs::File::open(day.join("4125060000.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    // kept for years: every column is compressed with a codec all readers take
    for group in reader.metadata().row_groups() {
        for column in group.columns() {
            assert_eq!(
                column.compression(),
                parquet::basic::Compression::SNAPPY,
                "{}",
                column.column_path()
            );
        }
    }
    let schema = reader.schema().clone();
    for (name, ty) in [
        ("rank", DataType::UInt64),
        ("household_id", DataType::Utf8),
        ("priority", DataType::Utf8),
        ("score", DataType::Float64),
        ("first_signal_date", DataType::Date32),
        ("new_since_previous_list", DataType::Boolean),
        ("times_alerted_before", DataType::Int64),
        ("reasons_ko", DataType::Utf8),
    ] {
        let field = schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("no column {name}"));
        assert_eq!(field.data_type(), &ty, "{name}");
    }
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 1);
    let text = std::fs::read_to_string(day.join("manifest.json")).unwrap();
    let read: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(read.households, 1);
    for l in &manifest.lists {
        for f in [&l.csv, &l.parquet] {
            let bytes = std::fs::read(day.join(&f.file)).unwrap();
            use sha2::Digest;
            assert_eq!(f.sha256, format!("{:x}", sha2::Sha256::digest(&bytes)));
        }
    }
    let lists = DailyLists::new(&default_spec()).unwrap();
    assert_eq!(
        lists.households_on(&*store_at(dir.path()), read_date()),
        HashSet::from(["hh-1".to_string()])
    );
}

fn read_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

/// Every shard of `engine` through a format-3 snapshot in `dir`, restored
/// into a new engine for `spec`; `scoring` replaces the fingerprint the
/// snapshot records (`None`: as sagak before it wrote them).
fn restored(
    engine: &crate::engine::Engine,
    spec: &PipelineSpec,
    dir: &Path,
    scoring: impl FnOnce(Option<u64>) -> Option<u64>,
) -> crate::engine::Engine {
    let store = crate::checkpoint::ShardedStore::open(dir, 2).unwrap();
    let mut state = engine.encode_state();
    state.scoring = scoring(state.scoring);
    let shards: Vec<i32> = state.shards.keys().copied().collect();
    store
        .write_state("default", 0, &state, shards, &[])
        .unwrap();
    let mut after = crate::engine::Engine::new(spec);
    store.each_newest(|s| after.restore_shard(&s)).unwrap();
    after
}

/// The files of one list day, by name, without the manifest (it holds the
/// time it was written).
fn list_files(dir: &Path, date: NaiveDate) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> =
        std::fs::read_dir(dir.join("lists").join(date.to_string()))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != "manifest.json")
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
    files.sort();
    files
}

/// The lists re-score only the households with an alert mark; they must
/// come out byte for byte as when every household is re-scored.
#[tokio::test]
async fn lists_from_the_marked_households_equal_lists_from_every_household() {
    let spec = default_spec();
    let mut engine = crate::engine::Engine::new(&spec);
    let msgs = crate::testkit::city();
    for batch in msgs.chunks(1_000) {
        let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
        engine
            .process_batch(batch, ClockTime::from_ms(now))
            .await
            .unwrap();
    }
    let last = msgs.iter().filter_map(|m| m.timestamp_ms).max().unwrap();
    let lists = DailyLists::new(&spec).unwrap();
    let date = lists.list_day_at(ClockTime::from_ms(last));
    let cutoff = lists.cutoff(date);

    let (marked, marked_only) = engine.list_candidates();
    assert!(marked_only, "an engine that scored every signal itself");
    let marked = marked.len();
    assert!(
        marked < engine.households() / 2,
        "{marked} of {} households marked: most hold signals below any priority",
        engine.households()
    );

    // the same state, restored as if its marks came from another scoring
    let dir = tempfile::tempdir().unwrap();
    let mut every = restored(&engine, &spec, &dir.path().join("state"), |_| None);
    assert!(
        !every.list_candidates().1,
        "unknown scoring: every household"
    );

    let by_marks = dir.path().join("by-marks");
    let by_all = dir.path().join("by-all");
    let (manifest, _) = lists
        .make_day(&mut engine, &*store_at(&by_marks), cutoff, &HashSet::new())
        .await
        .unwrap();
    lists
        .make_day(&mut every, &*store_at(&by_all), cutoff, &HashSet::new())
        .await
        .unwrap();
    assert!(manifest.households > 10, "{} listed", manifest.households);
    assert_eq!(list_files(&by_marks, date), list_files(&by_all, date));
    // the full re-scoring found nothing unmarked, and marks suffice again
    let (after, marked_only) = every.list_candidates();
    assert!(marked_only);
    assert_eq!(after.len(), marked);
}

/// After a restart under a changed scoring SQL, the first lists re-score
/// every household and mark those the new SQL puts at a priority: later
/// lists keep them, and the mark holds no alert of theirs back.
#[tokio::test]
async fn a_changed_scoring_lists_the_households_it_newly_finds_and_still_alerts_them() {
    use crate::testkit::{health, input, NOW};
    let old = default_spec();
    let mut new = default_spec();
    let strict = "s.category = 'health' AND COALESCE(s.months_overdue, 0) >= 3";
    assert!(
        new.score_sql.contains(strict),
        "the default health threshold"
    );
    new.score_sql = new.score_sql.replace(
        strict,
        "s.category = 'health' AND COALESCE(s.months_overdue, 0) >= 1",
    );

    let mut before = crate::engine::Engine::new(&old);
    let batch = [
        input(
            &old,
            "health-insurance",
            "hh-2m",
            health("a", "hh-2m", "2026-11-01", 2),
        ),
        input(
            &old,
            "health-insurance",
            "hh-5m",
            health("b", "hh-5m", "2026-11-02", 5),
        ),
    ];
    let result = before
        .process_batch(&batch, ClockTime::from_ms(NOW))
        .await
        .unwrap();
    assert_eq!(
        result.alerts.len(),
        1,
        "two months is below the old threshold"
    );

    let dir = tempfile::tempdir().unwrap();
    let same = restored(&before, &old, &dir.path().join("same"), |s| s);
    assert!(same.list_candidates().1, "same scoring: its marks still do");
    let mut after = restored(&before, &new, &dir.path().join("new"), |s| s);
    assert!(
        !after.list_candidates().1,
        "another scoring: every household"
    );

    let lists = DailyLists::new(&new).unwrap();
    let day = lists.list_day_at(ClockTime::from_ms(NOW));
    let out = dir.path().join("lists");
    let both: HashSet<String> = ["hh-2m", "hh-5m"].map(String::from).into();
    for date in [day, day + Duration::days(1)] {
        lists
            .make_day(
                &mut after,
                &*store_at(&out),
                lists.cutoff(date),
                &HashSet::new(),
            )
            .await
            .unwrap();
        assert_eq!(lists.households_on(&*store_at(&out), date), both, "{date}");
        assert!(after.list_candidates().1, "marked after the first lists");
    }
    assert_eq!(after.alert_mark("hh-2m").map(|m| m.count), Some(0));

    // still P3: only the mark could hold it back
    let batch = [input(
        &new,
        "health-insurance",
        "hh-2m",
        health("c", "hh-2m", "2026-11-03", 3),
    )];
    let result = after
        .process_batch(&batch, ClockTime::from_ms(NOW))
        .await
        .unwrap();
    assert_eq!(result.suppressed, 0);
    assert_eq!(
        result.alerts.len(),
        1,
        "the household's first alert is sent"
    );
    assert_eq!(after.alert_mark("hh-2m").map(|m| m.count), Some(1));
}

/// A household alerted once whose arrears were then paid keeps its mark
/// (the cooldown needs it) but is re-scored and left off the list.
#[tokio::test]
async fn a_household_no_longer_at_a_priority_stays_listed_until_someone_reaches_it() {
    use crate::testkit::{health, input, NOW};
    let spec = default_spec();
    let mut engine = crate::engine::Engine::new(&spec);
    let alerted = [input(
        &spec,
        "health-insurance",
        "hh-paid",
        health("a", "hh-paid", "2026-11-01", 5),
    )];
    assert_eq!(
        engine
            .process_batch(&alerted, ClockTime::from_ms(NOW))
            .await
            .unwrap()
            .alerts
            .len(),
        1
    );
    let paid = [input(
        &spec,
        "health-insurance",
        "hh-paid",
        health("b", "hh-paid", "2026-11-05", 0),
    )];
    engine
        .process_batch(&paid, ClockTime::from_ms(NOW))
        .await
        .unwrap();
    assert_eq!(engine.list_candidates().0, ["hh-paid"]);

    let lists = DailyLists::new(&spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (manifest, on_list) = lists
        .make_day(
            &mut engine,
            &*store_at(dir.path()),
            lists.cutoff(lists.list_day_at(ClockTime::from_ms(NOW))),
            &HashSet::new(),
        )
        .await
        .unwrap();
    // nobody reached it: it stays on its dong's list (as on the queue)
    // until someone does, with no score (its evidence no longer counts)
    assert_eq!(manifest.households, 1);
    assert_eq!(on_list, HashSet::from(["hh-paid".to_string()]));
    let (header, rows) = csv_rows_on(dir.path(), &manifest.date.to_string(), "4125052000.csv");
    let col = |name: &str| header.split(',').position(|h| h.ends_with(name)).unwrap();
    assert_eq!(
        (
            rows[0][col("open")].as_str(),
            rows[0][col("score")].as_str()
        ),
        ("Y", "0.0")
    );
}

/// The list of a day counts exactly the signals of the window that ends at
/// its cut-off, whatever eviction has dropped: one 91 days old no longer
/// counts, even while it is still held because the household's own window
/// (ending at its newest signal) still reaches it.
#[tokio::test]
async fn a_list_counts_exactly_the_window_that_ends_at_its_cut_off() {
    use crate::testkit::{health, input, job_loss, NOW};
    let spec = default_spec();
    let mut engine = crate::engine::Engine::new(&spec);
    let lists = DailyLists::new(&spec).unwrap();
    let date = lists.list_day_at(ClockTime::from_ms(NOW));
    let cutoff = lists.cutoff(date);
    // 09:00 Korea time, so "92 days before the list day" is 91 days and 21
    // hours before its 06:00 cut-off: outside the 90-day window
    let day = |before: i64| (date - chrono::Duration::days(before)).to_string();
    let batch = vec![
        input(
            &spec,
            "health-insurance",
            "hh-old",
            health("h1", "hh-old", &day(92), 5),
        ),
        input(
            &spec,
            "health-insurance",
            "hh-both",
            health("h2", "hh-both", &day(92), 5),
        ),
        input(
            &spec,
            "job-loss",
            "hh-both",
            job_loss("j2", "hh-both", &day(10), "4125052000"),
        ),
    ];
    let result = engine
        .process_batch(&batch, ClockTime::from_ms(NOW))
        .await
        .unwrap();
    // in the stream, hh-both's window ends at its job loss and holds both
    let streamed: Vec<_> = result
        .alerts
        .iter()
        .map(|a| (a.household_id.as_str(), a.priority))
        .collect();
    assert_eq!(
        streamed,
        [("hh-both", Priority::P2), ("hh-old", Priority::P3)]
    );
    assert_eq!(engine.households(), 2, "nothing evicted yet");

    let dir = tempfile::tempdir().unwrap();
    let (manifest, on_list) = lists
        .make_day(&mut engine, &*store_at(dir.path()), cutoff, &HashSet::new())
        .await
        .unwrap();
    // hh-old's evidence left the window, but nobody reached it: it stays,
    // after hh-both (no score)
    assert_eq!(
        on_list,
        HashSet::from(["hh-both".to_string(), "hh-old".to_string()])
    );
    assert_eq!(manifest.households, 2);
    let file = dir.path().join(format!("lists/{date}/4125052000.csv"));
    let text = String::from_utf8(std::fs::read(file).unwrap()[3..].to_vec()).unwrap();
    let row = split_csv(text.split("\r\n").nth(1).unwrap());
    assert_eq!(
        (row[1].as_str(), row[2].as_str()),
        ("hh-both", "P3"),
        "listed at the priority its 10-day-old job loss gives alone"
    );
}

/// After a change of scoring, lists made of parts mark what the new
/// scoring finds in every partition, as a whole day made at once does, so
/// the next day's lists (from the marks alone) miss no partition.
#[tokio::test]
async fn parts_after_a_change_of_scoring_mark_every_partition() {
    let spec = default_spec();
    let mut engine = crate::engine::Engine::new(&spec);
    let msgs = crate::testkit::city();
    for batch in msgs.chunks(1_000) {
        let now = batch.last().and_then(|m| m.timestamp_ms).unwrap_or(0);
        engine
            .process_batch(batch, ClockTime::from_ms(now))
            .await
            .unwrap();
    }
    let last = msgs.iter().filter_map(|m| m.timestamp_ms).max().unwrap();
    let lists = DailyLists::new(&spec).unwrap();
    let cutoff = lists.cutoff(lists.list_day_at(ClockTime::from_ms(last)));
    let dir = tempfile::tempdir().unwrap();

    // a looser health threshold finds households no alert marked
    let mut looser = default_spec();
    let strict = "s.category = 'health' AND COALESCE(s.months_overdue, 0) >= 3";
    assert!(looser.score_sql.contains(strict));
    looser.score_sql = looser.score_sql.replace(
        strict,
        "s.category = 'health' AND COALESCE(s.months_overdue, 0) >= 1",
    );
    let mut whole = restored(&engine, &looser, &dir.path().join("a"), |s| s);
    lists
        .make_day(
            &mut whole,
            &*store_at(&dir.path().join("whole")),
            cutoff,
            &HashSet::new(),
        )
        .await
        .unwrap();
    let before = engine.list_candidates().0.len();
    let mut parted = restored(&engine, &looser, &dir.path().join("b"), |s| s);
    assert!(
        !parted.list_candidates().1,
        "unknown scoring: every household"
    );
    lists
        .write_parts(
            &mut parted,
            &*store_at(&dir.path().join("parts")),
            cutoff,
            &[(0, 1), (1, 1), (2, 1), (3, 1)],
            &HashSet::new(),
        )
        .await
        .unwrap();
    let (marked, marked_only) = parted.list_candidates();
    assert!(marked_only);
    let mut marked: Vec<&str> = marked;
    marked.sort_unstable();
    let (expected, _) = whole.list_candidates();
    let mut expected: Vec<&str> = expected;
    expected.sort_unstable();
    assert!(
        expected.len() > before,
        "the looser scoring marks more: {} against {before}",
        expected.len()
    );
    assert_eq!(marked, expected);
}

#[tokio::test]
async fn categories_read_the_same_in_korean_and_in_the_pipelines_order_and_no_id_becomes_a_formula()
{
    let mut one = assessment("hh-a", "4125052000", Priority::P1, 300.0, 1);
    one.categories = vec!["health".into(), "utility".into()];
    let mut two = assessment("-2-3", "4125052000", Priority::P1, 290.0, 1);
    two.categories = vec!["utility".into(), "health".into()];
    let (dir, _) = make(&[one, two], &[]).await;
    let (header, rows) = csv_rows(dir.path(), "4125052000.csv");
    let at = |name: &str| header.split(',').position(|h| h.ends_with(name)).unwrap();
    let (ko, en) = (at("위기유형"), at("categories"));
    for r in &rows {
        assert_eq!(
            r[ko], "공과금 체납, 건강보험료 체납",
            "one Excel filter finds both"
        );
        assert_eq!(r[en], "utility, health");
    }
    // Excel would compute `-2-3`; it reads `'-2-3` as text
    assert_eq!(rows[1][1], "'-2-3");
    let mut cell = String::new();
    crate::lists::csv_field(&mut cell, "-3");
    assert_eq!(cell, "-3", "a plain number stays a number");
}

use super::*;
use crate::score::{Priority, Reason};
use crate::testkit::default_spec;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
        }],
        first_signal_at: t - 10 * DAY,
        last_signal_at: t,
    }
}

async fn make(assessments: &[Assessment], previous: &[&str]) -> (tempfile::TempDir, Manifest) {
    let lists = DailyLists::new(&default_spec()).unwrap();
    let previous: HashSet<String> = previous.iter().map(|s| s.to_string()).collect();
    let candidates = lists
        .candidates(assessments, |_| None, &previous, CUTOFF)
        .unwrap();
    let ranked = lists.rank(vec![candidates]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let date = lists.list_day_at(CUTOFF);
    assert_eq!(date.to_string(), "2026-11-22");
    let manifest = lists.write(dir.path(), date, &ranked, CUTOFF).unwrap();
    (dir, manifest)
}

fn csv_rows(dir: &Path, file: &str) -> (String, Vec<Vec<String>>) {
    let bytes = std::fs::read(dir.join("lists/2026-11-22").join(file)).unwrap();
    assert_eq!(&bytes[..3], b"\xef\xbb\xbf", "UTF-8 BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header = lines.next().unwrap().to_string();
    let rows = lines.map(split_csv).collect();
    (header, rows)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
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
        rows[0][5], "건강보험료 5개월 체납 (1,230,000원), \"독촉\"",
        "Korean text and quotes round-trip"
    );
    assert_eq!(rows[0][7], "2026-11-10", "first signal date in local time");
    assert_eq!(rows[0][9], "12", "days since the first signal");
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
    assert_eq!(rows[0][12], "4163051000");
    assert_eq!(
        manifest.households, 1,
        "a household whose evidence left the window is not listed"
    );
}

#[tokio::test]
async fn new_since_the_previous_list_is_marked() {
    let a = [
        assessment("hh-old", "4125052000", Priority::P2, 200.0, 1),
        assessment("hh-new", "4125052000", Priority::P3, 100.0, 1),
    ];
    let (dir, manifest) = make(&a, &["hh-old"]).await;
    let (_, rows) = csv_rows(dir.path(), "4125052000.csv");
    assert_eq!((rows[0][1].as_str(), rows[0][10].as_str()), ("hh-old", "N"));
    assert_eq!((rows[1][1].as_str(), rows[1][10].as_str()), ("hh-new", "Y"));
    assert_eq!(manifest.lists.iter().map(|l| l.new).sum::<usize>(), 1);
}

#[tokio::test]
async fn parquet_has_the_documented_schema_and_the_manifest_checksums_match() {
    let a = [assessment("hh-1", "4125060000", Priority::P1, 300.0, 1)];
    let (dir, manifest) = make(&a, &[]).await;
    let day = dir.path().join("lists/2026-11-22");
    let file = std::fs::File::open(day.join("4125060000.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
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
        lists.households_on(dir.path(), read_date()),
        HashSet::from(["hh-1".to_string()])
    );
}

fn read_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

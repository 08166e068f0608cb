use super::*;
use crate::stages::decode::Decoder;
use crate::stages::window::HouseholdWindows;
use crate::testkit::{default_spec, health, job_loss, utility, NOW};

/// Runs decode -> window -> score over one batch per inner slice and returns
/// the assessments of the last batch.
async fn assess(batches: &[&[(&str, String)]]) -> Vec<Assessment> {
    let spec = default_spec();
    let mut windows = HouseholdWindows::new(&spec);
    let scorer = Scorer::new(&spec);
    let mut last = Vec::new();
    for msgs in batches {
        let mut d = Decoder::new(&spec);
        for (i, (feed, json)) in msgs.iter().enumerate() {
            let hh = serde_json::from_str::<serde_json::Value>(json).unwrap()["household_id"]
                .as_str()
                .unwrap()
                .to_string();
            let f = spec.feed_index(feed).unwrap() as u16;
            d.decode(i as u32, f, Some(hh.as_bytes()), Some(json.as_bytes()), NOW)
                .expect("valid");
        }
        let out = windows.process_batch(&d.finish(), &[], &[]);
        last = scorer.assess(out.table).await.expect("scoring runs");
    }
    last
}

const U: &str = "utility-arrears";
const H: &str = "health-insurance";
const J: &str = "job-loss";

#[tokio::test]
async fn three_categories_make_p1_with_explained_reasons() {
    let a = assess(&[&[
        (U, utility("u1", "hh-1", "2026-10-01", "water", 3, false)),
        (J, job_loss("j1", "hh-1", "2026-10-10", "4125052000")),
        (H, health("h1", "hh-1", "2026-10-20", 5)),
    ]])
    .await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].priority, Priority::P1);
    assert_eq!(categories(&a[0]), vec!["utility", "employment", "health"]);
    assert_eq!(a[0].reasons.len(), 3);
    assert_eq!(
        a[0].reasons[2].detail,
        "health insurance premium 5 months overdue (1,230,000 KRW)"
    );
    assert_eq!(
        a[0].reasons[2].detail_ko,
        "건강보험료 5개월 체납 (1,230,000원)"
    );
    assert!(a[0].first_signal_at < a[0].last_signal_at);
}

#[tokio::test]
async fn a_single_weak_signal_gives_nothing() {
    assert!(
        assess(&[&[(U, utility("u1", "hh-1", "2026-10-01", "gas", 1, false))]])
            .await
            .is_empty()
    );
    assert!(assess(&[&[(H, health("h1", "hh-1", "2026-10-01", 2))]])
        .await
        .is_empty());
}

#[tokio::test]
async fn priorities_follow_the_rules() {
    let one = assess(&[&[(H, health("h1", "hh-1", "2026-10-01", 3))]]).await;
    assert_eq!(one[0].priority, Priority::P3);
    let cut = assess(&[&[(
        U,
        utility("u1", "hh-1", "2026-10-01", "electricity", 1, true),
    )]])
    .await;
    assert_eq!(cut[0].priority, Priority::P2, "a disconnection alone is P2");
    let two = assess(&[&[
        (U, utility("u1", "hh-1", "2026-10-01", "gas", 3, false)),
        (H, health("h1", "hh-1", "2026-10-02", 3)),
    ]])
    .await;
    assert_eq!(two[0].priority, Priority::P2);
    let cut_and_job = assess(&[&[
        (
            U,
            utility("u1", "hh-1", "2026-10-01", "electricity", 0, true),
        ),
        (J, job_loss("j1", "hh-1", "2026-10-02", "4125052000")),
    ]])
    .await;
    assert_eq!(
        cut_and_job[0].priority,
        Priority::P1,
        "a disconnection with another category is P1"
    );
}

#[tokio::test]
async fn a_later_signal_supersedes_and_paid_off_arrears_stop_counting() {
    let paid = assess(&[
        &[
            (U, utility("u1", "hh-1", "2026-10-01", "gas", 4, false)),
            (H, health("h1", "hh-1", "2026-10-01", 4)),
        ],
        &[(U, utility("u2", "hh-1", "2026-10-15", "gas", 0, false))],
    ])
    .await;
    assert_eq!(paid.len(), 1);
    assert_eq!(
        paid[0].priority,
        Priority::P3,
        "gas paid off: only health is left"
    );
    assert_eq!(categories(&paid[0]), vec!["health"]);
    // an older notice that arrives later does not supersede a newer one
    let out_of_order = assess(&[
        &[
            (U, utility("u2", "hh-1", "2026-10-15", "gas", 0, false)),
            (H, health("h1", "hh-1", "2026-10-01", 4)),
        ],
        &[(U, utility("u1", "hh-1", "2026-10-01", "gas", 4, false))],
        // a later signal on another subject makes the household be scored again
        &[(U, utility("u3", "hh-1", "2026-10-16", "water", 0, false))],
    ])
    .await;
    assert_eq!(out_of_order[0].priority, Priority::P3);
    assert_eq!(
        categories(&out_of_order[0]),
        vec!["health"],
        "the late gas notice (4 months) did not replace the paid one"
    );
    // different utilities do not supersede each other
    let two_utilities = assess(&[&[
        (U, utility("u1", "hh-1", "2026-10-01", "gas", 4, false)),
        (U, utility("u2", "hh-1", "2026-10-05", "water", 0, false)),
    ]])
    .await;
    assert_eq!(two_utilities[0].priority, Priority::P3);
}

#[tokio::test]
async fn signals_further_apart_than_the_window_are_not_joined() {
    let apart = assess(&[&[
        (H, health("h1", "hh-1", "2026-06-01", 4)),
        (J, job_loss("j1", "hh-1", "2026-10-01", "4125052000")),
    ]])
    .await;
    assert_eq!(apart[0].priority, Priority::P3);
    assert_eq!(categories(&apart[0]), vec!["employment"]);
}

#[tokio::test]
async fn a_household_that_moved_is_sent_to_its_new_dong() {
    let moved = assess(&[&[
        (H, health("h1", "hh-1", "2026-10-01", 4)),
        (J, job_loss("j1", "hh-1", "2026-10-05", "4125060000")),
    ]])
    .await;
    assert_eq!(moved[0].dong_code, "4125060000");
}

#[tokio::test]
async fn score_rises_with_months_amounts_and_disconnection() {
    let score_of = |a: Vec<Assessment>| a[0].score;
    let base = score_of(assess(&[&[(H, health("h1", "hh-1", "2026-10-01", 3))]]).await);
    let longer = score_of(assess(&[&[(H, health("h1", "hh-1", "2026-10-01", 9))]]).await);
    assert!(longer > base, "{longer} > {base}");
    let gas =
        score_of(assess(&[&[(U, utility("u1", "hh-1", "2026-10-01", "gas", 3, false))]]).await);
    let gas_cut =
        score_of(assess(&[&[(U, utility("u1", "hh-1", "2026-10-01", "gas", 3, true))]]).await);
    assert!(gas_cut > gas);
    let two = score_of(
        assess(&[&[
            (U, utility("u1", "hh-1", "2026-10-01", "gas", 3, false)),
            (H, health("h1", "hh-1", "2026-10-01", 3)),
        ]])
        .await,
    );
    assert!(two > gas && two > base, "more categories score higher");
}

#[tokio::test]
async fn the_sql_is_checked_at_start_up() {
    let spec = default_spec();
    Scorer::new(&spec)
        .check()
        .await
        .expect("default SQL honours the contract");
    let mut broken = spec.clone();
    broken.score_sql = "SELECT household_id FROM signals".into();
    let err = Scorer::new(&broken).check().await.unwrap_err();
    assert!(
        err.to_string().contains("must return column `dong_code`"),
        "{err}"
    );
}

/// An assessment's categories as text, to compare with literals.
fn categories(a: &Assessment) -> Vec<&str> {
    a.categories.iter().map(|c| &**c).collect()
}

/// A row of [`result_batch`]: household (`None`: a row the contract
/// ignores), priority, feed, subject, months overdue.
type ResultRow<'a> = (Option<&'a str>, &'a str, &'a str, &'a str, i64);

/// One result batch of the output contract.
fn result_batch(rows: &[ResultRow<'_>]) -> RecordBatch {
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    };
    let text = |f: &dyn Fn(&ResultRow<'_>) -> Option<String>| {
        Arc::new(rows.iter().map(f).collect::<StringArray>()) as ArrayRef
    };
    let ints = |v: i64| Arc::new(Int64Array::from(vec![v; rows.len()])) as ArrayRef;
    RecordBatch::try_from_iter(vec![
        ("household_id", text(&|r| r.0.map(str::to_string))),
        ("dong_code", text(&|_| Some("4111100000".into()))),
        ("priority", text(&|r| Some(r.1.into()))),
        (
            "score",
            Arc::new(Float64Array::from(vec![150.0; rows.len()])) as ArrayRef,
        ),
        ("window_end", ints(NOW)),
        ("feed", text(&|r| Some(r.2.into()))),
        (
            "category",
            text(&|r| Some(if r.2 == H { "health" } else { "utility" }.into())),
        ),
        ("subject", text(&|r| Some(r.3.into()))),
        ("kind", text(&|_| None)),
        (
            "months_overdue",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))) as ArrayRef,
        ),
        ("amount_krw", ints(1_230_000)),
        (
            "disconnected",
            Arc::new(BooleanArray::from(vec![false; rows.len()])) as ArrayRef,
        ),
        (
            "occurred_on",
            Arc::new(Date32Array::from(vec![None; rows.len()])) as ArrayRef,
        ),
        ("observed_at", ints(NOW)),
        (
            "event_key",
            Arc::new(UInt64Array::from(
                (0..rows.len() as u64).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "newest_event_key",
            Arc::new(UInt64Array::from(vec![7u64; rows.len()])) as ArrayRef,
        ),
    ])
    .expect("a batch of the output contract")
}

#[test]
fn a_household_split_over_two_result_batches_is_one_assessment() {
    // DataFusion cuts its output into batches of 8,192 rows wherever they
    // fall, so one household's reasons may end in the next batch
    let spec = default_spec();
    let scorer = Scorer::new(&spec);
    let mut scored = Scored::new(&scorer);
    let first = result_batch(&[
        (Some("hh-1"), "P3", H, "premium", 3),
        (Some("hh-2"), "P2", U, "gas", 3),
    ]);
    let second = result_batch(&[
        (None, "P2", U, "ignored", 9),
        (Some("hh-2"), "P2", U, "water", 4),
        (Some("hh-3"), "P3", H, "premium", 5),
    ]);
    for batch in [&first, &second] {
        let columns = scorer.columns(batch).expect("contract columns");
        scored.index(columns).expect("valid priorities");
    }
    let candidates: Vec<_> = scored.candidates().collect();
    let ids: Vec<_> = candidates.iter().map(|c| c.household_id).collect();
    assert_eq!(ids, ["hh-1", "hh-2", "hh-3"]);
    assert_eq!(candidates[1].priority, Priority::P2);
    assert_eq!(candidates[1].window_end, NOW);

    let split = scored.assessment(1).expect("hh-2 is indexed");
    let details: Vec<_> = split.reasons.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "gas bill 3 months overdue (1,230,000 KRW)",
            "water bill 4 months overdue (1,230,000 KRW)"
        ]
    );
    assert_eq!(categories(&split), ["utility"]);
    assert_eq!(scored.assessment(2).map(|a| a.reasons.len()), Some(1));
    assert!(scored.assessment(3).is_none());
}

#[test]
fn a_priority_outside_the_contract_is_an_error_naming_the_column() {
    let spec = default_spec();
    let scorer = Scorer::new(&spec);
    let mut scored = Scored::new(&scorer);
    let batch = result_batch(&[(Some("hh-1"), "P4", H, "premium", 3)]);
    let columns = scorer.columns(&batch).expect("contract columns");
    let err = scored.index(columns).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("priority"), "{err}");
}

/// The evidence names the decision: the same signals give the same
/// evidence in any run, and a newer signal gives another even when the
/// reasons stay the same (an alert sent then is another alert).
#[tokio::test]
async fn the_evidence_follows_the_reasons_and_the_newest_signal() {
    let first: &[(&str, String)] = &[(H, health("h1", "hh-1", "2026-10-01", 5))];
    let once = assess(&[first]).await;
    let again = assess(&[first]).await;
    assert_eq!(once.len(), 1);
    assert_eq!(
        once[0].evidence, again[0].evidence,
        "a replay gives the same"
    );

    // a paid-off gas bill: newer, not a reason; the reasons are unchanged
    let paid: &[(&str, String)] = &[(U, utility("u1", "hh-1", "2026-10-05", "gas", 0, false))];
    let later = assess(&[first, paid]).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].reasons, once[0].reasons);
    assert_ne!(later[0].evidence, once[0].evidence);

    // another reason: another evidence
    let worse: &[(&str, String)] = &[(J, job_loss("j1", "hh-1", "2026-10-05", "4125052000"))];
    let two = assess(&[first, worse]).await;
    assert_eq!(two[0].reasons.len(), 2);
    assert_ne!(two[0].evidence, once[0].evidence);
    assert_ne!(two[0].evidence, later[0].evidence);
}

#[tokio::test]
async fn a_table_scores_the_same_whole_as_household_by_household() {
    // 120 households of three signals: 360 rows run with a larger batch
    // size than a household alone
    let msgs: Vec<(&str, String)> = (0..120)
        .flat_map(|n| {
            let hh = format!("hh-{n:03}");
            [
                (
                    U,
                    utility(
                        &format!("u{n}"),
                        &hh,
                        "2026-10-01",
                        "water",
                        3 + n % 3,
                        n % 7 == 0,
                    ),
                ),
                (
                    J,
                    job_loss(&format!("j{n}"), &hh, "2026-10-10", "4125052000"),
                ),
                (H, health(&format!("h{n}"), &hh, "2026-10-20", 2 + n % 4)),
            ]
        })
        .collect();
    let whole = assess(&[&msgs]).await;
    assert_eq!(whole.len(), 120, "every household reaches a priority");
    let mut one_by_one = Vec::new();
    for household in msgs.chunks(3) {
        one_by_one.extend(assess(&[household]).await);
    }
    assert_eq!(whole, one_by_one);
}

use super::*;
use crate::testkit::default_spec;

fn assessment(hh: &str, p: Priority, day: i64) -> Assessment {
    let t = 1_790_000_000_000 + day * DAY_MS;
    Assessment {
        household_id: hh.into(),
        dong_code: "4125052000".into(),
        priority: p,
        score: 100.0,
        window_end: t,
        categories: vec!["health".into()],
        reasons: Vec::new(),
        first_signal_at: t - 5 * DAY_MS,
        last_signal_at: t,
        evidence: u128::from(t as u64),
    }
}

#[test]
fn decide_marks_only_the_candidates_it_sends() {
    let mut g = AlertGate::new(&default_spec());
    let t = 1_790_000_000_000;
    let c = |hh, priority, day: i64| Candidate {
        household_id: hh,
        priority,
        window_end: t + day * DAY_MS,
    };
    let first = g.decide(
        &[c("hh-1", Priority::P3, 0), c("hh-2", Priority::P2, 0)],
        |_| 7,
    );
    assert_eq!(first, [Some(7), Some(7)]);
    // in one batch, the second look at a household sees the first's mark
    let second = g.decide(
        &[
            c("hh-1", Priority::P3, 1),
            c("hh-2", Priority::P1, 1),
            c("hh-2", Priority::P1, 2),
        ],
        |_| 9,
    );
    assert_eq!(
        second,
        [None, Some(7), None],
        "a marked household keeps its shard"
    );
    let hh1 = g.mark("hh-1").expect("marked when sent");
    assert_eq!(
        (hh1.priority, hh1.count, hh1.at, hh1.shard),
        (Priority::P3, 1, t, 7)
    );
    let hh2 = g.mark("hh-2").expect("marked when sent");
    // a held-back candidate leaves the mark as the last alert set it
    assert_eq!(
        (hh2.priority, hh2.count, hh2.at),
        (Priority::P1, 2, t + DAY_MS)
    );
    assert_eq!(hh2.shard, 7, "a household keeps its shard");
}

#[test]
fn escalation_emits_and_same_priority_repeats_do_not() {
    let mut g = AlertGate::new(&default_spec());
    let now = 1_800_000_000_000;
    assert_eq!(
        g.process_batch(vec![assessment("hh-1", Priority::P3, 0)], now, |_| 0)
            .alerts
            .len(),
        1
    );
    let repeat = g.process_batch(vec![assessment("hh-1", Priority::P3, 2)], now, |_| 0);
    assert_eq!((repeat.alerts.len(), repeat.suppressed), (0, 1));
    let up = g.process_batch(vec![assessment("hh-1", Priority::P2, 3)], now, |_| 0);
    assert_eq!(up.alerts.len(), 1);
    assert_eq!(up.alerts[0].priority, Priority::P2);
    let down = g.process_batch(vec![assessment("hh-1", Priority::P3, 4)], now, |_| 0);
    assert_eq!(
        down.suppressed, 1,
        "a lower priority within the cooldown is not sent"
    );
    let p1 = g.process_batch(vec![assessment("hh-1", Priority::P1, 5)], now, |_| 0);
    assert_eq!(p1.alerts.len(), 1);
    assert_eq!(g.mark("hh-1").map(|m| m.count), Some(3));
}

#[test]
fn after_the_cooldown_the_same_priority_is_sent_again() {
    let mut g = AlertGate::new(&default_spec());
    g.process_batch(vec![assessment("hh-1", Priority::P2, 0)], 0, |_| 0);
    assert_eq!(
        g.process_batch(vec![assessment("hh-1", Priority::P2, 29)], 0, |_| 0)
            .alerts
            .len(),
        0
    );
    assert_eq!(
        g.process_batch(vec![assessment("hh-1", Priority::P2, 30)], 0, |_| 0)
            .alerts
            .len(),
        1
    );
}

#[test]
fn times_are_written_as_chrono_writes_them() {
    let chrono = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    // leap days, century rules, before 1970, the last millisecond of a year
    let mut cases = vec![
        0,
        -1,
        951_782_400_000,
        951_868_799_999,
        4_107_542_400_000,
        -2_203_891_200_001,
        1_798_761_599_999,
        253_402_300_799_999,
        -62_167_219_200_000,
    ];
    // and a spread over four centuries
    let mut x: i64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cases.push(x.rem_euclid(12_600_000_000_000) - 3_000_000_000_000);
    }
    for ms in cases {
        assert_eq!(rfc3339(ms), chrono(ms), "{ms}");
    }
    assert_eq!(rfc3339(i64::MAX / 1000), chrono(i64::MAX / 1000));
}

#[test]
fn alert_ids_are_deterministic_and_distinct() {
    let a = alert_id("hh-1", Priority::P1, 1000);
    assert_eq!(a, alert_id("hh-1", Priority::P1, 1000));
    assert_eq!(a.len(), 35);
    // the id's spelling is part of the contract: consumers deduplicate
    // by it across restarts and upgrades
    let hash = crate::base::hash::fnv1a128(&[b"hh-1", b"P1", &1000_u128.to_le_bytes()]);
    assert_eq!(a, format!("al-{hash:032x}"));
    assert_ne!(a, alert_id("hh-1", Priority::P2, 1000));
    assert_ne!(a, alert_id("hh-2", Priority::P1, 1000));
    assert_ne!(a, alert_id("hh-1", Priority::P1, 1001));
}

#[test]
fn alert_json_follows_the_wire_contract() {
    let mut g = AlertGate::new(&default_spec());
    let mut a = assessment("hh-1", Priority::P1, 0);
    a.reasons.push(crate::stages::score::Reason {
        signal: "health-insurance".into(),
        category: "health".into(),
        detail: "premium arrears 3 months".into(),
        detail_ko: "건강보험료 3개월 체납".into(),
        observed_at: a.first_signal_at,
        months_overdue: Some(3),
        amount_krw: Some(738_000),
    });
    let out = g.process_batch(vec![a], 1_800_000_000_000, |_| 0);
    let v = serde_json::to_value(&out.alerts[0]).unwrap();
    for key in [
        "alert_id",
        "household_id",
        "dong_code",
        "priority",
        "score",
        "reasons",
        "categories",
        "first_signal_at",
        "last_signal_at",
        "emitted_at",
        "pipeline",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["priority"], "P1");
    assert_eq!(v["pipeline"]["name"], "default");
    assert_eq!(v["emitted_at"], "2027-01-15T08:00:00.000Z");
    assert_eq!(v["first_signal_at"], "2026-09-16T14:13:20.000Z");
    assert_eq!(v["last_signal_at"], "2026-09-21T14:13:20.000Z");
    assert_eq!(v["categories"], serde_json::json!(["health"]));
    assert_eq!(
        v["reasons"][0],
        serde_json::json!({
            "signal": "health-insurance",
            "category": "health",
            "detail": "premium arrears 3 months",
            "detail_ko": "건강보험료 3개월 체납",
            "observed_at": "2026-09-16T14:13:20.000Z",
            "months_overdue": 3,
            "amount_krw": 738_000,
        })
    );
}

//! The case records themselves: encoding and restore, decoding outcomes,
//! retention, episodes, refusals, statuses, the queue's order, the outcome
//! schema and records of the previous release.

use super::*;

#[test]
fn records_survive_encoding_and_a_restore() {
    let mut d = desk();
    d.alert("hh-1", Priority::P1, 0, T0);
    let waiting = d.alert("hh-2", Priority::P1, 0, T0);
    d.record(attempt("o1", "hh-1", ContactResult::NoAnswer, T0 + DAY_MS))
        .unwrap();
    d.record(outcome(
        "o2",
        "hh-1",
        Said::Withdrawn("o1".into()),
        T0 + DAY_MS,
    ))
    .unwrap();
    d.record(outcome(
        "o3",
        "hh-1",
        Said::CaseOpened(Track::CaseManagement),
        T0 + 2 * DAY_MS,
    ))
    .unwrap();
    let before = d.cases.record("hh-1").expect("held");
    let mut bytes = Vec::new();
    before.encode(&mut bytes);
    assert_eq!(CaseRecord::decode(&bytes).as_ref(), Some(&before));
    assert_eq!(
        CaseRecord::decode(&bytes[..bytes.len() - 1]),
        None,
        "a cut record is refused"
    );
    let mut restored = desk();
    for (shard, r) in d.cases.records() {
        assert_eq!(shard, 0);
        restored
            .cases
            .restore_record(Record::new(r.id(), r.payload()), &Restore::default());
    }
    assert_eq!(restored.cases.record("hh-1"), Some(before));
    assert!(
        restored.cases.needs_judging("hh-1"),
        "its outcomes still judge its next assessment"
    );
    let due = restored.cases.overdue(T0 + 3 * DAY_MS + 1);
    assert_eq!(
        due.iter().map(|e| &e.household_id).collect::<Vec<_>>(),
        ["hh-2"],
        "the open alert's due time is kept (hh-1's was answered by its attempt)"
    );
    assert_eq!(due[0].alert_ids, [waiting.alert_id]);
    assert_eq!(restored.cases.drop_shard(0), 2);
    assert!(!restored.cases.needs_judging("hh-1"), "gone with its shard");
}

#[test]
fn only_households_with_more_than_alerts_are_judged() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.alert("hh-2", Priority::P2, 0, T0);
    assert!(
        !d.cases.needs_judging("hh-1"),
        "alerts alone: the cooldown decides"
    );
    d.record(attempt("o1", "hh-2", ContactResult::Refused, T0 + DAY_MS))
        .unwrap();
    assert!(d.cases.needs_judging("hh-2"));
    assert!(!d.cases.needs_judging("hh-1"));
    assert!(!d.cases.needs_judging("hh-never-seen"));
}

#[test]
fn outcomes_are_decoded_with_the_classes_of_signals() {
    let now = T0;
    let ok = br#"{"outcome_id":"o-1","household_id":"hh-1","dong_code":"4125052000",
        "recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"st_7","kind":"contact_attempted",
        "channel":"visit","result":"moved","note":"neighbour says they left in spring",
        "alert_id":"al-0123456789abcdef0123456789abcdef"}"#;
    let o = decode(Some(b"hh-1"), Some(ok), now, 86_400_000).expect("valid");
    // an alert id whose hex digits run 13 decimals long is still an alert id
    let digits = String::from_utf8_lossy(ok).replace(
        "al-0123456789abcdef0123456789abcdef",
        "al-0123456789012345abcdefabcdefabcd",
    );
    assert!(decode(Some(b"hh-1"), Some(digits.as_bytes()), now, 86_400_000).is_ok());
    assert_eq!(o.said, Said::Contact(Channel::Visit, ContactResult::Moved));
    assert_eq!(o.alert_id, Some(0x0123456789abcdef0123456789abcdef));
    let linked = br#"{"outcome_id":"o-2","household_id":"hh-1","dong_code":"4125052000",
        "recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"st_7","kind":"support_linked",
        "services":["energy","debt"]}"#;
    assert!(decode(Some(b"hh-1"), Some(linked), now, 0).is_ok());
    // a string escaped in JSON is read unescaped, its RRN check included
    let escaped = br#"{"outcome_id":"o-3","household_id":"hh\u002d1","dong_code":"4125052000",
        "recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"st_7","kind":"counselled"}"#;
    let o = decode(Some(b"hh-1"), Some(escaped), now, 0).expect("escapes are JSON");
    assert_eq!(o.household_id, "hh-1");
    let cases: [(&[u8], &[u8], RejectClass); 15] = [
        (b"hh-1", b"not json", RejectClass::NotJson),
        (b"hh-1", br#"["outcome_id","o"]"#, RejectClass::NotJson),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000""#, RejectClass::NotJson),
        // an RRN in a field sagak does not know of, or escaped, is still one
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled","memo":"900101-1234567"}"#, RejectClass::ResidentRegistrationNumber),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled","note":"900101\u002d1234567"}"#, RejectClass::ResidentRegistrationNumber),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"support_linked","services":[7]}"#, RejectClass::NotInEnum),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","kind":"counselled"}"#, RejectClass::MissingField),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"visited"}"#, RejectClass::NotInEnum),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"900101-1234567","kind":"counselled"}"#, RejectClass::ResidentRegistrationNumber),
        (b"hh-2", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled"}"#, RejectClass::KeyMismatch),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2036-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled"}"#, RejectClass::FutureEvent),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21","staff_id":"s","kind":"counselled"}"#, RejectClass::WrongType),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"41250","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled"}"#, RejectClass::BadDongCode),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"support_linked","services":[]}"#, RejectClass::OutOfRange),
        (b"hh-1", br#"{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled","alert_id":"al-12"}"#, RejectClass::WrongType),
    ];
    for (key, value, class) in cases {
        let got = decode(Some(key), Some(value), now, 86_400_000).expect_err("rejected");
        assert_eq!(
            got.class,
            class,
            "{}: {}",
            String::from_utf8_lossy(value),
            got.reason
        );
        assert!(!got.reason.contains("1234567"), "never echoes an RRN");
    }
    let long = format!(
        r#"{{"outcome_id":"o","household_id":"hh-1","dong_code":"4125052000","recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"s","kind":"counselled","note":"{}"}}"#,
        "가".repeat(501)
    );
    let got = decode(Some(b"hh-1"), Some(long.as_bytes()), now, 86_400_000).unwrap_err();
    assert_eq!(got.class, RejectClass::OutOfRange);
}

#[test]
fn a_contact_read_before_the_alert_it_answers_still_answers_it() {
    // a replay after a crash may read the outcomes topic ahead of the signals
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    d.record(attempt(
        "o1",
        "hh-1",
        ContactResult::Reached,
        T0 + 2 * DAY_MS,
    ))
    .unwrap();
    let mut fresh = desk();
    fresh
        .record(outcome(
            "walk-in",
            "hh-1",
            Said::Counselled,
            T0 + 2 * DAY_MS,
        ))
        .unwrap();
    fresh.alert("hh-1", Priority::P2, 1, T0 + 3 * DAY_MS);
    assert!(fresh.cases.overdue(T0 + 30 * DAY_MS).is_empty());
    assert!(d.cases.overdue(T0 + 30 * DAY_MS).is_empty());
}

#[test]
fn case_records_go_when_their_retention_ends_unless_a_case_or_an_alert_is_open() {
    let mut d = desk();
    d.alert("hh-answered", Priority::P3, 0, T0);
    d.record(attempt(
        "o1",
        "hh-answered",
        ContactResult::Reached,
        T0 + DAY_MS,
    ))
    .unwrap();
    d.alert("hh-open", Priority::P3, 0, T0);
    d.alert("hh-case", Priority::P3, 0, T0);
    d.record(attempt(
        "o2",
        "hh-case",
        ContactResult::Reached,
        T0 + DAY_MS,
    ))
    .unwrap();
    d.record(outcome(
        "o3",
        "hh-case",
        Said::CaseOpened(Track::CaseManagement),
        T0 + DAY_MS,
    ))
    .unwrap();
    let mut wm = Watermark::new(1, 0);
    wm.raise(
        0,
        0,
        crate::base::time::EventTime::from_ms(T0 + 300 * DAY_MS),
    );
    assert_eq!(d.cases.on_watermark(&wm), 0, "within the 365 days");
    wm.raise(
        0,
        0,
        crate::base::time::EventTime::from_ms(T0 + 400 * DAY_MS),
    );
    assert_eq!(d.cases.on_watermark(&wm), 1);
    assert!(d.cases.record("hh-answered").is_none(), "deleted");
    assert!(
        d.cases.record("hh-open").is_some(),
        "still waits for a contact"
    );
    assert!(d.cases.record("hh-case").is_some(), "in case management");
}

#[test]
fn a_crisis_rising_within_its_cooldown_is_one_episode_not_three_flags() {
    let mut d = desk();
    let mut escalated = Vec::new();
    // P3 -> P2 -> P1 within the 30-day cooldown: one episode
    for (day, p) in [(0, Priority::P3), (5, Priority::P2), (10, Priority::P1)] {
        let sent = d.assess("hh-1", p, &["health"], DONG, day, T0 + day * DAY_MS);
        escalated.extend(sent.escalation);
    }
    assert!(escalated.is_empty(), "one episode: {escalated:?}");
    // two more episodes months apart make three
    for day in [100, 200] {
        let sent = d.assess(
            "hh-1",
            Priority::P3,
            &["health"],
            DONG,
            day,
            T0 + day * DAY_MS,
        );
        escalated.extend(sent.escalation);
    }
    assert_eq!(reasons(&escalated), [EscalationReason::RepeatedlyFlagged]);
    assert_eq!(
        escalated[0].alert_ids.len(),
        3,
        "the episodes' first alerts"
    );
    assert_eq!(
        escalated[0].since,
        T0.div_euclid(DAY_MS) * DAY_MS,
        "since the day the first episode's window ended"
    );
    assert_eq!(
        escalated[0].times_flagged, 5,
        "every alert is still counted"
    );
    // the next escalation needs three new episodes
    let next = d.assess(
        "hh-1",
        Priority::P3,
        &["health"],
        DONG,
        300,
        T0 + 300 * DAY_MS,
    );
    assert!(next.escalation.is_none());
    let w = d.cases.household_work("hh-1", T0 + 300 * DAY_MS).unwrap();
    assert!(w.repeatedly_flagged);
}

#[test]
fn outcomes_that_contradict_the_record_are_refused() {
    let mut d = desk();
    d.alert("hh-1", Priority::P2, 0, T0);
    let close = outcome(
        "o1",
        "hh-1",
        Said::CaseClosed(CloseReason::GoalMet),
        T0 + DAY_MS,
    );
    assert_eq!(d.record(close).unwrap_err().class, RejectClass::NoOpenCase);
    let open = Said::CaseOpened(Track::CaseManagement);
    d.record(outcome("o2", "hh-1", open.clone(), T0 + DAY_MS))
        .unwrap();
    let again = d.record(outcome("o3", "hh-1", open, T0 + 2 * DAY_MS));
    assert_eq!(again.unwrap_err().class, RejectClass::CaseAlreadyOpen);
    let w = d.record(outcome("o4", "hh-1", Said::Withdrawn("abc".into()), T0));
    assert_eq!(w.unwrap_err().class, RejectClass::UnknownOutcome);
    d.record(outcome(
        "o5",
        "hh-1",
        Said::Withdrawn("o2".into()),
        T0 + 3 * DAY_MS,
    ))
    .unwrap();
    let twice = d.record(outcome("o6", "hh-1", Said::Withdrawn("o5".into()), T0));
    assert_eq!(twice.unwrap_err().class, RejectClass::UnknownOutcome);
    // the same checks a page makes before it publishes
    let r = d.cases.record("hh-1");
    let close = outcome("o7", "hh-1", Said::CaseClosed(CloseReason::GoalMet), T0);
    assert_eq!(
        d.cases.check_outcome(r.as_ref(), &close).unwrap_err().class,
        RejectClass::NoOpenCase
    );
    let mut named = outcome("o8", "hh-1", Said::Counselled, T0);
    named.alert_id = Some(7);
    assert_eq!(
        d.cases.check_outcome(r.as_ref(), &named).unwrap_err().class,
        RejectClass::UnknownAlert
    );
}

#[test]
fn statuses_say_what_is_true() {
    let mut d = desk();
    // support linked: until when, and which services
    d.alert("hh-linked", Priority::P2, 0, T0);
    let services = 1 << Service::EmergencyWelfare.code() | 1 << Service::Energy.code();
    d.record(outcome(
        "o1",
        "hh-linked",
        Said::SupportLinked(services),
        T0 + DAY_MS,
    ))
    .unwrap();
    let w = d
        .cases
        .household_work("hh-linked", T0 + 2 * DAY_MS)
        .unwrap();
    assert_eq!(w.status, CaseStatus::Linked);
    assert_eq!(w.services, ["emergency_welfare", "energy"]);
    let until = d.cases.local_date(T0 + DAY_MS + 90 * DAY_MS);
    assert_eq!(
        w.status_ko,
        format!("서비스 연계 (~{until}: 긴급복지, 에너지바우처)")
    );
    assert!(!w.open());
    // a case opened: off the waiting queue, into the cases part
    d.alert("hh-case", Priority::P2, 0, T0);
    d.record(outcome(
        "o2",
        "hh-case",
        Said::CaseOpened(Track::CaseManagement),
        T0 + DAY_MS,
    ))
    .unwrap();
    let w = d.cases.household_work("hh-case", T0 + 11 * DAY_MS).unwrap();
    assert_eq!((w.status, w.open()), (CaseStatus::InCase, false));
    assert_eq!(w.case_age_days, Some(10));
    // an alert after the case closed is not "closed" and overdue at once
    d.record(outcome(
        "o3",
        "hh-case",
        Said::CaseClosed(CloseReason::GoalMet),
        T0 + 30 * DAY_MS,
    ))
    .unwrap();
    d.alert("hh-case", Priority::P2, 32, T0 + 32 * DAY_MS);
    let w = d.cases.household_work("hh-case", T0 + 40 * DAY_MS).unwrap();
    assert_eq!(w.status, CaseStatus::Realerted);
    assert_eq!(w.status_ko, "종결 후 재알림");
    assert!(w.open() && w.overdue());
}

/// Eight households in every state, and the queue's written order.
#[test]
fn the_queue_is_ordered_as_the_pipeline_writes_it() {
    let mut d = desk();
    // noon on the offices' clock (UTC+9), so that "today" is unambiguous
    let now = (T0 / DAY_MS + 20) * DAY_MS + 3 * 3_600_000;
    // urgent: unreachable (one empty house)
    d.alert("hh-lost", Priority::P3, 15, T0 + 15 * DAY_MS);
    d.record(attempt(
        "a1",
        "hh-lost",
        ContactResult::EmptyHouse,
        now - DAY_MS,
    ))
    .unwrap();
    // overdue: P1 sent 5 days ago (due after 3), P2 sent 10 days ago
    d.alert("hh-late-p1", Priority::P1, 15, now - 5 * DAY_MS);
    d.alert("hh-late-p2", Priority::P2, 10, now - 10 * DAY_MS);
    // due today: P2 sent 7 days ago, an hour later on the clock
    d.alert("hh-today", Priority::P2, 13, now - 7 * DAY_MS + 3_600_000);
    // an attempt due: P2 tried 3 days ago (retry 2 days)
    d.alert("hh-retry", Priority::P2, 18, now - 4 * DAY_MS);
    d.record(attempt(
        "a2",
        "hh-retry",
        ContactResult::NoAnswer,
        now - 3 * DAY_MS,
    ))
    .unwrap();
    // new: P1 and P3 sent today
    d.alert("hh-new-p1", Priority::P1, 20, now);
    d.alert("hh-new-p3", Priority::P3, 20, now);
    // attempting: P3 tried an hour ago (retry 3 days)
    d.alert("hh-trying", Priority::P3, 19, now - DAY_MS);
    d.record(attempt(
        "a3",
        "hh-trying",
        ContactResult::NoAnswer,
        now - 3_600_000,
    ))
    .unwrap();
    // reached: off the queue
    d.alert("hh-done", Priority::P1, 19, now - DAY_MS);
    d.record(attempt(
        "a4",
        "hh-done",
        ContactResult::Reached,
        now - 3_600_000,
    ))
    .unwrap();
    let mut queue = d.cases.open_of_dong(DONG, now);
    queue.sort_by_cached_key(|(id, w)| (w.queue_key(None), id.clone()));
    let order: Vec<(&str, Option<Tier>)> =
        queue.iter().map(|(id, w)| (id.as_str(), w.tier)).collect();
    assert_eq!(
        order,
        [
            ("hh-lost", Some(Tier::Urgent)),
            ("hh-late-p1", Some(Tier::Overdue)),
            ("hh-late-p2", Some(Tier::Overdue)),
            ("hh-today", Some(Tier::DueToday)),
            ("hh-retry", Some(Tier::AttemptDue)),
            ("hh-new-p1", Some(Tier::New)),
            ("hh-new-p3", Some(Tier::New)),
            ("hh-trying", Some(Tier::Attempting)),
        ]
    );
    let steps: Vec<&str> = queue.iter().map(|(_, w)| w.step_ko.as_str()).collect();
    assert!(steps[1].starts_with("D+2 초과"), "{steps:?}");
    assert_eq!(steps[3], "오늘 마감");
    assert!(steps[4].contains("1회 시도, 다음 시도"), "{steps:?}");
    // the pipeline's names are the tiers'
    assert_eq!(
        Tier::ALL.map(|t| t.as_str()),
        crate::definition::QUEUE_TIERS
    );
    // the pipeline may put new households before overdue ones
    let mut spec = default_spec();
    spec.outcomes.queue_order = vec!["new".into(), "urgent".into()];
    assert_eq!(
        work::queue_tiers(&spec.outcomes),
        [
            Tier::New,
            Tier::Urgent,
            Tier::Overdue,
            Tier::DueToday,
            Tier::AttemptDue,
            Tier::Attempting
        ]
    );
}

/// One declaration per outcome kind: the schema's enums are the table's.
#[test]
fn the_outcome_schema_names_exactly_the_declared_values() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/outcome.schema.json"),
    )
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let declared = |all: Vec<&str>| all.into_iter().map(String::from).collect::<Vec<_>>();
    let p = &schema["properties"];
    assert_eq!(
        names(&p["kind"]),
        declared(OutcomeKind::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        names(&p["channel"]),
        declared(Channel::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        names(&p["result"]),
        declared(ContactResult::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        names(&p["services"]["items"]),
        declared(Service::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        names(&p["track"]),
        declared(Track::ALL.iter().map(|v| v.as_str()).collect())
    );
    use crate::stages::case::outcome::{GoalResult, Need};
    assert_eq!(
        names(&p["needs"]["items"]),
        declared(Need::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        names(&p["goal_results"]["items"]),
        declared(GoalResult::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        p["goals"]["maxItems"],
        crate::stages::case::outcome::MAX_GOALS
    );
    let conditional: Vec<Vec<String>> = schema["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["then"]["properties"].get("reason").map(names))
        .collect();
    assert!(conditional.contains(&declared(
        NotApplicableReason::ALL
            .iter()
            .map(|v| v.as_str())
            .collect()
    )));
    assert!(conditional.contains(&declared(
        CloseReason::ALL.iter().map(|v| v.as_str()).collect()
    )));
    // codes are stable and distinct; every value has a Korean label
    for kind in OutcomeKind::ALL {
        assert_eq!(OutcomeKind::from_code(kind.code()), Some(*kind));
        assert!(!kind.label_ko().is_empty());
    }
    let codes: Vec<u8> = ContactResult::ALL.iter().map(|v| v.code()).collect();
    assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6], "snapshots keep these codes");
}

/// Case records written by the release before open work (2026-12-02:
/// failed attempts answered alerts, repeat escalations counted alerts)
/// read with the same meaning: restored, an alert a support answered under
/// today's rules is closed, a repeat escalation that went stays sent.
#[test]
fn case_records_of_the_previous_release_read_with_the_same_meaning() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/case-records-2026-12-02.txt");
    let text = std::fs::read_to_string(file).unwrap();
    let mut d = desk();
    let now = T0 + 3 * DAY_MS;
    let mut seen = Vec::new();
    for line in text.lines() {
        let (id, hex) = line.split_once(' ').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        CaseRecord::decode(&bytes).unwrap_or_else(|| panic!("{id} reads"));
        // as a snapshot restores it
        d.cases
            .restore_record(Record::new(id, &bytes), &Restore::default());
        let r = d.cases.record(id).unwrap();
        let w = d.cases.open_work(&r, now);
        seen.push((id.to_string(), w.status, w.open()));
        match id {
            "hh-lost" => assert_eq!((w.attempts, w.tier), (3, Some(Tier::Urgent))),
            // the services were not kept before: linked, until when
            "hh-linked" => assert!(w.status_ko.starts_with("서비스 연계 (~"), "{}", w.status_ko),
            "hh-repeat" => {
                assert!(w.repeatedly_flagged, "its escalation went");
                assert_eq!(r.repeat_day, r.alerts.last().map(|a| a.day));
                assert_eq!(w.open_alerts.len(), 3);
            }
            "hh-case" => assert_eq!(w.case_age_days, Some(1)),
            _ => {}
        }
        // written again in today's layout, it reads the same
        let mut again = Vec::new();
        r.encode(&mut again);
        assert_eq!(CaseRecord::decode(&again), Some(r));
    }
    assert_eq!(
        seen,
        [
            ("hh-case".to_string(), CaseStatus::InCase, false),
            ("hh-gone".to_string(), CaseStatus::New, true),
            ("hh-linked".to_string(), CaseStatus::Linked, false),
            ("hh-lost".to_string(), CaseStatus::Unreachable, true),
            ("hh-new".to_string(), CaseStatus::New, true),
            ("hh-repeat".to_string(), CaseStatus::New, true),
        ]
    );
}

#[test]
fn plans_and_reviews_are_decoded_with_their_goals_private() {
    use crate::stages::case::outcome::{parse_date, GoalResult, Need};
    let head = r#"{"outcome_id":"o-1","household_id":"hh-1","dong_code":"4125052000",
        "recorded_at":"2026-09-21T14:00:00+09:00","staff_id":"st_7","#;
    let read = |rest: &str| {
        let text = format!("{head}{rest}}}");
        decode(Some(b"hh-1"), Some(text.as_bytes()), T0, 86_400_000)
    };
    let o = read(
        r#""kind":"case_plan","needs":["economic","housing"],"services":["energy"],
        "goals":[{"text":"월세 체납 해소","target_date":"2027-01-31"},
                 {"text":"취업 상담 3회","target_date":"2027-03-31"}]"#,
    )
    .expect("a plan");
    let Said::CasePlan(plan) = &o.said else {
        panic!("{:?}", o.said)
    };
    assert_eq!(
        plan.needs,
        1 << Need::Economic.code() | 1 << Need::Housing.code()
    );
    assert_eq!(
        plan.targets,
        [
            parse_date("2027-01-31").unwrap(),
            parse_date("2027-03-31").unwrap()
        ]
    );
    assert_eq!(
        o.goals,
        ["월세 체납 해소", "취업 상담 3회"],
        "texts beside, not in the state"
    );
    let v = read(
        r#""kind":"case_reviewed","goal_results":["met","partly"],
        "service_fit":[{"service":"energy","fits":true}],"next_review":"2027-02-15""#,
    )
    .expect("a review");
    let Said::CaseReviewed(review) = &v.said else {
        panic!("{:?}", v.said)
    };
    assert_eq!(review.results, [GoalResult::Met, GoalResult::Partly]);
    assert_eq!(review.fits, 1 << Service::Energy.code());
    // what is wrong is named; a goal's text is checked for RRNs like a note
    let class = |rest: &str| read(rest).unwrap_err().class;
    let rrn = r#""kind":"case_plan","needs":["health"],"goals":[{"text":"900101-1234567 확인","target_date":"2027-01-31"}]"#;
    assert_eq!(class(rrn), RejectClass::ResidentRegistrationNumber);
    let bad_date = r#""kind":"case_plan","needs":["health"],"goals":[{"text":"x","target_date":"31/01/2027"}]"#;
    assert!(read(bad_date).unwrap_err().reason.contains("YYYY-MM-DD"));
    let no_goals = r#""kind":"case_plan","needs":["health"],"goals":[]"#;
    assert_eq!(class(no_goals), RejectClass::OutOfRange);
    let bad_need =
        r#""kind":"case_plan","needs":["money"],"goals":[{"text":"x","target_date":"2027-01-31"}]"#;
    assert_eq!(class(bad_need), RejectClass::NotInEnum);
    let bad_result = r#""kind":"case_reviewed","goal_results":["done"]"#;
    assert_eq!(class(bad_result), RejectClass::NotInEnum);
}

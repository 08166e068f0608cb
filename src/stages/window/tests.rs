use super::*;
use crate::base::keyed::Record;
use crate::stages::decode::Decoder;
use crate::testkit::{default_spec, health, job_loss, utility, NOW};

/// Decodes `(feed, household, json)` messages into one batch.
fn batch(spec: &PipelineSpec, msgs: &[(&str, &str, String)]) -> RecordBatch {
    let mut d = Decoder::new(spec);
    for (i, (feed, hh, json)) in msgs.iter().enumerate() {
        let f = spec.feed_index(feed).unwrap() as u16;
        d.decode(i as u32, f, Some(hh.as_bytes()), Some(json.as_bytes()), NOW)
            .expect("valid test signal");
    }
    d.finish()
}

/// The window stage as the engine drives it: lateness judged in each
/// partition's order ([`Watermark::admit`]) against the event time kept
/// here, as the engine keeps it.
struct Judged {
    w: HouseholdWindows,
    wm: Watermark,
    window_ms: i64,
}

impl Judged {
    fn new(spec: &PipelineSpec) -> Self {
        Judged {
            w: HouseholdWindows::new(spec),
            wm: Watermark::new(spec.feeds.len(), spec.window.lateness_ms()),
            window_ms: spec.window.length_ms(),
        }
    }

    /// One batch, its rows judged in order (one decoder: message order).
    fn process_batch(&mut self, decoded: &RecordBatch, shards: &[i32]) -> WindowOutcome {
        let rows: Vec<(u32, u16, i64)> = decoded::timed(decoded).collect();
        let mut late = vec![false; rows.iter().map(|r| r.0 as usize + 1).max().unwrap_or(0)];
        for (i, feed, t) in rows {
            let partition = shards.get(i as usize).copied().unwrap_or(0);
            late[i as usize] = !self.wm.admit(
                usize::from(feed),
                partition,
                crate::base::time::EventTime::from_ms(t),
                self.window_ms,
            );
        }
        self.w.process_batch(decoded, shards, &late)
    }

    fn watermark(&self) -> &Watermark {
        &self.wm
    }

    fn evict(&mut self) -> usize {
        self.w.on_watermark(&self.wm)
    }
}

impl std::ops::Deref for Judged {
    type Target = HouseholdWindows;
    fn deref(&self) -> &HouseholdWindows {
        &self.w
    }
}

impl std::ops::DerefMut for Judged {
    fn deref_mut(&mut self) -> &mut HouseholdWindows {
        &mut self.w
    }
}

/// Applies a batch whose messages all come from partition 0.
fn apply(w: &mut Judged, decoded: &RecordBatch) -> WindowOutcome {
    w.process_batch(decoded, &[])
}

fn households_in(table: &RecordBatch) -> Vec<String> {
    let mut v: Vec<String> = table
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    v.dedup();
    v
}

#[test]
fn resent_event_counts_once() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let h = health("h-1", "hh-1", "2026-11-01", 4);
    let out = apply(
        &mut w,
        &batch(
            &spec,
            &[
                ("health-insurance", "hh-1", h.clone()),
                ("health-insurance", "hh-1", h.clone()),
            ],
        ),
    );
    assert_eq!((out.accepted, out.duplicates), (1, 1));
    let again = apply(&mut w, &batch(&spec, &[("health-insurance", "hh-1", h)]));
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    assert_eq!(
        again.table.num_rows(),
        0,
        "nothing new: no household to score"
    );
}

#[test]
fn table_holds_every_live_signal_of_touched_households_only() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    apply(
        &mut w,
        &batch(
            &spec,
            &[
                (
                    "health-insurance",
                    "hh-1",
                    health("h-1", "hh-1", "2026-10-01", 4),
                ),
                (
                    "health-insurance",
                    "hh-2",
                    health("h-2", "hh-2", "2026-10-01", 4),
                ),
            ],
        ),
    );
    let out = apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "utility-arrears",
                "hh-1",
                utility("u-1", "hh-1", "2026-11-01", "gas", 3, false),
            )],
        ),
    );
    assert_eq!(households_in(&out.table), vec!["hh-1"]);
    assert_eq!(
        out.table.num_rows(),
        2,
        "the earlier health signal travels with the new one"
    );
    assert_eq!(
        out.table
            .column_by_name("dong_code")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "4125052000"
    );
}

#[test]
fn signal_older_than_watermark_minus_window_is_late() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-1",
                health("h-1", "hh-1", "2026-11-01", 4),
            )],
        ),
    );
    // watermark = 2026-10-25; window 90 days -> anything before 2026-07-27 is late
    let out = apply(
        &mut w,
        &batch(
            &spec,
            &[
                (
                    "health-insurance",
                    "hh-2",
                    health("h-2", "hh-2", "2026-07-20", 4),
                ),
                (
                    "health-insurance",
                    "hh-3",
                    health("h-3", "hh-3", "2026-08-01", 4),
                ),
            ],
        ),
    );
    assert_eq!(out.accepted, 1);
    assert_eq!(out.late.len(), 1);
    assert_eq!(out.late[0].0, 0);
    assert_eq!(out.late[0].1.class, RejectClass::LateEvent);
    assert!(out.late[0].1.reason.starts_with("late"));
    // other feeds keep their own watermark: a slow feed is not late because a fast one moved on
    let util = apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "utility-arrears",
                "hh-4",
                utility("u-4", "hh-4", "2026-07-20", "water", 3, false),
            )],
        ),
    );
    assert_eq!((util.accepted, util.late.len()), (1, 0));
}

#[test]
fn watermark_evicts_state_no_later_signal_can_count() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let h =
        |e: &str, hh: &str, day: &str| ("health-insurance", hh.to_string(), health(e, hh, day, 4));
    let msgs = [
        h("h-1", "hh-old", "2026-03-01"),
        h("h-2", "hh-keep", "2026-05-01"),
        h("h-3", "hh-new", "2026-05-01"),
    ];
    let msgs: Vec<(&str, &str, String)> = msgs
        .iter()
        .map(|(f, hh, j)| (*f, hh.as_str(), j.clone()))
        .collect();
    apply(&mut w, &batch(&spec, &msgs));
    apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-new",
                health("h-4", "hh-new", "2026-11-01", 4),
            )],
        ),
    );
    assert_eq!(w.len(), 3);
    // the watermark is 2026-10-25 (7 days of lateness): a signal as old as
    // 2026-07-27 is still accepted, and its window reaches back to 04-28
    let evicted = w.evict();
    assert_eq!(
        evicted, 1,
        "only hh-old's March signal is out of every window still to come (hh-new's May \
         notice was already replaced by its November one)"
    );
    assert_eq!(w.len(), 2);
    assert_eq!(w.shard_of("hh-old"), None);
    // the May signal kept is counted by a signal accepted late
    let late = apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "job-loss",
                "hh-keep",
                job_loss("j-1", "hh-keep", "2026-07-28", "4125052000"),
            )],
        ),
    );
    assert!(late.late.is_empty(), "within the window of the watermark");
    assert_eq!(
        late.table.num_rows(),
        2,
        "the May premium arrears and the job loss"
    );
}

#[test]
fn a_flooded_household_keeps_its_newest_signals() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let max = spec.window.max_signals_per_household;
    // a different household member each time: nothing supersedes anything
    let msgs: Vec<_> = (0..max + 5)
        .map(|i| {
            let day = format!("2026-10-{:02}", 1 + i % 28);
            (
                "job-loss",
                "hh-1",
                format!(
                    r#"{{"event_id":"j-{i}","household_id":"hh-1","dong_code":"4125052000","observed_at":"{day}T09:00:00+09:00","source":"moel","person_id":"p-{i}","kind":"job_loss","occurred_on":"{day}"}}"#
                ),
            )
        })
        .collect();
    let out = apply(&mut w, &batch(&spec, &msgs));
    assert_eq!(out.dropped_over_cap, 5);
    assert_eq!(out.table.num_rows(), max);
}

#[test]
fn a_shard_can_be_dropped_and_restored_without_touching_the_others() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let msgs = [
        (
            "health-insurance",
            "hh-a",
            health("h-1", "hh-a", "2026-11-01", 4),
        ),
        (
            "health-insurance",
            "hh-b",
            health("h-2", "hh-b", "2026-11-01", 4),
        ),
    ];
    // message 0 came from partition 1, message 1 from partition 2
    w.process_batch(&batch(&spec, &msgs), &[1, 2]);
    assert_eq!((w.shard_of("hh-a"), w.shard_of("hh-b")), (Some(1), Some(2)));

    let moved: Vec<Record> = w
        .records()
        .filter(|(shard, _)| *shard == 1)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(w.drop_shard(1), 1);
    assert_eq!((w.shard_of("hh-a"), w.len()), (None, 1));

    let mut other = Judged::new(&spec);
    for r in moved {
        other.restore_record(r, &Restore::default());
    }
    assert_eq!(other.shard_of("hh-a"), Some(1));
    // a later signal of the moved household finds its history on the new owner
    let out = other.process_batch(
        &batch(
            &spec,
            &[(
                "utility-arrears",
                "hh-a",
                utility("u-3", "hh-a", "2026-11-05", "water", 5, false),
            )],
        ),
        &[1],
    );
    assert_eq!(out.table.num_rows(), 2);
}

#[test]
fn a_newer_signal_on_the_same_subject_replaces_the_older_one() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let first = apply(
        &mut w,
        &batch(
            &spec,
            &[
                (
                    "health-insurance",
                    "hh-1",
                    health("h-1", "hh-1", "2026-10-01", 4),
                ),
                (
                    "health-insurance",
                    "hh-1",
                    health("h-2", "hh-1", "2026-10-20", 0),
                ),
            ],
        ),
    );
    assert_eq!(first.accepted, 2);
    assert_eq!(
        first.table.num_rows(),
        1,
        "only the newest premium notice is live"
    );
    let months = first.table.column_by_name("months_overdue").unwrap();
    assert_eq!(months.as_primitive::<Int64Type>().value(0), 0);

    // the older notice sent again later is accepted but changes nothing
    let late = apply(
        &mut w,
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-1",
                health("h-0", "hh-1", "2026-09-01", 9),
            )],
        ),
    );
    assert_eq!((late.accepted, late.table.num_rows()), (1, 0));
    let held: Vec<_> = w.held().map(|h| h.signals()).collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].len(), 1);
}

#[test]
fn records_written_under_another_pipeline_definition_are_translated() {
    let before = default_spec();
    let mut w = Judged::new(&before);
    apply(
        &mut w,
        &batch(
            &before,
            &[
                (
                    "utility-arrears",
                    "hh-1",
                    utility("u-1", "hh-1", "2026-11-01", "electricity", 3, true),
                ),
                (
                    "health-insurance",
                    "hh-1",
                    health("h-1", "hh-1", "2026-11-02", 4),
                ),
                (
                    "job-loss",
                    "hh-1",
                    job_loss("j-1", "hh-1", "2026-11-03", "4125052000"),
                ),
                (
                    "health-insurance",
                    "hh-2",
                    health("h-2", "hh-2", "2026-11-02", 6),
                ),
            ],
        ),
    );
    // the same definition reads its records as they are
    assert!(w.translation(&w.dictionary()).is_none());

    // a new definition: health insurance removed, the other feeds reordered
    let mut after = before.clone();
    after.feeds.retain(|f| f.name != "health-insurance");
    after.feeds.reverse();
    let mut moved = Judged::new(&after);
    let t = moved.translation(&w.dictionary());
    assert!(t.is_some());
    let mut dropped = 0;
    let restore = Restore {
        translation: t.as_ref(),
    };
    for (_, r) in w.records() {
        dropped += moved.restore_record(r.clone(), &restore).dropped_signals;
    }
    let newest: Vec<Option<i64>> = w
        .watermark()
        .newest_on(0)
        .iter()
        .map(|t| t.map(|t| t.ms()))
        .collect();
    let newest_moved = moved.translate_newest(&newest, t.as_ref());

    assert_eq!(dropped, 2, "both health-insurance signals");
    assert_eq!(moved.len(), 1, "hh-2 had nothing else");
    // every kept signal is what it was, under its feed's new index
    let named = |spec: &PipelineSpec, w: &HouseholdWindows| -> Vec<(String, LiveSignal)> {
        w.held()
            .flat_map(|h| h.signals())
            .filter_map(|mut s| {
                let name = spec.feeds[usize::from(s.feed)].name.clone();
                s.feed = 0;
                (name != "health-insurance").then_some((name, s))
            })
            .collect()
    };
    let mut expected = named(&before, &w);
    let mut got = named(&after, &moved);
    expected.sort_by_key(|(name, s)| (name.clone(), s.observed_at));
    got.sort_by_key(|(name, s)| (name.clone(), s.observed_at));
    assert_eq!(got.len(), 2);
    assert!(got == expected, "{got:?}");
    for name in ["utility-arrears", "job-loss"] {
        let (old, new) = (
            before.feed_index(name).unwrap(),
            after.feed_index(name).unwrap(),
        );
        assert!(newest[old].is_some());
        assert_eq!(newest_moved[new], newest[old], "{name}");
    }
}

#[test]
fn every_row_names_the_dong_of_the_households_newest_signal() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    let out = apply(
        &mut w,
        &batch(
            &spec,
            &[
                (
                    "job-loss",
                    "hh-1",
                    job_loss("j-1", "hh-1", "2026-10-01", "0100000001"),
                ),
                (
                    "utility-arrears",
                    "hh-1",
                    utility("u-2", "hh-1", "2026-11-01", "water", 1, false),
                ),
                (
                    "job-loss",
                    "hh-2",
                    job_loss("j-3", "hh-2", "2026-10-15", "0000000042"),
                ),
            ],
        ),
    );
    let column = |name: &str| -> Vec<(String, String)> {
        let hh = out
            .table
            .column_by_name("household_id")
            .unwrap()
            .as_string::<i32>();
        let v = out.table.column_by_name(name).unwrap().as_string::<i32>();
        let mut rows: Vec<(String, String)> = (0..out.table.num_rows())
            .map(|r| (hh.value(r).to_string(), v.value(r).to_string()))
            .collect();
        rows.sort();
        rows
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // each signal keeps its own dong, zero-padded as on the wire
    assert_eq!(
        column("dong_code"),
        pairs(&[
            ("hh-1", "0100000001"),
            ("hh-1", "4125052000"),
            ("hh-2", "0000000042")
        ])
    );
    // the household moved (the utility notice comes from 4125052000): both its rows name the dong of its newest signal
    assert_eq!(
        column("current_dong"),
        pairs(&[
            ("hh-1", "4125052000"),
            ("hh-1", "4125052000"),
            ("hh-2", "0000000042")
        ])
    );
}

/// `(household_id, observed_at, feed, subject)` of each row, the columns of
/// `SIGNAL_TABLE_ORDER`.
fn order_keys(table: &RecordBatch) -> Vec<(String, i64, String, String)> {
    let text = |name: &str| {
        table
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    let (hh, feed, subject) = (text("household_id"), text("feed"), text("subject"));
    let at = table
        .column_by_name("observed_at")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    (0..table.num_rows())
        .map(|r| {
            let row = (hh.value(r), at.value(r), feed.value(r), subject.value(r));
            (row.0.into(), row.1, row.2.into(), row.3.into())
        })
        .collect()
}

#[test]
fn tables_come_in_the_order_the_scorer_declares() {
    assert_eq!(
        crate::stages::signal::SIGNAL_TABLE_ORDER,
        ["household_id", "observed_at", "feed", "subject"],
        "order_keys below reads these columns"
    );
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    // ids that agree in their first 16 bytes and differ in length, arriving
    // in no order, each with signals on one day (ties in event time) sent
    // newest feed name and subject first
    let ids: Vec<String> = [7, 30, 3, 12, 1, 21, 2]
        .iter()
        .map(|n| format!("household-of-dongducheon-{n}"))
        .chain(["hh-9", "hh-10", "household-of"].map(String::from))
        .collect();
    let mut msgs = Vec::new();
    for (i, hh) in ids.iter().enumerate() {
        msgs.push((
            "utility-arrears",
            hh.as_str(),
            utility(&format!("u-w-{i}"), hh, "2026-10-02", "water", 3, false),
        ));
        msgs.push((
            "utility-arrears",
            hh.as_str(),
            utility(&format!("u-g-{i}"), hh, "2026-10-02", "gas", 4, true),
        ));
        msgs.push((
            "job-loss",
            hh.as_str(),
            job_loss(&format!("j-{i}"), hh, "2026-10-02", "4125052000"),
        ));
        msgs.push((
            "health-insurance",
            hh.as_str(),
            health(&format!("h-{i}"), hh, "2026-10-01", 5),
        ));
    }
    let out = apply(&mut w, &batch(&spec, &msgs));
    let keys = order_keys(&out.table);
    assert_eq!(keys.len(), 4 * ids.len());
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "the batch's table");
    assert_eq!(
        keys[..4]
            .iter()
            .map(|k| (k.2.as_str(), k.3.as_str()))
            .collect::<Vec<_>>(),
        [
            ("health-insurance", "nhis"),
            ("job-loss", "p-hh-10"),
            ("utility-arrears", "gas"),
            ("utility-arrears", "water"),
        ],
        "one household: the older day first, then by feed name and subject"
    );

    let mut asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    asked.reverse();
    let keys = order_keys(&w.table_of(asked.into_iter(), None));
    assert_eq!(keys.len(), 4 * ids.len());
    assert_eq!(keys, sorted, "a table of households asked for by id");
}

/// Event time is kept per partition: while a catch-up reads partition 1
/// far ahead of partition 2, the older signals of partition 2 are not late;
/// a signal older than its own partition's watermark minus the window is.
#[test]
fn lateness_follows_the_signals_own_partition() {
    let spec = default_spec();
    let mut w = Judged::new(&spec);
    // partition 1 has reached November
    w.process_batch(
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-ahead",
                health("h-1", "hh-ahead", "2026-11-01", 4),
            )],
        ),
        &[1],
    );
    // partition 2 still delivers May: accepted
    let lagging = w.process_batch(
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-behind",
                health("h-2", "hh-behind", "2026-05-01", 4),
            )],
        ),
        &[2],
    );
    assert!(lagging.late.is_empty(), "{:?}", lagging.late);
    assert_eq!(lagging.accepted, 1);
    // on partition 1 itself, May is more than 97 days behind: late
    let late = w.process_batch(
        &batch(
            &spec,
            &[(
                "health-insurance",
                "hh-ahead2",
                health("h-3", "hh-ahead2", "2026-05-01", 4),
            )],
        ),
        &[1],
    );
    assert_eq!(late.late.len(), 1);
    assert!(
        late.late[0].1.reason.contains("on partition 1"),
        "{}",
        late.late[0].1.reason
    );
    let feed = spec.feed_index("health-insurance").unwrap();
    assert!(w.watermark().of(feed, 2) < w.watermark().of(feed, 1));
}

use std::fs;
use std::path::PathBuf;

use super::*;

/// A shard state holding one household record and one mark record
/// (the store does not read payloads; the stages do).
fn state(household: &str) -> EncodedState {
    let mut records = ShardRecords::default();
    let signals = Record::new(household, b"signals");
    records.push(StatePart::Households, signals.as_bytes(), 64);
    // a part that starts empty is still read through
    records.parts[StatePart::Marks.index()]
        .chunks
        .push(Vec::new());
    records.push(
        StatePart::Marks,
        Record::new(household, b"mark").as_bytes(),
        1,
    );
    EncodedState {
        shards: BTreeMap::from([(3, records)]),
        dictionary: RecordDictionary {
            feeds: vec!["job-loss".into()],
            symbols: vec!["premium".into()],
        },
        partition_newest: BTreeMap::from([(3, vec![Some(7)])]),
        scoring: Some(42),
    }
}

fn write(store: &CheckpointStore, household: &str, offsets: &[PartitionOffset]) -> PathBuf {
    let state = state(household);
    let head = Head {
        pipeline: "default".into(),
        created_at_ms: 1,
        shard: 3,
        offsets: offsets.to_vec(),
        feed_newest: state.partition_newest[&3].clone(),
        dictionary: state.dictionary.clone(),
        households: 1,
        marks: 1,
        cases: 0,
        scoring: state.scoring,
    };
    let key = store.write(&head, &state.shards[&3], 0).unwrap();
    store.prune(&key).unwrap();
    PathBuf::from(store.store.location(&key))
}

fn households(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .state
        .records(StatePart::Households)
        .map(|(id, _)| id.into())
        .collect()
}

#[test]
fn newest_snapshot_round_trips_and_old_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 2).unwrap();
    let offsets = vec![PartitionOffset {
        topic: "signals.job-loss".into(),
        partition: 3,
        next_offset: 42,
    }];
    for hh in ["hh-1", "hh-2", "hh-3"] {
        write(&store, hh, &offsets);
    }
    assert_eq!(store.files().unwrap().len(), 2);
    let snap = store.load_newest().unwrap().unwrap();
    assert_eq!((&snap.offsets, snap.shard), (&offsets, 3));
    assert_eq!(households(&snap), ["hh-3"]);
    let stored = &snap.state;
    assert_eq!(
        stored.records(StatePart::Households).next(),
        Some(("hh-3", &b"signals"[..]))
    );
    assert_eq!(
        stored.records(StatePart::Marks).collect::<Vec<_>>(),
        [("hh-3", &b"mark"[..])]
    );
    assert!(!stored.feeds_by_position);
    assert_eq!(stored.dictionary, state("x").dictionary);
    assert_eq!(stored.feed_newest, [Some(7)]);
}

#[test]
fn a_damaged_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 5).unwrap();
    write(&store, "hh-1", &[]);
    let newest = write(&store, "hh-2", &[]);
    let good = fs::read(&newest).unwrap();
    // cut short (a partial write), and one byte of a record changed
    let mut cut = good.clone();
    cut.truncate(good.len() - 3);
    let mut flipped = good.clone();
    let at = good.len() - 10;
    flipped[at] ^= 0x20;
    for damaged in [cut, flipped] {
        fs::write(&newest, damaged).unwrap();
        let snap = store.load_newest().unwrap().unwrap();
        assert_eq!(households(&snap), ["hh-1"]);
    }
}

#[test]
fn another_format_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 5).unwrap();
    let path = write(&store, "hh-1", &[]);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.windows(4).position(|w| w == b" v3 ").unwrap();
    bytes[at + 2] = b'9';
    fs::write(&path, bytes).unwrap();
    let err = store.load_newest().unwrap_err().to_string();
    assert!(err.contains("format version 9"), "{err}");
}

#[test]
fn a_json_snapshot_of_format_2_still_restores() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 5).unwrap();
    let signal = crate::stages::window::LiveSignal {
        observed_at: 5,
        event_key: 9,
        dong: 4_125_052_000,
        amount_krw: 1_000,
        months_overdue: crate::stages::window::NONE_I64,
        subject: "premium".into(),
        kind: None,
        occurred_on: crate::stages::window::NONE_I32,
        feed: 2,
        disconnected: crate::stages::window::NONE_U8,
    };
    let mark = crate::stages::alert::AlertMark {
        priority: crate::stages::score::Priority::P2,
        at: 5,
        count: 1,
        shard: 3,
    };
    let held = [
        ("hh-9".to_string(), 3, vec![signal]),
        // a household left with no signals is not restored
        ("hh-8".to_string(), 3, Vec::new()),
    ];
    let offsets = vec![PartitionOffset {
        topic: "signals.job-loss".into(),
        partition: 3,
        next_offset: 42,
    }];
    let file = legacy::file(3, offsets, &held, &[("hh-9".into(), mark)], vec![Some(7)]);
    fs::write(dir.path().join("checkpoint-000000000001.json"), file).unwrap();
    let snap = store.load_newest().unwrap().unwrap();
    assert_eq!(households(&snap), ["hh-9"]);
    assert_eq!(snap.offsets[0].next_offset, 42);
    let stored = &snap.state;
    assert!(
        stored.feeds_by_position,
        "format 2 numbered feeds by position"
    );
    assert_eq!(stored.feed_newest, [Some(7)]);
    assert_eq!(stored.scoring, None);
    assert_eq!(stored.count(StatePart::Marks), 1);
    // the next snapshot is format 3 and newer
    write(&store, "hh-10", &[]);
    assert_eq!(
        households(&store.load_newest().unwrap().unwrap()),
        ["hh-10"]
    );
}

#[test]
fn each_shard_has_its_own_directory_and_the_old_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sharded = ShardedStore::open(dir.path(), 2).unwrap();
    let files = sharded
        .write_state("default", 1, &state("hh-3"), [3, 11], &[])
        .unwrap();
    assert_eq!(files.files.len(), 2);
    assert!(files.fenced.is_empty());
    assert_eq!(sharded.shards().unwrap(), vec![3, 11]);
    let all = sharded.load_all().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(households(&all[0]), ["hh-3"]);
    // a shard without state still records its offsets, with no households
    assert_eq!(
        (all[1].shard, all[1].state.count(StatePart::Households)),
        (11, 0)
    );

    // a version-1 directory had its snapshot files at the top
    fs::write(dir.path().join("checkpoint-000000000001.json"), "x").unwrap();
    let err = ShardedStore::open(dir.path(), 2).unwrap_err().to_string();
    assert!(err.contains("format version 1"), "{err}");
}

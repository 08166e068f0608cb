//! The case book's part of the engine's state: watermarks, snapshot
//! records, restore and shard hand-over, as every stateful stage has them
//! ([`crate::stages::StatefulStage`]).

use super::*;

impl StatefulStage for CaseBook {
    const PART: StatePart = StatePart::Cases;

    /// Forgets households nothing happened to for the retention span of
    /// event time (their partition's low watermark), unless they are in
    /// case management or still open work (an alert waiting for a first
    /// reach, failed attempts, unreachable): nobody is forgotten.
    fn on_watermark(&mut self, watermark: &Watermark) -> usize {
        let retention = self.rules.retention_ms;
        let fold = self.rules.fold;
        // the oldest horizon of any partition: before it passes the oldest
        // activity, a pass over every record would keep them all
        // A record's times are on the driver's clock; its retention runs
        // on event time, so a replay forgets what a live run forgot: the
        // watermark is read as that clock here, and below.
        let horizon = watermark
            .partitions()
            .filter_map(|p| watermark.low(p))
            .min()
            .map(|low| low.ms() - retention);
        if horizon.is_none_or(|h| h <= self.oldest_activity) {
            return 0;
        }
        let before = self.records.len();
        let mut oldest = i64::MAX;
        self.records.retain(|held| {
            let Some(r) = CaseRecord::decode(held.payload()) else {
                return false;
            };
            let activity = r.last_activity();
            let keep = watermark.low(r.shard).is_none_or(|low| {
                activity >= low.ms() - retention || work::still_open(&r, &rules::fold(&r, fold))
            });
            if keep {
                oldest = oldest.min(activity);
            }
            keep
        });
        self.oldest_activity = oldest;
        let gone = before - self.records.len();
        if gone > 0 {
            self.rejudge();
        }
        gone
    }

    fn records(&self) -> impl Iterator<Item = (i32, &Record)> + '_ {
        self.records
            .iter()
            .map(|r| (record::shard(r.payload()).unwrap_or(0), r))
    }

    fn restore_record(&mut self, held: Record, _: &Restore<'_>) -> Restored {
        if let Some(mut r) = CaseRecord::decode(held.payload()) {
            let hash = self.records.hash(held.id());
            // a record of a release before open work may hold alerts that a
            // support, a case or a decision answered under today's rules
            let held = if rules::settle_answered(&mut r) {
                r.encode(&mut self.encoded);
                Record::new(held.id(), &self.encoded)
            } else {
                held
            };
            for a in &r.alerts {
                if let (Some(emitted), false) = (a.open_since, a.overdue_sent) {
                    self.note_due(emitted + self.rules.due(a.priority), hash);
                }
            }
            self.oldest_activity = self.oldest_activity.min(r.last_activity());
            if !record::only_alerts(held.payload()) {
                self.judging.insert(hash);
            }
            self.records.put_hashed(hash, held);
            return Restored::default();
        }
        Restored {
            dropped_signals: 0,
            unreadable: 1,
        }
    }

    fn drop_shard(&mut self, shard: i32) -> usize {
        let before = self.records.len();
        self.records
            .retain(|r| record::shard(r.payload()).is_some_and(|s| s != shard));
        self.rejudge();
        before - self.records.len()
    }

    fn reserve(&mut self, more: usize) {
        self.records.reserve(more);
    }

    fn len(&self) -> usize {
        self.records.len()
    }
}

//! The windows' part of the engine's state: watermarks, snapshot records,
//! restore and shard hand-over, as every stateful stage has them
//! ([`crate::stages::StatefulStage`]).

use super::*;

impl StatefulStage for HouseholdWindows {
    const PART: StatePart = StatePart::Households;

    /// Evicts the signals no assessment and no coming list can count, and
    /// households left with none. Returns the number of signals evicted.
    ///
    /// A signal of household `h` on partition `p` goes once it is older
    /// than `max(window_end(h) - L, low(p) - 2L)`, and than the window of the
    /// next daily list (`L` the window, `low(p)` the lowest watermark on
    /// the partition): every later assessment ends its window at or after
    /// `h`'s newest signal, and at or after the oldest signal that can
    /// still be accepted, `low(p) - L`. So eviction never changes an
    /// assessment or a list.
    fn on_watermark(&mut self, watermark: &Watermark) -> usize {
        let window = self.length_ms;
        let held = watermark.held_from().map(|t| t.ms());
        let cap = |t: i64| held.map_or(t, |from| t.min(from));
        // at most this: no household's window ends after the partition's
        // newest signal, so a record whose oldest signal is later is kept
        // without decoding it
        let bound = |shard: i32| watermark.newest(shard).map(|n| cap(n.ms() - window));
        let expiring = self.households.take_if(|r| {
            record::header(r.payload())
                .is_none_or(|(shard, oldest)| bound(shard).is_some_and(|b| oldest < b))
        });
        let mut evicted = 0;
        let mut slots = Vec::new();
        for r in expiring {
            self.scratch.clear();
            slots.clear();
            let mut texts = Texts {
                symbols: &self.symbols,
                scratch: &mut self.scratch,
            };
            let shard = record::decode(r.payload(), &mut texts, &mut slots);
            let by_watermark = watermark
                .low(shard)
                .map_or(i64::MIN, |low| low.ms() - 2 * window);
            let before = slots.len();
            if let Some(end) = slots.iter().map(|s| s.observed_at).max() {
                let horizon = cap((end - window).max(by_watermark));
                slots.retain(|s| s.observed_at >= horizon);
            }
            evicted += before - slots.len();
            if !slots.is_empty() {
                record::encode(shard, &slots, &texts, &mut self.encoded);
                self.households.put(Record::new(r.id(), &self.encoded));
            }
        }
        evicted
    }

    fn records(&self) -> impl Iterator<Item = (i32, &Record)> + '_ {
        self.households
            .iter()
            .map(|r| (record::header(r.payload()).map_or(0, |(shard, _)| shard), r))
    }

    /// Holds one household's record, translated when the snapshot was
    /// written under another pipeline definition; signals of a feed no
    /// longer in the pipeline are dropped.
    fn restore_record(&mut self, held: Record, restore: &Restore<'_>) -> Restored {
        let Some(t) = restore.translation else {
            self.households.put(held);
            return Restored::default();
        };
        let old = HeldHousehold {
            record: &held,
            symbols: &t.symbols,
        };
        let mut signals = old.signals();
        let before = signals.len();
        signals.retain_mut(
            |s| match t.feeds.get(usize::from(s.feed)).copied().flatten() {
                Some(feed) => {
                    s.feed = feed;
                    true
                }
                None => false,
            },
        );
        let dropped_signals = before - signals.len();
        if !signals.is_empty() {
            let mut texts = Texts {
                symbols: &self.symbols,
                scratch: &mut self.scratch,
            };
            let r = record::from_signals(
                held.id(),
                old.shard(),
                &signals,
                &mut texts,
                &mut self.encoded,
            );
            self.households.put(r);
        }
        Restored {
            dropped_signals,
            unreadable: 0,
        }
    }

    fn drop_shard(&mut self, shard: i32) -> usize {
        let before = self.households.len();
        self.households
            .retain(|r| record::header(r.payload()).is_none_or(|(s, _)| s != shard));
        before - self.households.len()
    }

    fn reserve(&mut self, more: usize) {
        self.households.reserve(more);
    }

    fn len(&self) -> usize {
        self.households.len()
    }
}

//! What the engine answers about the offices' work: overdue escalations,
//! open counts, a household's open work and case record, a dong's queue.
//! The case stage of each lane holds the records; these read them across
//! the lanes.

use super::*;
use crate::base::time::ClockTime;

impl Engine {
    /// The `overdue` escalations due by `now` (driver's clock), each
    /// once.
    pub(crate) fn overdue(&mut self, now: ClockTime) -> Vec<Escalation> {
        let mut out: Vec<Escalation> = Vec::new();
        for lane in &mut self.lanes {
            out.extend(lane.cases.overdue(now.ms()));
        }
        out.sort_by(|a, b| a.escalation_id.cmp(&b.escalation_id));
        out
    }

    /// Open, overdue and unreachable households per dong (and priority and
    /// status) as of `now`: a pass over the case records with the one
    /// model of open work, summed over the lanes.
    pub(crate) fn open_counts(&self, now: ClockTime) -> OpenCounts {
        let mut total = OpenCounts::default();
        for lane in &self.lanes {
            total.merge(lane.cases.open_counts(now.ms()));
        }
        total
    }

    /// The feeds' names, in feed order.
    pub fn feed_names(&self) -> &[String] {
        &self.feed_names
    }

    /// The feed index of the offices' outcomes.
    pub(crate) fn outcome_feed(&self) -> u16 {
        self.lanes[0].outcome_feed
    }

    /// A household's case record as held (see
    /// [`crate::stages::case::CaseBook::payload`]).
    pub(crate) fn case_payload(&self, household_id: &str) -> Option<std::sync::Arc<[u8]>> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .cases
            .payload(household_id)
            .map(std::sync::Arc::from)
    }

    /// Every record worth a place in the work queue (see
    /// [`crate::stages::case::CaseBook::work_payloads`]).
    pub(crate) fn work_payloads(
        &self,
        now: ClockTime,
        recent_ms: i64,
        also: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, std::sync::Arc<[u8]>)> {
        self.lanes
            .iter()
            .flat_map(|lane| lane.cases.work_payloads(now.ms(), recent_ms, also))
            .collect()
    }

    /// Forgets the alerts never sent (a backfill), keeping what offices
    /// recorded (see [`crate::stages::case::CaseBook::forget_unsent_alerts`]).
    pub(crate) fn forget_unsent_alerts(&mut self) {
        for lane in &mut self.lanes {
            lane.cases.forget_unsent_alerts();
        }
    }

    /// A household's open work at `now` (see
    /// [`crate::stages::case::work`]).
    pub(crate) fn household_work(&self, household_id: &str, now: ClockTime) -> Option<OpenWork> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .cases
            .household_work(household_id, now.ms())
    }

    /// Open households (see [`crate::stages::case::work`]) not in
    /// `assessed` (of state partition `shard`, or any), as candidate rows:
    /// the priority of their newest alert, no score, their open alerts'
    /// times as the signals' (their signals left the window).
    pub(crate) fn stale_open(
        &self,
        now: ClockTime,
        assessed: &std::collections::HashSet<String>,
        shard: Option<i32>,
    ) -> Vec<crate::stages::score::Assessment> {
        let mut out = Vec::new();
        for lane in &self.lanes {
            for (id, w) in lane.cases.open_households(now.ms()) {
                let mine = shard.is_none_or(|s| self.shard_of(&id) == Some(s));
                if !mine || assessed.contains(&id) {
                    continue;
                }
                let first = w.open_alerts.first().map_or(now.ms(), |a| a.emitted_at);
                let last = w.open_alerts.last().map_or(now.ms(), |a| a.emitted_at);
                out.push(crate::stages::score::Assessment {
                    household_id: id,
                    dong_code: w.dong.clone(),
                    priority: w.priority.unwrap_or(crate::stages::score::Priority::P3),
                    score: 0.0,
                    window_end: last,
                    categories: w
                        .categories
                        .iter()
                        .map(|c| std::sync::Arc::from(c.as_str()))
                        .collect(),
                    reasons: Vec::new(),
                    first_signal_at: first,
                    last_signal_at: last,
                    evidence: 0,
                });
            }
        }
        out.sort_by(|a, b| a.household_id.cmp(&b.household_id));
        out
    }

    /// The households open for `dong` at `now`, in the queue's order.
    pub(crate) fn queue_of(&self, dong: &str, now: ClockTime) -> Vec<(String, OpenWork)> {
        let mut open: Vec<(String, OpenWork)> = self
            .lanes
            .iter()
            .flat_map(|lane| lane.cases.open_of_dong(dong, now.ms()))
            .collect();
        open.sort_by_cached_key(|(id, w)| (w.queue_key(None), id.clone()));
        open
    }

    /// The bit set of category names over the pipeline's categories.
    pub(crate) fn category_set<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u8 {
        self.lanes[0].cases.category_set(names)
    }

    /// Case records held, and their bytes as held: each record's
    /// allocation (length, id and payload) and its table slot (8 bytes);
    /// for the memory benchmark.
    pub fn case_state_bytes(&self) -> (usize, usize) {
        use crate::stages::StatefulStage;
        let mut records = 0;
        let mut bytes = 0;
        for lane in &self.lanes {
            records += lane.cases.len();
            bytes += lane
                .cases
                .records()
                .map(|(_, r)| r.as_bytes().len() + 8)
                .sum::<usize>();
        }
        (records, bytes)
    }

    /// A household's case record (tests and tools).
    pub fn case_record(
        &self,
        household_id: &str,
    ) -> Option<crate::stages::case::record::CaseRecord> {
        self.lanes[self.lane_of(household_id.as_bytes())]
            .cases
            .record(household_id)
    }
}

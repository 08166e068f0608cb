//! One lane of the engine: its own decode, window, score and alert stages
//! for the households whose id hashes to it.

use arrow::record_batch::RecordBatch;

use crate::base::hash::fnv1a64;
use crate::base::keyed::prefetch_bytes;
use crate::base::message::InputMessage;
use crate::definition::PipelineSpec;
use crate::stages::alert::{Alert, AlertGate};
use crate::stages::case::escalation::Escalation;
use crate::stages::case::outcome::{self, Outcome};
use crate::stages::case::record::CaseRecord;
use crate::stages::case::{CaseBook, Verdict};
use crate::stages::decode::{Decoder, Reject};
use crate::stages::score::{Assessment, Candidate, ScoreError, Scorer};
use crate::stages::window::HouseholdWindows;

/// Runs `$body` once for each stateful stage of a lane, with `$s` bound to
/// it: `each_stage!(mut lane, s => ...)` borrows them mutably,
/// `each_stage!(lane, s => ...)` shared. The loop is unrolled, so every
/// call is statically dispatched; a new stateful stage is one more line
/// here and in [`Lane`].
macro_rules! each_stage {
    (mut $lane:expr, $s:ident => $body:expr) => {{
        {
            let $s = &mut $lane.windows;
            $body;
        }
        {
            let $s = &mut $lane.gate;
            $body;
        }
        {
            let $s = &mut $lane.cases;
            $body;
        }
    }};
    ($lane:expr, $s:ident => $body:expr) => {{
        {
            let $s = &$lane.windows;
            $body;
        }
        {
            let $s = &$lane.gate;
            $body;
        }
        {
            let $s = &$lane.cases;
            $body;
        }
    }};
}
pub(crate) use each_stage;

/// How many messages ahead a lane asks the memory for a payload.
const PAYLOAD_LOOKAHEAD: usize = 2;

/// The lane of a household among `lanes`, from its id.
pub(crate) fn lane_index(household_id: &[u8], lanes: usize) -> usize {
    (fnv1a64(&[household_id]) % lanes as u64) as usize
}

/// The stages for the households of one lane.
pub(crate) struct Lane {
    pub(crate) decoder: Decoder,
    pub(crate) windows: HouseholdWindows,
    pub(crate) scorer: Scorer,
    pub(crate) gate: AlertGate,
    pub(crate) cases: CaseBook,
    /// Batch indices of the messages routed to this lane (reused).
    pub(crate) msgs: Vec<u32>,
    /// The outcomes of the batch in flight, decoded, by batch index.
    outcomes: Vec<(u32, Outcome)>,
    /// The feed index of the outcomes topic.
    pub(crate) outcome_feed: u16,
    max_future_ms: i64,
    /// The decoded rows of the batch in flight, between the two phases.
    decoded: Option<RecordBatch>,
}

/// What one lane did with its part of a micro-batch.
#[derive(Default)]
pub(crate) struct LaneOutcome {
    pub(crate) alerts: Vec<Alert>,
    pub(crate) rejects: Vec<(usize, Reject)>,
    pub(crate) accepted: usize,
    pub(crate) duplicates: usize,
    pub(crate) suppressed: usize,
    pub(crate) dropped_over_cap: usize,
    pub(crate) escalations: Vec<Escalation>,
    /// Outcomes recorded (not counting re-sends), as decoded.
    pub(crate) outcomes: Vec<Outcome>,
    /// Alerts answered by their first reach.
    pub(crate) first_contacts: Vec<crate::stages::case::FirstContact>,
    /// Assessments held back by an outcome, or quiet while in case.
    pub(crate) held: usize,
    /// Assessments of households recorded deceased (signals dropped).
    pub(crate) deceased: usize,
}

impl Lane {
    pub(crate) fn new(spec: &PipelineSpec) -> Self {
        let gate = AlertGate::new(spec);
        Lane {
            decoder: Decoder::new(spec),
            windows: HouseholdWindows::new(spec),
            scorer: Scorer::new(spec),
            cases: CaseBook::new(spec, std::sync::Arc::clone(gate.tag())),
            gate,
            msgs: Vec::new(),
            outcomes: Vec::new(),
            outcome_feed: spec.outcome_feed(),
            max_future_ms: i64::from(spec.window.max_future_hours) * 3_600_000,
            decoded: None,
        }
    }

    /// decode for this lane's messages: the rejects, and the decoded rows
    /// kept for [`Lane::process`].
    pub(crate) fn decode(&mut self, msgs: &[InputMessage], now_ms: i64) -> Vec<(usize, Reject)> {
        let mut rejects = Vec::new();
        for (k, &i) in self.msgs.iter().enumerate() {
            // Payloads lie wherever the consumer put them, each a cache miss
            // that parsing would otherwise wait on; ask for them early.
            if let Some(ahead) = self
                .msgs
                .get(k + PAYLOAD_LOOKAHEAD)
                .and_then(|&j| msgs.get(j as usize))
                .and_then(|m| m.payload.as_deref())
            {
                prefetch_bytes(ahead);
            }
            let m = &msgs[i as usize];
            let Some(feed) = m.feed else { continue };
            if feed == self.outcome_feed {
                let decoded = outcome::decode(
                    m.key.as_deref(),
                    m.payload.as_deref(),
                    now_ms,
                    self.max_future_ms,
                );
                match decoded {
                    Ok(o) => self.outcomes.push((i, o)),
                    Err(reject) => rejects.push((i as usize, reject)),
                }
                continue;
            }
            if let Err(reject) =
                self.decoder
                    .decode(i, feed, m.key.as_deref(), m.payload.as_deref(), now_ms)
            {
                rejects.push((i as usize, reject));
            }
        }
        self.decoded = Some(self.decoder.finish());
        rejects
    }

    /// The decoded rows of the batch in flight (after [`Lane::decode`]).
    pub(crate) fn decoded(&self) -> Option<&RecordBatch> {
        self.decoded.as_ref()
    }

    /// window -> score -> alert for the rows [`Lane::decode`] kept, with the
    /// engine's verdict on lateness per message; then the outcomes it kept.
    pub(crate) async fn process(
        &mut self,
        shards: &[i32],
        late: &[bool],
        now_ms: i64,
    ) -> Result<LaneOutcome, ScoreError> {
        let mut out = LaneOutcome::default();
        if let Some(decoded) = self.decoded.take() {
            self.signals(decoded, shards, late, now_ms, &mut out)
                .await?;
        }
        // outcomes after the signals: an outcome that names an alert of this
        // batch finds it (as a replay after a crash reads them together)
        self.outcomes(shards, now_ms, &mut out);
        Ok(out)
    }

    /// Records the outcomes [`Lane::decode`] kept.
    fn outcomes(&mut self, shards: &[i32], now_ms: i64, out: &mut LaneOutcome) {
        let outcomes = std::mem::take(&mut self.outcomes);
        self.cases
            .look_ahead(outcomes.iter().map(|(_, o)| o.household_id.as_str()));
        for (k, (i, o)) in outcomes.into_iter().enumerate() {
            self.cases.prefetch_at(k);
            let shard = shards.get(i as usize).copied().unwrap_or_default();
            match self.cases.apply(&o, shard, now_ms) {
                Ok(applied) if applied.duplicate => out.duplicates += 1,
                Ok(applied) => {
                    out.escalations.extend(applied.escalations);
                    out.first_contacts.extend(applied.first_contacts);
                    out.outcomes.push(o);
                }
                Err(reject) => out.rejects.push((i as usize, reject)),
            }
        }
    }

    /// window -> score -> alert for the decoded signals of a batch.
    async fn signals(
        &mut self,
        decoded: RecordBatch,
        shards: &[i32],
        late: &[bool],
        now_ms: i64,
        out: &mut LaneOutcome,
    ) -> Result<(), ScoreError> {
        let window = self.windows.process_batch(&decoded, shards, late);
        out.accepted = window.accepted;
        out.duplicates = window.duplicates;
        out.dropped_over_cap = window.dropped_over_cap;
        out.rejects
            .extend(window.late.into_iter().map(|(i, r)| (i as usize, r)));
        let scored = self.scorer.score(window.table).await?;
        let mut candidates: Vec<_> = scored.candidates().collect();
        // the households with a case record are judged by it first (the
        // others, most of them, go straight to the cooldown)
        // (reasons are rendered later, only for what is sent)
        let mut judged: Vec<(usize, Verdict)> = Vec::new();
        // the records judged, by candidate: one the gate sends is not
        // looked up and decoded a second time
        let mut folded: Vec<(usize, Option<CaseRecord>)> = Vec::new();
        let judging: Vec<usize> = (0..candidates.len())
            .filter(|&i| self.cases.needs_judging(candidates[i].household_id))
            .collect();
        self.cases
            .look_ahead(judging.iter().map(|&i| candidates[i].household_id));
        for (k, &i) in judging.iter().enumerate() {
            self.cases.prefetch_at(k);
            let c = &mut candidates[i];
            let mut categories = 0u8;
            let cases = &self.cases;
            let dong = scored
                .dong_and_categories(i, |name| categories |= cases.category_set([name]))
                .unwrap_or_default();
            let (verdict, record) =
                cases.judge(c.household_id, c.priority, categories, dong, c.window_end);
            if let Verdict::Gate(p) = verdict {
                folded.push((i, record));
                if p == c.priority {
                    continue;
                }
                c.priority = p;
            }
            judged.push((i, verdict));
        }
        let verdict_of = |i: usize| {
            judged
                .binary_search_by_key(&i, |j| j.0)
                .ok()
                .map(|k| judged[k].1)
        };
        let gated: Vec<usize> = (0..candidates.len())
            .filter(|&i| verdict_of(i).is_none_or(|v| matches!(v, Verdict::Gate(_))))
            .collect();
        let sent = gate_decides(&mut self.gate, &self.windows, &candidates, &gated);
        // reasons are rendered only for the alerts sent: the cooldown holds
        // back about a third of the assessments
        self.cases.look_ahead(
            gated
                .iter()
                .zip(&sent)
                .filter(|(_, send)| send.is_some())
                .map(|(&i, _)| candidates[i].household_id),
        );
        let mut k = 0;
        for (&i, send) in gated.iter().zip(sent) {
            let Some(shard) = send else {
                out.suppressed += 1;
                continue;
            };
            self.cases.prefetch_at(k);
            k += 1;
            let Some(mut a) = scored.assessment(i) else {
                continue;
            };
            let scored_priority = a.priority;
            a.priority = candidates[i].priority;
            let (mut alert, id) = self.gate.render_hashed(a, now_ms);
            let known = folded
                .binary_search_by_key(&i, |f| f.0)
                .ok()
                .and_then(|k| folded[k].1.take());
            if let Some(e) = self
                .cases
                .on_sent(&mut alert, id, scored_priority, shard, known)
            {
                out.escalations.push(e);
            }
            out.alerts.push(alert);
        }
        let stages = (&mut self.gate, &mut self.cases, &mut self.windows);
        settle_verdicts(stages, judged, &candidates, &scored, now_ms, out);
        Ok(())
    }

    /// Scores the given households of this lane, reasons and all, as of
    /// `as_of` when given (see [`HouseholdWindows::table_of`]).
    pub(crate) async fn assess(
        &self,
        households: &[&str],
        as_of: Option<i64>,
    ) -> Result<Vec<Assessment>, ScoreError> {
        let table = self.windows.table_of(households.iter().copied(), as_of);
        self.scorer.assess(table).await
    }
}
/// What the case stage's verdicts do besides the gate's: a deceased
/// household's signals go; a held, quiet or updated household stays among
/// those the daily lists look at (a quiet one is noted as still
/// qualifying); a case update is sent.
fn settle_verdicts(
    (gate, cases, windows): (&mut AlertGate, &mut CaseBook, &mut HouseholdWindows),
    judged: Vec<(usize, Verdict)>,
    candidates: &[Candidate<'_>],
    scored: &crate::stages::score::Scored<'_>,
    now_ms: i64,
    out: &mut LaneOutcome,
) {
    for (i, verdict) in judged {
        let c = candidates[i];
        let shard = windows.shard_of(c.household_id).unwrap_or_default();
        if verdict == Verdict::Drop {
            windows.forget(c.household_id);
            out.deceased += 1;
            continue;
        }
        if matches!(verdict, Verdict::Gate(_)) {
            continue;
        }
        gate.index_priority(c.household_id, c.priority, c.window_end, shard);
        match verdict {
            Verdict::Quiet => {
                cases.on_quiet(c.household_id, c.window_end);
                out.held += 1;
            }
            Verdict::CaseUpdate => {
                if let Some(a) = scored.assessment(i) {
                    let (mut alert, id) = gate.render_hashed(a, now_ms);
                    cases.on_case_update(&mut alert, id, shard);
                    out.alerts.push(alert);
                }
            }
            _ => out.held += 1,
        }
    }
}

/// The alert gate's decision for the `gated` candidates (all of them, or
/// those the case book left to it): each one's shard to send on, or `None`
/// for the cooldown.
fn gate_decides(
    gate: &mut AlertGate,
    windows: &HouseholdWindows,
    candidates: &[Candidate<'_>],
    gated: &[usize],
) -> Vec<Option<i32>> {
    let shard = |hh: &str| windows.shard_of(hh).unwrap_or_default();
    if gated.len() == candidates.len() {
        gate.decide(candidates, shard)
    } else {
        let picked: Vec<_> = gated.iter().map(|&i| candidates[i]).collect();
        gate.decide(&picked, shard)
    }
}

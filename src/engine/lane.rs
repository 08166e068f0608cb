//! One lane of the engine: its own decode, window, score and alert stages
//! for the households whose id hashes to it.

use arrow::record_batch::RecordBatch;

use crate::base::hash::fnv1a64;
use crate::base::keyed::prefetch_bytes;
use crate::base::message::InputMessage;
use crate::definition::PipelineSpec;
use crate::stages::alert::{Alert, AlertGate};
use crate::stages::decode::{Decoder, Reject};
use crate::stages::score::{Assessment, ScoreError, Scorer};
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
    /// Batch indices of the messages routed to this lane (reused).
    pub(crate) msgs: Vec<u32>,
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
}

impl Lane {
    pub(crate) fn new(spec: &PipelineSpec) -> Self {
        Lane {
            decoder: Decoder::new(spec),
            windows: HouseholdWindows::new(spec),
            scorer: Scorer::new(spec),
            gate: AlertGate::new(spec),
            msgs: Vec::new(),
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
    /// engine's verdict on lateness per message.
    pub(crate) async fn process(
        &mut self,
        shards: &[i32],
        late: &[bool],
        now_ms: i64,
    ) -> Result<LaneOutcome, ScoreError> {
        let mut out = LaneOutcome::default();
        let Some(decoded) = self.decoded.take() else {
            return Ok(out);
        };
        let window = self.windows.process_batch(&decoded, shards, late);
        out.accepted = window.accepted;
        out.duplicates = window.duplicates;
        out.dropped_over_cap = window.dropped_over_cap;
        out.rejects
            .extend(window.late.into_iter().map(|(i, r)| (i as usize, r)));
        let scored = self.scorer.score(window.table).await?;
        let candidates: Vec<_> = scored.candidates().collect();
        let windows = &self.windows;
        let sent = self
            .gate
            .decide(&candidates, |hh| windows.shard_of(hh).unwrap_or_default());
        // reasons are rendered only for the alerts sent: the cooldown holds
        // back about a third of the assessments
        for (i, send) in sent.into_iter().enumerate() {
            if !send {
                out.suppressed += 1;
            } else if let Some(a) = scored.assessment(i) {
                out.alerts.push(self.gate.render(a, now_ms));
            }
        }
        Ok(out)
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

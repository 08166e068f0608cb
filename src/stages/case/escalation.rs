//! What goes to the city team (`city.escalations`, key: dong code): an
//! alert nobody contacted in time, a household nobody can find, a
//! household flagged again and again without being reached.

use std::sync::Arc;

use serde::Serialize;

use crate::stages::alert::{as_rfc3339, hex_id, shared, PipelineTag};
use crate::stages::score::Priority;

/// Why a household goes to the city team (`reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EscalationReason {
    /// An alert passed its due time without anyone of the household
    /// reached.
    Overdue,
    /// The household cannot be found: a residence check is needed.
    Unreachable,
    /// Flagged again and again without counselling, support or a case.
    RepeatedlyFlagged,
}

impl EscalationReason {
    /// Every reason.
    pub(crate) const ALL: [EscalationReason; 3] = [
        EscalationReason::Overdue,
        EscalationReason::Unreachable,
        EscalationReason::RepeatedlyFlagged,
    ];

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EscalationReason::Overdue => "overdue",
            EscalationReason::Unreachable => "unreachable",
            EscalationReason::RepeatedlyFlagged => "repeatedly_flagged",
        }
    }
}

/// One outcome as an escalation lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OutcomeSoFar {
    /// Its `kind`, with its value after a slash where it has one.
    pub(crate) kind: String,
    /// Korean label.
    pub(crate) label: String,
    /// When it was recorded, ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub(crate) recorded_at: i64,
    /// How a contact was attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) channel: Option<&'static str>,
    /// The services a `support_linked` linked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) services: Vec<&'static str>,
    /// Recorded by the city team.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) by_city: bool,
    /// 32 bits of the hash of its `outcome_id` (what the record keeps), to
    /// match it with the id the web front saw.
    #[serde(skip)]
    pub(crate) key: u32,
}

/// The JSON value sent to `city.escalations` (key: `dong_code`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Escalation {
    /// `es-` and 32 hex digits: the same escalation (reason, household and
    /// what it is about) always has the same id, so a consumer that sees
    /// it twice after a restart keeps one.
    pub(crate) escalation_id: String,
    /// Why.
    pub(crate) reason: EscalationReason,
    /// Pseudonymous household id.
    pub(crate) household_id: String,
    /// The dong office serving it.
    pub(crate) dong_code: String,
    /// The alerts concerned, oldest first.
    pub(crate) alert_ids: Vec<String>,
    /// Priority of its newest alert.
    pub(crate) priority: Option<Priority>,
    /// Since when: the due time passed, the first failed attempt, or the
    /// first of the repeated alerts' window ends; ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub(crate) since: i64,
    /// Alerts sent for the household so far.
    pub(crate) times_flagged: u32,
    /// Failed contact attempts since someone of the household was last
    /// reached.
    pub(crate) attempts: u32,
    /// Every outcome recorded for it so far (withdrawn ones left out).
    pub(crate) outcomes: Vec<OutcomeSoFar>,
    /// When it was decided (driver's clock), ms (RFC 3339 on the wire).
    #[serde(serialize_with = "as_rfc3339")]
    pub(crate) emitted_at: i64,
    /// Pipeline that produced it.
    #[serde(serialize_with = "shared")]
    pub(crate) pipeline: Arc<PipelineTag>,
}

/// The id of an escalation: what it is about, hashed (`about` is the alert
/// concerned, or the first failed attempt of an unreachable spell).
pub(crate) fn escalation_id(reason: EscalationReason, household_id: &str, about: &[u8]) -> String {
    let h =
        crate::base::hash::fnv1a128(&[reason.as_str().as_bytes(), household_id.as_bytes(), about]);
    hex_id("es-", h)
}

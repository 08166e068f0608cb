//! What the case stage writes of outcomes and statuses: wire names with
//! their values (`contact_attempted/no_answer`), Korean labels from the
//! pipeline or the declarations, local dates. Made once per pipeline: every
//! alert of a household with outcomes carries its last one.

use super::escalation::OutcomeSoFar;
use super::outcome::{
    CloseReason, ContactResult, NotApplicableReason, OutcomeKind, Service, Track,
};
use super::record::CaseRecord;
use super::rules::{CaseView, Rules};
use super::{text_slot, CaseBook};
use crate::stages::alert::{CaseStatus, LastOutcome};

impl CaseBook {
    /// The wire name of an outcome with its value (`contact_attempted/no_answer`).
    pub(crate) fn kind_text(kind: OutcomeKind, detail: u8) -> String {
        let value = match kind {
            OutcomeKind::ContactAttempted => ContactResult::from_code(detail).map(|v| v.as_str()),
            OutcomeKind::CaseOpened => Track::from_code(detail).map(|v| v.as_str()),
            OutcomeKind::NotApplicable => {
                NotApplicableReason::from_code(detail).map(|v| v.as_str())
            }
            OutcomeKind::CaseClosed => CloseReason::from_code(detail).map(|v| v.as_str()),
            _ => None,
        };
        match value {
            Some(v) => format!("{}/{v}", kind.as_str()),
            None => kind.as_str().to_string(),
        }
    }

    /// The Korean label of an outcome with its value (`연락 시도 (응답 없음)`),
    /// from the pipeline's labels or the declaration's.
    pub(super) fn make_label(rules: &Rules, kind: OutcomeKind, detail: u8) -> String {
        let head = rules.label(kind.as_str(), kind.label_ko());
        let value = match kind {
            OutcomeKind::ContactAttempted => {
                ContactResult::from_code(detail).map(|v| (v.as_str(), v.label_ko()))
            }
            OutcomeKind::CaseOpened => Track::from_code(detail).map(|v| (v.as_str(), v.label_ko())),
            OutcomeKind::NotApplicable => {
                NotApplicableReason::from_code(detail).map(|v| (v.as_str(), v.label_ko()))
            }
            OutcomeKind::CaseClosed => {
                CloseReason::from_code(detail).map(|v| (v.as_str(), v.label_ko()))
            }
            _ => None,
        };
        match value {
            Some((name, ko)) => format!("{head} ({})", rules.label(name, ko)),
            None => head,
        }
    }

    /// [`CaseBook::texts`] for the pipeline's labels.
    pub(super) fn all_texts(rules: &Rules) -> Vec<(String, String)> {
        let mut texts = vec![Default::default(); 256];
        for &kind in OutcomeKind::ALL {
            for detail in 0..16 {
                texts[text_slot(kind, detail)] = (
                    Self::kind_text(kind, detail),
                    Self::make_label(rules, kind, detail),
                );
            }
        }
        texts
    }

    /// [`CaseBook::kind_text`] and the Korean label of an outcome, made once
    /// (every alert of a household with outcomes carries its last one).
    pub(super) fn texts(&self, kind: OutcomeKind, detail: u8) -> &(String, String) {
        &self.texts[text_slot(kind, detail)]
    }

    /// The Korean label of a status (`소재파악 필요`).
    pub(crate) fn status_label(&self, status: CaseStatus) -> String {
        self.rules.label(status.as_str(), status.label_ko())
    }

    /// The local date (`YYYY-MM-DD`) of an instant.
    pub(crate) fn local_date(&self, ms: i64) -> String {
        crate::base::civil::date_bytes(self.rules.local_day(ms))
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default()
    }

    pub(super) fn last_outcome(&self, view: &CaseView) -> Option<LastOutcome> {
        view.last.map(|o| {
            let (kind, label) = self.texts(o.kind, o.detail).clone();
            LastOutcome {
                kind,
                label,
                date: self.local_date(o.recorded_at),
            }
        })
    }

    /// The outcomes that count, with their labels, oldest first.
    pub(super) fn outcomes_so_far(&self, r: &CaseRecord) -> Vec<OutcomeSoFar> {
        r.live_outcomes()
            .into_iter()
            .map(|o| {
                let (kind, label) = self.texts(o.kind, o.detail).clone();
                OutcomeSoFar {
                    kind,
                    label,
                    recorded_at: o.recorded_at,
                    channel: o.channel.map(|c| c.as_str()),
                    services: Service::ALL
                        .iter()
                        .filter(|s| o.services & (1 << s.code()) != 0)
                        .map(|s| s.as_str())
                        .collect(),
                    by_city: o.by_city,
                    key: o.id,
                }
            })
            .collect()
    }
}

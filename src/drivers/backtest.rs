//! The backtest of `sagak compare --outcomes FILE...`: for every household
//! with a recorded outcome, what the candidate pipeline (B) would have done
//! beside the current one (A). Helped households (support linked or a case
//! opened) it would not have alerted, or would have alerted later, are the
//! cost of a change; households found not applicable (no need, already a
//! recipient, a data error) it would no longer alert are its gain. The
//! finding of each household is its most conclusive outcome, as the yield
//! of the rules reads it ([`YieldResult`]); an outcome is the office's
//! finding, not ground truth.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::replay::ReplayError;
use crate::definition::DAY_MS;
use crate::stages::case::outcome::NotApplicableReason;
use crate::stages::case::rules::YieldResult;

/// What the candidate would have done to the households with outcomes.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Backtest {
    /// Households with a recorded outcome.
    pub households_with_outcomes: usize,
    /// Of which helped.
    pub helped: usize,
    /// Helped households A alerted and B would not have.
    pub helped_not_alerted: Vec<String>,
    /// Helped households B would have alerted later than A, with the days.
    pub helped_later: Vec<(String, f64)>,
    /// Of which found not applicable (no need, already a recipient, a data
    /// error).
    pub not_applicable: usize,
    /// Households found not applicable that A alerted and B would not.
    pub not_applicable_spared: Vec<String>,
}

impl Backtest {
    /// The lines the comparison's summary leads with.
    pub(crate) fn lines(&self) -> Vec<String> {
        let names = |v: &[String]| match v.len() {
            0 => String::new(),
            n if n <= 10 => format!(": {}", v.join(", ")),
            n => format!(": {}, ... ({} more)", v[..10].join(", "), n - 10),
        };
        let later: Vec<String> = self
            .helped_later
            .iter()
            .map(|(h, d)| format!("{h} (+{d:.1} days)"))
            .collect();
        vec![
            format!(
                "backtest against {} households with recorded outcomes (the offices' findings, not ground truth)",
                self.households_with_outcomes
            ),
            format!(
                "  helped households B would not have alerted: {} of {}{}",
                self.helped_not_alerted.len(),
                self.helped,
                names(&self.helped_not_alerted)
            ),
            format!(
                "  helped households B would have alerted later: {}{}",
                later.len(),
                names(&later)
            ),
            format!(
                "  households found not applicable B would no longer alert: {} of {}{}",
                self.not_applicable_spared.len(),
                self.not_applicable,
                names(&self.not_applicable_spared)
            ),
        ]
    }

    /// What the backtest says of `household`, for `households.csv`.
    pub(crate) fn verdict(&self, household: &str) -> Option<String> {
        if self.helped_not_alerted.iter().any(|h| h == household) {
            return Some("helped, not alerted by B".into());
        }
        if let Some((_, days)) = self.helped_later.iter().find(|(h, _)| h == household) {
            return Some(format!("helped, alerted {days:.1} days later by B"));
        }
        if self.not_applicable_spared.iter().any(|h| h == household) {
            return Some("not applicable, no longer alerted by B".into());
        }
        None
    }
}

/// Whether a finding is one a rule change may spare the offices.
fn spared_finding(r: YieldResult) -> bool {
    matches!(
        r,
        YieldResult::NotApplicable(
            NotApplicableReason::NoNeed
                | NotApplicableReason::AlreadyRecipient
                | NotApplicableReason::DataError
        )
    )
}

/// Each household's most conclusive finding in the outcome files (a line
/// the pipeline's decoder refuses says nothing).
pub(crate) fn findings(files: &[PathBuf]) -> Result<BTreeMap<String, YieldResult>, ReplayError> {
    let mut out: BTreeMap<String, YieldResult> = BTreeMap::new();
    for path in files {
        let file = std::fs::File::open(path).map_err(|error| ReplayError::Read {
            path: path.clone(),
            error,
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|error| ReplayError::Read {
                path: path.clone(),
                error,
            })?;
            // a file's line has no message key: the decoder wants the
            // household's, as the replay gives it
            let key = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["household_id"].as_str().map(String::from))
                .unwrap_or_default();
            let decoded = crate::stages::case::outcome::decode(
                Some(key.as_bytes()),
                Some(line.as_bytes()),
                i64::MAX / 4,
                0,
            );
            let Ok(o) = decoded else {
                continue;
            };
            let Some(r) = YieldResult::of(o.said.kind(), o.said.detail()) else {
                continue;
            };
            let kept = out.entry(o.household_id).or_insert(r);
            if r.rank() > kept.rank() {
                *kept = r;
            }
        }
    }
    Ok(out)
}

/// Each household's first alert (not a case update) in a run's
/// `alerts.ndjson`: when it was sent, ms.
pub(crate) fn first_alerts(run: &Path) -> BTreeMap<String, i64> {
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(run.join("alerts.ndjson")) else {
        return first;
    };
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        if v["type"].as_str().is_some_and(|t| t != "alert") {
            continue;
        }
        let at = v["emitted_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        if let (Some(hh), Some(at)) = (v["household_id"].as_str(), at) {
            let e = first.entry(hh.to_string()).or_insert(at);
            *e = (*e).min(at);
        }
    }
    first
}

/// The backtest of runs `a` and `b` against the outcome files.
pub(crate) fn run(files: &[PathBuf], a: &Path, b: &Path) -> Result<Backtest, ReplayError> {
    let findings = findings(files)?;
    let (a, b) = (first_alerts(a), first_alerts(b));
    let mut t = Backtest {
        households_with_outcomes: findings.len(),
        ..Backtest::default()
    };
    for (household, finding) in &findings {
        let (x, y) = (a.get(household), b.get(household));
        if *finding == YieldResult::Helped {
            t.helped += 1;
            match (x, y) {
                (Some(_), None) => t.helped_not_alerted.push(household.clone()),
                (Some(x), Some(y)) if y > x => t
                    .helped_later
                    .push((household.clone(), (y - x) as f64 / DAY_MS as f64)),
                _ => {}
            }
        } else if spared_finding(*finding) {
            t.not_applicable += 1;
            if x.is_some() && y.is_none() {
                t.not_applicable_spared.push(household.clone());
            }
        }
    }
    Ok(t)
}

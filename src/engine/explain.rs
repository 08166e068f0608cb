//! Why a household was (or was not) alerted, from what the engine holds:
//! its live signals and whether each counted under `score.sql` at the time
//! asked, the priority, categories and score the SQL gives, the alert
//! gate's mark and cooldown, and the case record's status (a hold and the
//! outcome that set it, case management, deceased). It reads the state and
//! asks the pipeline's own SQL; it keeps no copy of the rules. A threshold
//! a signal missed is named when the pipeline has a `<category>_min_months`
//! parameter (the default pipeline's `health_min_months`,
//! `utility_min_months`).

use std::fmt::Write;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};

use super::Engine;
use crate::base::time::{ClockTime, EventTime};
use crate::definition::{PipelineSpec, DAY_MS};
use crate::stages::score::ScoreError;

/// One live signal and what became of it.
struct Seen {
    feed: String,
    category: String,
    observed_at: i64,
    months: Option<i64>,
    verdict: String,
}

fn day(ms: i64) -> String {
    crate::stages::alert::rfc3339(ms)[..10].to_string()
}

impl Engine {
    /// The explanation of `household` as of `as_of` (event time: the
    /// window ends there) and `now` (the driver's clock: holds, dues), in
    /// Korean and English lines.
    pub async fn explain(
        &self,
        spec: &PipelineSpec,
        household: &str,
        as_of: EventTime,
        now: ClockTime,
    ) -> Result<String, ScoreError> {
        let lane = &self.lanes[self.lane_of(household.as_bytes())];
        let all = lane.windows.table_of(std::iter::once(household), None);
        let assessed = self.assess(&[household], as_of).await?;
        let a = assessed.first();
        let window_ms = i64::from(spec.window.length_days) * DAY_MS;
        let from = as_of.ms() - window_ms;
        let seen = signals(&all, |feed, observed_at, months| {
            let counted = a.is_some_and(|a| {
                a.reasons.iter().any(|r| {
                    &*r.signal == feed && r.observed_at == observed_at && r.months_overdue == months
                })
            });
            if counted {
                "counts / 반영".to_string()
            } else if observed_at < from {
                format!(
                    "too old: before the window's start {} / 기간 지남",
                    day(from)
                )
            } else if observed_at > as_of.ms() {
                "after the time asked / 기준 시각 이후".to_string()
            } else {
                "does not qualify under score.sql / 기준 미달".to_string()
            }
        });
        let mut out = String::new();
        let _ = writeln!(
            out,
            "household {household} as of {} (window {} .. {})",
            crate::stages::alert::rfc3339(as_of.ms()),
            day(from),
            day(as_of.ms())
        );
        out.push_str("signals kept in its window / 신호:\n");
        if seen.is_empty() {
            out.push_str("  none (no live signal is kept for it)\n");
        }
        for s in &seen {
            let _ = write!(out, "  {} {} [{}]", day(s.observed_at), s.feed, s.category);
            if let Some(m) = s.months {
                let _ = write!(out, " {m} months overdue");
            }
            let _ = writeln!(out, ": {}", s.verdict);
            if s.verdict.starts_with("does not") {
                if let (Some(m), Some(min)) = (
                    s.months,
                    spec.param_i64(&format!("{}_min_months", s.category)),
                ) {
                    let _ = writeln!(
                        out,
                        "    {}_min_months = {min}: {} short / {}개월 부족",
                        s.category,
                        min - m,
                        min - m
                    );
                }
            }
        }
        out.push_str("  (a signal superseded by a later one of the same subject is not kept)\n");
        match a {
            Some(a) => {
                let cats: Vec<&str> = a.categories.iter().map(|c| &**c).collect();
                let _ = writeln!(
                    out,
                    "assessment / 판정: {} (score {:.1}), categories {}",
                    a.priority.as_str(),
                    a.score,
                    cats.join(", ")
                );
                let table = lane
                    .windows
                    .table_of(std::iter::once(household), Some(as_of.ms()));
                out.push_str(&terms(spec, table, a.score).await?);
            }
            None => out.push_str(
                "assessment / 판정: no priority: no category qualifies (우선순위 없음)\n",
            ),
        }
        self.explain_gate(spec, household, a.map(|a| a.priority), as_of, &mut out);
        self.explain_case(household, now, &mut out);
        Ok(out)
    }

    /// The alert gate's side: the last alert and its cooldown.
    fn explain_gate(
        &self,
        spec: &PipelineSpec,
        household: &str,
        priority: Option<crate::stages::score::Priority>,
        as_of: EventTime,
        out: &mut String,
    ) {
        let Some(mark) = self.alert_mark(household).filter(|m| m.count > 0) else {
            let what = match priority {
                Some(p) => format!("an alert at {} goes (none was sent before)", p.as_str()),
                None => "no alert (none was sent)".into(),
            };
            let _ = writeln!(out, "alert / 알림: {what}");
            return;
        };
        let until = mark.at + i64::from(spec.alerts.cooldown_days) * DAY_MS;
        let _ = writeln!(
            out,
            "last alert / 마지막 알림: {} at window end {}; {} sent so far",
            mark.priority.as_str(),
            day(mark.at),
            mark.count
        );
        let decision = match priority {
            Some(p) if p > mark.priority => format!("an alert at {} goes (the household escalated)", p.as_str()),
            Some(_) if as_of.ms() < until => format!(
                "no alert: the same or a lower priority is held back until {} (cooldown {} days) / 재알림 대기",
                day(until),
                spec.alerts.cooldown_days
            ),
            Some(p) => format!("an alert at {} goes again (the cooldown ended {})", p.as_str(), day(until)),
            None => "no alert: no priority".into(),
        };
        let _ = writeln!(out, "alert / 알림: {decision}");
    }

    /// The case record's side: status, a hold and its outcome, a case.
    fn explain_case(&self, household: &str, now: ClockTime, out: &mut String) {
        let Some(work) = self.household_work(household, now) else {
            out.push_str("case / 사례: no case record (no alert or outcome kept)\n");
            return;
        };
        out.push_str(&work.explained(&self.lanes[0].cases.clock()));
    }
}

/// The score's terms: for each weight of `[params]`, how much of the
/// score it makes, found by running the pipeline's own SQL with that
/// weight at zero (the score is a sum of weighted terms).
async fn terms(
    spec: &PipelineSpec,
    table: arrow::record_batch::RecordBatch,
    score: f64,
) -> Result<String, ScoreError> {
    let mut out = String::from("  terms of the score / 점수 구성:");
    for weight in spec.weights() {
        let Some(variant) = spec.without(&weight) else {
            continue;
        };
        let scorer = crate::stages::score::Scorer::new(&variant);
        let without = scorer
            .assess(table.clone())
            .await?
            .first()
            .map_or(0.0, |a| a.score);
        let _ = write!(out, " {weight} {:.1}", score - without);
    }
    out.push('\n');
    Ok(out)
}

/// The live signals of a `signals` table, each with `verdict`.
fn signals(
    table: &arrow::record_batch::RecordBatch,
    verdict: impl Fn(&str, i64, Option<i64>) -> String,
) -> Vec<Seen> {
    let column = |name: &str| table.column_by_name(name);
    let (Some(feed), Some(category), Some(at), Some(months)) = (
        column("feed"),
        column("category"),
        column("observed_at"),
        column("months_overdue"),
    ) else {
        return Vec::new();
    };
    let (feed, category) = (feed.as_string::<i32>(), category.as_string::<i32>());
    let at = at.as_primitive::<TimestampMillisecondType>();
    let months = months.as_primitive::<Int64Type>();
    (0..table.num_rows())
        .map(|i| {
            let m = months.is_valid(i).then(|| months.value(i));
            Seen {
                feed: feed.value(i).to_string(),
                category: category.value(i).to_string(),
                observed_at: at.value(i),
                months: m,
                verdict: verdict(feed.value(i), at.value(i), m),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::message::InputMessage;
    use crate::testkit::{default_spec, health, input, job_loss, NOW};

    fn outcome(spec: &PipelineSpec, household: &str, json: &str) -> InputMessage {
        let mut m = input(spec, "health-insurance", household, json.to_string());
        m.feed = Some(spec.outcome_feed());
        m
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_household_names_its_outcome_and_a_low_one_its_gap() {
        let spec = default_spec();
        let mut engine = Engine::new(&spec);
        engine.start().await.unwrap();
        let msgs = vec![
            // P2: four months of premiums and a job loss
            input(
                &spec,
                "health-insurance",
                "hh-held",
                health("h-1", "hh-held", "2026-11-10", 4),
            ),
            input(
                &spec,
                "job-loss",
                "hh-held",
                job_loss("j-1", "hh-held", "2026-11-11", "4125052000"),
            ),
            // two months: under the threshold
            input(
                &spec,
                "health-insurance",
                "hh-low",
                health("h-2", "hh-low", "2026-11-12", 2),
            ),
        ];
        let sent = engine
            .process_batch(&msgs, ClockTime::from_ms(NOW))
            .await
            .unwrap();
        assert_eq!(sent.alerts.len(), 1);
        let declined = r#"{"outcome_id":"o-1","household_id":"hh-held","dong_code":"4125052000","recorded_at":"2026-11-18T12:00:00Z","staff_id":"s-1","kind":"declined"}"#;
        let later = ClockTime::from_ms(NOW + 3_600_000);
        let done = engine
            .process_batch(&[outcome(&spec, "hh-held", declined)], later)
            .await
            .unwrap();
        assert_eq!(done.outcomes, 1, "{:?}", done.rejects);
        let as_of = EventTime::from_ms(NOW + 3_600_000);
        let held = engine
            .explain(&spec, "hh-held", as_of, later)
            .await
            .unwrap();
        // the hold holds 90 days from the outcome
        assert!(held.contains("held until 2027-02-16"), "{held}");
        assert!(held.contains("by declined"), "{held}");
        assert!(held.contains("P2"), "{held}");
        // two categories and one job loss, each term from the pipeline's SQL
        assert!(held.contains("category_weight 200.0"), "{held}");
        assert!(held.contains("employment_weight 15.0"), "{held}");
        assert!(held.contains("disconnected_weight 0.0"), "{held}");
        assert!(held.contains("counts"), "{held}");
        let low = engine.explain(&spec, "hh-low", as_of, later).await.unwrap();
        assert!(low.contains("does not qualify"), "{low}");
        assert!(low.contains("health_min_months = 3: 1 short"), "{low}");
        assert!(low.contains("no priority"), "{low}");
    }
}

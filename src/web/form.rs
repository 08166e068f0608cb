//! An outcome as a page's form or the JSON API gives it, made into the
//! JSON value of the outcomes topic. The person's id and dong come from
//! the session, never from the form; the result is checked by the same
//! decoder the pipeline applies to the topic before anything is sent.

use serde_json::{json, Map, Value};

use crate::stages::case::outcome::OutcomeKind;

/// Who records an outcome and when (from the session and the clock).
pub(crate) struct Recorder<'a> {
    /// The person's id (`staff_id`).
    pub(crate) staff_id: &'a str,
    /// Their office's dong code, or the city's code.
    pub(crate) dong_code: &'a str,
    /// `recorded_at`, ms.
    pub(crate) now_ms: i64,
    /// A fresh `outcome_id`.
    pub(crate) outcome_id: String,
}

fn first<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// The outcome's JSON from form fields (a field may repeat: `services`).
pub(crate) fn outcome_value(
    fields: &[(String, String)],
    household_id: &str,
    by: &Recorder<'_>,
) -> Result<Value, String> {
    let kind_text =
        first(fields, "kind").ok_or("조치를 고르세요. (kind is missing: choose what was done.)")?;
    let kind = OutcomeKind::parse(kind_text).ok_or_else(|| {
        // what was typed is echoed only when it holds no RRN-shaped number
        if crate::base::ids::contains_rrn(kind_text.as_bytes()) {
            format!("kind is not one of {}", OutcomeKind::names())
        } else {
            format!("kind {kind_text:?} is not one of {}", OutcomeKind::names())
        }
    })?;
    let mut v = Map::new();
    v.insert("outcome_id".into(), json!(by.outcome_id));
    v.insert("household_id".into(), json!(household_id));
    v.insert("dong_code".into(), json!(by.dong_code));
    v.insert(
        "recorded_at".into(),
        json!(crate::stages::alert::rfc3339(by.now_ms)),
    );
    v.insert("staff_id".into(), json!(by.staff_id));
    v.insert("kind".into(), json!(kind.as_str()));
    if let Some(alert) = first(fields, "alert_id") {
        v.insert("alert_id".into(), json!(alert));
    }
    let need = |name: &str, ko: &str, what: &str| {
        first(fields, name)
            .map(|x| json!(x))
            .ok_or_else(|| format!("{ko} ({name} is missing: {what}.)"))
    };
    match kind {
        OutcomeKind::ContactAttempted => {
            v.insert(
                "channel".into(),
                need(
                    "channel",
                    "연락 방법을 고르세요.",
                    "how (phone, visit, sms, letter)",
                )?,
            );
            v.insert(
                "result".into(),
                need("result", "연락 결과를 고르세요.", "what came of it")?,
            );
        }
        OutcomeKind::SupportLinked => {
            let services: Vec<&str> = fields
                .iter()
                .filter(|(k, x)| k == "services" && !x.trim().is_empty())
                .map(|(_, x)| x.trim())
                .collect();
            if services.is_empty() {
                return Err("연계한 서비스를 하나 이상 고르세요. (services is missing: tick at least one service linked.)".into());
            }
            v.insert("services".into(), json!(services));
        }
        OutcomeKind::CaseOpened => {
            v.insert(
                "track".into(),
                need(
                    "track",
                    "선정 구분을 고르세요.",
                    "case_management or service_linkage",
                )?,
            );
        }
        OutcomeKind::NotApplicable => {
            let r = first(fields, "na_reason").or_else(|| first(fields, "reason"));
            let r = r.ok_or(
                "비대상 사유를 고르세요. (reason is missing: why the household is not a case.)",
            )?;
            v.insert("reason".into(), json!(r));
        }
        OutcomeKind::CaseClosed => {
            let r = first(fields, "close_reason").or_else(|| first(fields, "reason"));
            let r = r.ok_or("종결 사유를 고르세요. (reason is missing: why the case closed.)")?;
            v.insert("reason".into(), json!(r));
        }
        OutcomeKind::Withdrawn => {
            v.insert(
                "withdraws".into(),
                need(
                    "withdraws",
                    "철회할 기록을 고르세요.",
                    "the outcome_id of the mistaken outcome",
                )?,
            );
        }
        OutcomeKind::CasePlan => plan_fields(fields, &mut v)?,
        OutcomeKind::CaseReviewed => review_fields(fields, &mut v)?,
        OutcomeKind::Counselled | OutcomeKind::Declined => {}
    }
    if let Some(note) = first(fields, "note") {
        v.insert("note".into(), json!(note));
    }
    Ok(Value::Object(v))
}

/// Every non-empty value of a repeated field, in order.
fn all<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(k, x)| k == name && !x.trim().is_empty())
        .map(|(_, x)| x.trim())
        .collect()
}

/// `case_plan`: `needs` and `services` ticked, and the goals as pairs of
/// `goal_text` and `goal_date` (rows left blank are skipped).
fn plan_fields(fields: &[(String, String)], v: &mut Map<String, Value>) -> Result<(), String> {
    let needs = all(fields, "needs");
    if needs.is_empty() {
        return Err(
            "찾은 욕구를 하나 이상 고르세요. (needs is missing: tick at least one need found.)"
                .into(),
        );
    }
    v.insert("needs".into(), json!(needs));
    // the household's page names the planned services apart from the
    // linked ones (both sets are on its form); the API says `services`
    let mut services = all(fields, "plan_services");
    if services.is_empty() {
        services = all(fields, "services");
    }
    v.insert("services".into(), json!(services));
    let value = |k: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, x)| x.trim())
    };
    let mut goals = Vec::new();
    for (text, date) in value("goal_text").zip(value("goal_date")) {
        match (text.is_empty(), date.is_empty()) {
            (true, true) => {}
            (false, false) => goals.push(json!({"text": text, "target_date": date})),
            _ => return Err("목표마다 내용과 목표일을 함께 적으세요. (Each goal needs its text and its target date.)".into()),
        }
    }
    if goals.is_empty() {
        return Err("목표를 하나 이상 적으세요. (goals is missing: write at least one goal with its target date.)".into());
    }
    v.insert("goals".into(), Value::Array(goals));
    Ok(())
}

/// `case_reviewed`: a `goal_result` per goal of the plan, in its order;
/// `fit_<service>` as `yes` or `no`; `next_review`.
fn review_fields(fields: &[(String, String)], v: &mut Map<String, Value>) -> Result<(), String> {
    let results = all(fields, "goal_result");
    let asked = fields.iter().filter(|(k, _)| k == "goal_result").count();
    if results.is_empty() || results.len() < asked {
        return Err("목표마다 달성 여부를 고르세요. (goal_results is missing: a result for each goal of the plan.)".into());
    }
    v.insert("goal_results".into(), json!(results));
    let mut fit = Vec::new();
    for s in crate::stages::case::outcome::Service::ALL {
        match first(fields, &format!("fit_{}", s.as_str())) {
            Some("yes") => fit.push(json!({"service": s.as_str(), "fits": true})),
            Some("no") => fit.push(json!({"service": s.as_str(), "fits": false})),
            _ => {}
        }
    }
    if !fit.is_empty() {
        v.insert("service_fit".into(), Value::Array(fit));
    }
    if let Some(d) = first(fields, "next_review") {
        v.insert("next_review".into(), json!(d));
    }
    Ok(())
}

/// Form fields from a JSON object (the API): strings as they are, arrays
/// of strings as repeated fields.
pub(crate) fn fields_of_json(value: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Object(map) = value else {
        return Err("the body must be one JSON object: {\"kind\": ..., ...}".into());
    };
    let mut out = Vec::new();
    for (k, v) in map {
        match v {
            Value::String(s) => out.push((k.clone(), s.clone())),
            Value::Array(items) => {
                for i in items {
                    let Value::String(s) = i else {
                        return Err(format!("{k} must be an array of strings"));
                    };
                    out.push((k.clone(), s.clone()));
                }
            }
            Value::Null => {}
            _ => return Err(format!("{k} must be a string")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by() -> Recorder<'static> {
        Recorder {
            staff_id: "u-0000abcd",
            dong_code: "4125052000",
            now_ms: 1_790_000_000_000,
            outcome_id: "oc-1".into(),
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_visit_that_reached_someone_is_a_valid_outcome() {
        let v = outcome_value(
            &f(&[
                ("kind", "contact_attempted"),
                ("channel", "visit"),
                ("result", "reached"),
                ("staff_id", "forged"),
                ("dong_code", "9999999999"),
            ]),
            "hh-1",
            &by(),
        )
        .unwrap();
        assert_eq!(
            v["staff_id"], "u-0000abcd",
            "from the session, not the form"
        );
        assert_eq!(v["dong_code"], "4125052000");
        let bytes = serde_json::to_vec(&v).unwrap();
        let decoded = crate::stages::case::outcome::decode(
            Some(b"hh-1"),
            Some(&bytes),
            1_790_000_000_000,
            3_600_000,
        )
        .unwrap();
        assert_eq!(decoded.staff_id, "u-0000abcd");
    }

    #[test]
    fn a_plan_and_a_review_from_the_form_decode_as_the_pipeline_reads_them() {
        use crate::stages::case::outcome::{decode, GoalResult, Said};
        let read = |v: &Value| {
            let bytes = serde_json::to_vec(v).unwrap();
            decode(Some(b"hh-1"), Some(&bytes), 1_790_000_000_000, 3_600_000)
        };
        let plan = outcome_value(
            &f(&[
                ("kind", "case_plan"),
                ("needs", "economic"),
                ("needs", "housing"),
                ("plan_services", "energy"),
                ("services", "debt"),
                ("goal_text", "월세 체납 해소"),
                ("goal_date", "2027-01-31"),
                ("goal_text", ""),
                ("goal_date", ""),
            ]),
            "hh-1",
            &by(),
        )
        .unwrap();
        assert_eq!(
            plan["services"],
            json!(["energy"]),
            "the planned, not the linked"
        );
        let o = read(&plan).expect("the pipeline's decoder takes it");
        assert_eq!(o.goals, ["월세 체납 해소"], "the blank row is skipped");
        // a goal without its date is named before anything is sent
        let err = outcome_value(
            &f(&[
                ("kind", "case_plan"),
                ("needs", "health"),
                ("goal_text", "x"),
                ("goal_date", ""),
            ]),
            "hh-1",
            &by(),
        )
        .unwrap_err();
        assert!(err.contains("목표일"), "{err}");
        let review = outcome_value(
            &f(&[
                ("kind", "case_reviewed"),
                ("goal_result", "met"),
                ("goal_result", "partly"),
                ("fit_energy", "no"),
                ("next_review", "2027-02-15"),
            ]),
            "hh-1",
            &by(),
        )
        .unwrap();
        let Said::CaseReviewed(v) = read(&review).unwrap().said else {
            panic!("{review}")
        };
        assert_eq!(v.results, [GoalResult::Met, GoalResult::Partly]);
        assert_eq!(
            v.unfit,
            1 << crate::stages::case::outcome::Service::Energy.code()
        );
        let err = outcome_value(
            &f(&[
                ("kind", "case_reviewed"),
                ("goal_result", "met"),
                ("goal_result", ""),
            ]),
            "hh-1",
            &by(),
        )
        .unwrap_err();
        assert!(err.contains("목표마다"), "a goal left unanswered: {err}");
    }

    #[test]
    fn what_is_missing_is_named() {
        let err = outcome_value(
            &f(&[("kind", "contact_attempted"), ("channel", "visit")]),
            "hh-1",
            &by(),
        )
        .unwrap_err();
        assert!(err.contains("result"), "{err}");
        let err = outcome_value(&f(&[("kind", "support_linked")]), "hh-1", &by()).unwrap_err();
        assert!(err.contains("services"), "{err}");
        let err = outcome_value(&f(&[("kind", "visited")]), "hh-1", &by()).unwrap_err();
        assert!(err.contains("contact_attempted"), "{err}");
        let v = fields_of_json(&json!({"kind": "support_linked", "services": ["energy", "care"]}))
            .unwrap();
        let v = outcome_value(&v, "hh-1", &by()).unwrap();
        assert_eq!(v["services"], json!(["energy", "care"]));
    }
}

//! A case plan drawn on a page: the plan in force with its goals, and the
//! inputs of a plan and of a review (the household's form and the case
//! meeting's agenda share them).

use std::fmt::Write;

use super::esc;
use crate::ops::work::WorkItem;
use crate::stages::case::outcome::{date_text, GoalResult, Need, Service};

/// The plan in force: needs, services, goals with their dates and results.
pub(crate) fn plan_cell(item: &WorkItem) -> String {
    let Some(m) = item.case.managed.as_deref() else {
        return "-".into();
    };
    let Some(p) = &m.plan else {
        return "계획 없음".into();
    };
    let texts = item.goal_texts();
    let needs: Vec<&str> = p.needs.iter().map(|n| n.label_ko()).collect();
    let services: Vec<&str> = p
        .services
        .iter()
        .filter_map(|s| Service::parse(s).map(|v| v.label_ko()))
        .collect();
    let mut out = format!(
        "욕구: {}<br>서비스: {}<ol class=\"goals\">",
        esc(&needs.join(", ")),
        esc(&services.join(", "))
    );
    for (i, (target, result)) in p.goals.iter().enumerate() {
        let _ = write!(
            out,
            "<li>{} (~{}) <b>{}</b></li>",
            esc(texts.get(i).map_or("", String::as_str)),
            date_text(*target),
            result.map_or("미점검", |g| g.label_ko())
        );
    }
    out.push_str("</ol>");
    let _ = write!(
        out,
        "점검 {}회, 다음 점검 {}",
        m.reviews,
        m.review_due.map(date_text).unwrap_or_else(|| "-".into())
    );
    out
}

/// The values typed for `name`, in order.
fn typed_all<'a>(typed: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    typed
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A checkbox per (value, label), ticked where `typed` has it.
fn checkboxes<'a>(
    name: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
    typed: &[(String, String)],
) -> String {
    let mut out = String::new();
    for (value, label) in items {
        let on = typed.iter().any(|(k, x)| k == name && x == value);
        let _ = write!(
            out,
            r#"<label class="check"><input type="checkbox" name="{name}" value="{value}"{}> {}</label>"#,
            if on { " checked" } else { "" },
            esc(label)
        );
    }
    out
}

/// A plan's inputs: needs, services planned, `rows` goals of text and
/// date; what was typed (`typed`) is kept.
pub(crate) fn plan_inputs(typed: &[(String, String)], rows: usize) -> String {
    let needs = Need::ALL.iter().map(|n| (n.as_str(), n.label_ko()));
    let services = Service::ALL.iter().map(|s| (s.as_str(), s.label_ko()));
    let mut out = format!(
        r#"<fieldset class="needs"><legend>찾은 욕구 <span class="en">Needs found</span></legend>{}</fieldset><fieldset><legend>계획 서비스 <span class="en">Services planned</span></legend>{}</fieldset>"#,
        checkboxes("needs", needs, typed),
        checkboxes("plan_services", services, typed)
    );
    let texts = typed_all(typed, "goal_text");
    let dates = typed_all(typed, "goal_date");
    for i in 0..rows {
        let _ = write!(
            out,
            r#"<label>목표 {n} <span class="en">Goal</span> <input name="goal_text" maxlength="200" value="{}"></label><label>목표일 <span class="en">by</span> <input type="date" name="goal_date" value="{}"></label>"#,
            esc(texts.get(i).copied().unwrap_or_default()),
            esc(dates.get(i).copied().unwrap_or_default()),
            n = i + 1
        );
    }
    out
}

/// A review's inputs for the plan of `item`: a result per goal, whether
/// each planned or linked service fits, the next review's date.
pub(crate) fn review_inputs(item: &WorkItem, typed: &[(String, String)]) -> String {
    let Some(m) = item.case.managed.as_deref() else {
        return "<p>열린 사례가 없습니다.</p>".into();
    };
    let Some(p) = &m.plan else {
        return "<p>사례 계획이 아직 없습니다. 먼저 계획을 기록하세요.</p>".into();
    };
    let texts = item.goal_texts();
    let results: Vec<(&str, &str)> = GoalResult::ALL
        .iter()
        .map(|g| (g.as_str(), g.label_ko()))
        .collect();
    let kept = typed_all(typed, "goal_result");
    let mut out = String::new();
    for (i, (target, result)) in p.goals.iter().enumerate() {
        let chosen = kept.get(i).copied().or(result.map(|g| g.as_str()));
        let _ = write!(
            out,
            r#"<label>목표 {} {} (~{}) <select name="goal_result">{}</select></label>"#,
            i + 1,
            esc(texts.get(i).map_or("", String::as_str)),
            date_text(*target),
            super::labelled_options(results.iter().copied(), chosen)
        );
    }
    let mut services: Vec<&str> = p.services.clone();
    services.extend(m.unconfirmed.iter().filter(|s| !p.services.contains(s)));
    for s in services {
        let label = Service::parse(s).map_or(s, |v| v.label_ko());
        let name = format!("fit_{s}");
        let was = typed
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str());
        let opt = |v: &str, l: &str| {
            let sel = if was == Some(v) { " selected" } else { "" };
            format!(r#"<option value="{v}"{sel}>{l}</option>"#)
        };
        let _ = write!(
            out,
            r#"<label>{} 적합 <select name="{name}">{}{}{}</select></label>"#,
            esc(label),
            opt("", "-"),
            opt("yes", "적합"),
            opt("no", "부적합")
        );
    }
    let next = typed
        .iter()
        .find(|(k, _)| k == "next_review")
        .map_or("", |(_, v)| v.as_str());
    let _ = write!(
        out,
        r#"<label>다음 점검일 <span class="en">Next review</span> <input type="date" name="next_review" value="{}"></label>"#,
        esc(next)
    );
    out
}

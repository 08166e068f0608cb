//! A dong's queue, a household's page, the visit sheet and recording an
//! outcome: what an office works from, each view audited with exactly the
//! households it shows.

// A refusal is the response itself, returned early by the checks every
// handler makes; it is built once per refused request, never in a loop.
#![allow(clippy::result_large_err)]

use super::auth::{csrf_ok, Person};
use super::caller::Caller;
use super::respond::{
    audit, audited, denied, fail, field, form_fields, household_named, html, urlencode, Client,
};
use super::users::Role;
use super::{form, pages, WebState};
use crate::ops::work::WorkItem;
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// A fresh outcome id for an outcome recorded on a page: 32 random hex
/// digits, drawn again when a run of them is shaped like a resident
/// registration number (about one draw in 130): the pipeline would reject
/// the outcome, and the office's answer would be lost.
pub(super) fn new_outcome_id() -> Result<String, super::users::UsersError> {
    loop {
        let bytes = super::users::random_bytes::<16>()?;
        let id = crate::stages::alert::hex_id("oc-", u128::from_be_bytes(bytes));
        if !crate::base::ids::contains_rrn(id.as_bytes()) {
            return Ok(id);
        }
    }
}

/// The dong whose queue is asked for: one's own; the city names one (the
/// first served without a name). An unknown code is `Err(None)` (404),
/// another office's `Err(Some)` (403).
pub(super) fn queue_dong(
    st: &WebState,
    who: &Person,
    asked: Option<&str>,
) -> Result<String, Option<String>> {
    let asked = asked.map(str::trim).filter(|d| !d.is_empty());
    if let Some(d) = asked {
        if !st.dongs.iter().any(|x| x.dong_code == d) {
            return Err(None);
        }
    }
    match (who.user.role, asked) {
        (Role::Dong, None) => who.user.dong.clone().ok_or(None),
        (_, Some(d)) if who.sees_dong(d) => Ok(d.to_string()),
        (Role::City, None) => st.dongs.first().map(|d| d.dong_code.clone()).ok_or(None),
        (_, Some(d)) => Err(Some(d.to_string())),
    }
}

pub(super) fn queue_json(
    st: &WebState,
    dong: &str,
    sel: &super::queue::Selection,
    now: i64,
) -> Value {
    json!({
        "dong_code": dong,
        "name_ko": st.dong_name(dong).0,
        "now": crate::stages::alert::rfc3339(now),
        "open": sel.open,
        "overdue": sel.overdue,
        "unreachable": sel.unreachable,
        "in_case": sel.in_case,
        "all": sel.all,
        "matched": sel.matched,
        "page": sel.page,
        "pages": sel.pages,
        "page_rows": super::queue::PAGE_ROWS,
        "households": sel.rows.iter().map(|(place, i)| {
            let mut h = household_json(st, i);
            h["place"] = json!((*place > 0).then_some(*place));
            h
        }).collect::<Vec<_>>(),
    })
}

pub(super) fn household_json(st: &WebState, i: &WorkItem) -> Value {
    let c = &i.case;
    let time = |t: Option<i64>| t.map(crate::stages::alert::rfc3339);
    json!({
        "household_id": i.household_id,
        "dong_code": c.dong,
        "status": c.status.as_str(),
        "status_ko": c.status_ko,
        "open": c.open(),
        "tier": c.tier.map(|t| t.as_str()),
        "overdue": c.overdue(),
        "overdue_days": c.overdue_days,
        "next_step_ko": c.step_ko,
        "next_step": c.step_en,
        "priority": c.priority.map(|p| p.as_str()),
        "score": i.score,
        "due_at": time(c.due_at),
        "attempts": c.attempts,
        "last_attempt_at": time(c.last_attempt_at),
        "next_attempt_at": time(c.next_attempt_at.filter(|_| c.open())),
        "unreachable_since": time(c.unreachable_since),
        "repeatedly_flagged": c.repeatedly_flagged,
        "held_until": time(c.hold_until),
        "services": c.services,
        "categories": c.categories,
        "reasons_ko": i.reasons.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        "reasons": i.reasons.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        "open_alerts": c.open_alerts.iter().map(|a| json!({
            "alert_id": a.alert_id,
            "priority": a.priority.as_str(),
            "emitted_at": crate::stages::alert::rfc3339(a.emitted_at),
            "due_at": crate::stages::alert::rfc3339(a.due_at),
        })).collect::<Vec<_>>(),
        "outcomes": c.outcomes.iter().map(|o| {
            let d = i.details.iter().rev().find(|d| d.key == o.key);
            json!({
                "outcome_id": d.map(|d| d.outcome_id.clone()),
                "kind": o.kind,
                "label": o.label,
                "channel": o.channel,
                "services": o.services,
                "staff_id": d.map(|d| d.staff_id.clone()),
                "recorded_by": d.map(|d| d.dong_code.clone()),
                "note": d.and_then(|d| d.note.clone()),
                "recorded_at": crate::stages::alert::rfc3339(o.recorded_at),
                "recorded_at_local": st.local_time(o.recorded_at),
            })
        }).collect::<Vec<_>>(),
        "in_case_since": time(c.in_case_since),
        "case_management": crate::ops::agenda::plan_json(i),
        "case_age_days": c.case_age_days,
        "times_flagged": c.times_flagged,
    })
}

pub(super) async fn queue(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::queue::QueueQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    let dong = match queue_dong(&st, &who, q.dong.as_deref()) {
        Ok(d) => d,
        Err(Some(_)) => return denied(&st, &who, &from, path, vec![], api),
        Err(None) => {
            let page = fail(
                api,
                StatusCode::NOT_FOUND,
                "그런 동이 없습니다. (No such dong.)",
            );
            return audited(&st, &who, &from, "view_queue", path, vec![], None, page);
        }
    };
    let filters = match q.filters() {
        Ok(f) => f,
        Err(message) => {
            let page = fail(api, StatusCode::BAD_REQUEST, &message);
            return audited(&st, &who, &from, "view_queue", path, vec![], None, page);
        }
    };
    let now = st.ops.work.now_ms();
    let items = st.ops.work.of_dong(&dong);
    let sel = filters.select(&items);
    // exactly the households on the page (or in the answer)
    let shown: Vec<String> = sel
        .rows
        .iter()
        .map(|(_, i)| i.household_id.clone())
        .collect();
    let page = if api {
        axum::Json(queue_json(&st, &dong, &sel, now)).into_response()
    } else {
        html(super::queue::page(&st, &who, &dong, &filters, &sel, now))
    };
    audited(&st, &who, &from, "view_queue", path, shown, None, page)
}

/// A visit sheet of the households ticked (`?h=ID&h=ID`), each checked as
/// its own page is.
pub(super) async fn visit(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    let ids: Vec<String> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "h")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > super::queue::SHEET_MOST {
        let message = format!(
            "방문 기록지에 넣을 가구를 1~{}가구 고르세요. (Choose 1 to {} households.)",
            super::queue::SHEET_MOST,
            super::queue::SHEET_MOST
        );
        let page = fail(api, StatusCode::BAD_REQUEST, &message);
        return audited(
            &st,
            &who,
            &from,
            "view_visit_sheet",
            path,
            vec![],
            None,
            page,
        );
    }
    let mut items = Vec::new();
    for id in &ids {
        match visible(&st, &who, &from, id, path, api) {
            Ok(i) => items.push(i),
            Err(refused) => return refused,
        }
    }
    let now = st.ops.work.now_ms();
    let page = html(super::queue::visit_sheet(&st, &who, &items, now));
    let shown = items.iter().map(|i| i.household_id.clone()).collect();
    audited(
        &st,
        &who,
        &from,
        "view_visit_sheet",
        path,
        shown,
        None,
        page,
    )
}

/// The household `id` if `who` may see it, or the refusal (404, 403).
pub(super) fn visible(
    st: &WebState,
    who: &Person,
    from: &Client,
    id: &str,
    path: &str,
    api: bool,
) -> Result<Arc<WorkItem>, Response> {
    let listed = || {
        let dongs: Vec<String> = match (who.user.role, &who.user.dong) {
            (Role::City, _) => st.dongs.iter().map(|d| d.dong_code.clone()).collect(),
            (Role::Dong, Some(d)) => vec![d.clone()],
            (Role::Dong, None) => Vec::new(),
        };
        listed_dong(&*st.lists, &dongs, id).map(|dong| st.ops.work.listed(id, &dong))
    };
    let refuse = |status: StatusCode, message: &str, named: Vec<String>| {
        let page = fail(api, status, message);
        audited(st, who, from, "view_household", path, named, None, page)
    };
    // what is not a household id (an RRN typed into the address, say) is
    // refused before anything names it: the audit keeps the path masked
    if !crate::base::ids::is_pseudonymous_id(id) || crate::base::ids::contains_rrn(id.as_bytes()) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "가구 ID가 아닙니다. 주민등록번호는 입력하지 마세요. (Not a household id; never type a resident registration number.)",
            vec![],
        ));
    }
    // a household on the newest list with no case record yet (never
    // alerted: a backfill's, say) still opens, to record what was done
    let Some(item) = st.ops.work.get(id).or_else(listed) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "업무 목록에 없는 가구입니다 (알림·사례·최근 활동 없음). (No such household in the work queue.)",
            vec![id.to_string()],
        ));
    };
    let allowed = match (who.user.role, who.user.dong.as_deref()) {
        (Role::City, _) => true,
        (Role::Dong, Some(d)) => item.visible_to(d),
        (Role::Dong, None) => false,
    };
    if !allowed {
        return Err(denied(st, who, from, path, vec![id.to_string()], api));
    }
    Ok(item)
}

/// The dong among `dongs` on whose newest daily list (or cases list)
/// household `id` is.
pub(super) fn listed_dong(lists: &dyn Store, dongs: &[String], id: &str) -> Option<String> {
    let newest = super::downloads::list_days(lists).into_iter().next()?;
    dongs
        .iter()
        .find(|dong| {
            [format!("{dong}.csv"), format!("{dong}.cases.csv")]
                .iter()
                .any(|file| {
                    let key = format!("lists/{newest}/{file}");
                    lists.get(&key).ok().flatten().is_some_and(|bytes| {
                        String::from_utf8_lossy(&bytes)
                            .lines()
                            .skip(1)
                            .any(|l| l.split(',').nth(1) == Some(id))
                    })
                })
        })
        .cloned()
}

pub(super) async fn household(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    let item = match visible(&st, &who, &from, &id, uri.path(), api) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let notice = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "recorded")
            .map(|_| "기록되었습니다. 몇 초 안에 상태에 반영됩니다. (Recorded; the status follows within seconds.)")
    });
    let page = if api {
        let mut v = household_json(&st, &item);
        // why it stands as it does: the same words as `sagak explain`
        v["why"] = json!(item.case.explained(&st.clock));
        axum::Json(v).into_response()
    } else {
        html(pages::household(&st, &who, &item, notice))
    };
    audited(
        &st,
        &who,
        &from,
        "view_household",
        uri.path(),
        vec![id],
        None,
        page,
    )
}

pub(super) async fn record_outcome(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Caller { who, from, api } = caller;
    let r = Recording {
        st: &st,
        who: &who,
        from: &from,
        path: uri.path(),
        id: &id,
        api,
        back: None,
    };
    let fields = match r.fields(&body) {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    // a decision from the case meeting's agenda goes back to it
    let back = field(&fields, "back")
        .filter(|b| agenda_back(b))
        .map(String::from);
    let r = Recording { back, ..r };
    let item = match visible(&st, &who, &from, &id, uri.path(), api) {
        Ok(i) => i,
        Err(refused) => return refused,
    };
    match r.checked(&item, &fields) {
        Ok((outcome_id, bytes)) => r.publish(outcome_id, bytes).await,
        Err(refused) => refused,
    }
}

/// One outcome being recorded from a page or the API.
pub(super) struct Recording<'a> {
    st: &'a WebState,
    who: &'a Person,
    from: &'a Client,
    path: &'a str,
    id: &'a str,
    api: bool,
    /// Where a page goes after recording (the agenda it came from).
    back: Option<String>,
}

impl Recording<'_> {
    /// The fields of the request: JSON from the API, a form (with its CSRF
    /// token checked) from a page.
    fn fields(&self, body: &Bytes) -> Result<Vec<(String, String)>, Response> {
        if self.api {
            return serde_json::from_slice::<Value>(body)
                .map_err(|e| format!("the body is not JSON: {e}"))
                .and_then(|v| form::fields_of_json(&v))
                .map_err(|e| fail(true, StatusCode::BAD_REQUEST, &e));
        }
        let fields = form_fields(body);
        let ok = self
            .who
            .session
            .as_ref()
            .is_some_and(|s| csrf_ok(s, field(&fields, "csrf").unwrap_or_default()));
        if !ok {
            return Err(self.refused(fail(
                false,
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong: reload the page and record again",
            )));
        }
        Ok(fields)
    }

    /// An audited refusal.
    fn refused(&self, page: Response) -> Response {
        let (st, who, from) = (self.st, self.who, self.from);
        let shown = household_named(self.id);
        audited(
            st,
            who,
            from,
            "record_outcome_refused",
            self.path,
            shown,
            None,
            page,
        )
    }

    /// The outcome's id and JSON, or the refusal: the form's fields, the
    /// pipeline's own decoder, then its case rules against the household's
    /// record (400, or 409 for a case that is or is not open), in Korean and
    /// English; on a page, on the form with what was typed kept.
    fn checked(
        &self,
        item: &WorkItem,
        fields: &[(String, String)],
    ) -> Result<(String, Vec<u8>), Response> {
        let st = self.st;
        let dong_code = match self.who.user.role {
            Role::City => st.city_code.clone(),
            Role::Dong => self.who.user.dong.clone().unwrap_or_default(),
        };
        let outcome_id = new_outcome_id()
            .map_err(|e| fail(self.api, StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
        let now = st.ops.work.now_ms();
        let by = form::Recorder {
            staff_id: &self.who.user.id,
            dong_code: &dong_code,
            now_ms: now,
            outcome_id: outcome_id.clone(),
        };
        let value = form::outcome_value(fields, &item.household_id, &by)
            .map_err(|e| self.on_form(item, fields, StatusCode::BAD_REQUEST, &e, None))?;
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let key = Some(self.id.as_bytes());
        crate::stages::case::outcome::decode(key, Some(&bytes), now, st.max_future_ms)
            .and_then(|o| st.ops.work.check(&o))
            .map_err(|reject| {
                use crate::stages::decode::RejectClass;
                let status = match reject.class {
                    RejectClass::NoOpenCase | RejectClass::CaseAlreadyOpen => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_REQUEST,
                };
                let ko = crate::stages::case::rules::refusal_ko(reject.class);
                let class = reject.class.as_str();
                // the page says it in Korean, with the English beside; an
                // RRN's reason is not repeated (it speaks of dead letters)
                let message = match reject.class {
                    RejectClass::ResidentRegistrationNumber => format!("{ko} (A number shaped like a resident registration number was typed: remove it.)"),
                    _ => format!("{ko} ({})", reject.reason),
                };
                let json = json!({ "error": message, "class": class, "reason_ko": ko, "reason": reject.reason });
                self.on_form(item, fields, status, &message, Some(json))
            })?;
        Ok((outcome_id, bytes))
    }

    /// A refusal: `json` (or the message) for the API; the household's page
    /// with the reason on the form for a person.
    fn on_form(
        &self,
        item: &WorkItem,
        fields: &[(String, String)],
        status: StatusCode,
        message: &str,
        json: Option<Value>,
    ) -> Response {
        if self.api {
            let body = json.unwrap_or_else(|| json!({ "error": message }));
            return (status, axum::Json(body)).into_response();
        }
        self.refused(refused_on_form(
            self.st, self.who, item, fields, status, message,
        ))
    }

    /// Audits, publishes, and answers 202 (API) or back to the household.
    async fn publish(&self, outcome_id: String, bytes: Vec<u8>) -> Response {
        let (st, who, from, id) = (self.st, self.who, self.from, self.id);
        let shown = || vec![id.to_string()];
        let accepted = StatusCode::ACCEPTED;
        if let Err(r) = audit(
            st,
            Some(who),
            from,
            "record_outcome",
            self.path,
            shown(),
            None,
            accepted,
        ) {
            return r;
        }
        if let Err(e) = st.publisher.publish(id, bytes).await {
            tracing::error!(error = %e, "an outcome could not be published");
            // the line above said it was taken: this one says it was not
            let failed = StatusCode::SERVICE_UNAVAILABLE;
            let _ = audit(
                st,
                Some(who),
                from,
                "record_outcome_failed",
                self.path,
                shown(),
                None,
                failed,
            );
            return fail(self.api, failed, "the outcome could not be sent to the pipeline; nothing was recorded, try again in a moment");
        }
        if self.api {
            (accepted, axum::Json(json!({ "outcome_id": outcome_id }))).into_response()
        } else if let Some(back) = &self.back {
            Redirect::to(&format!("{back}&recorded={outcome_id}")).into_response()
        } else {
            Redirect::to(&format!(
                "/households/{}?recorded={outcome_id}",
                urlencode(id)
            ))
            .into_response()
        }
    }
}

/// Whether `back` is an agenda's address this front made (nothing else is
/// followed: no open redirect).
fn agenda_back(back: &str) -> bool {
    back.strip_prefix("/agenda?").is_some_and(|q| {
        q.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"=&_%-.".contains(&c))
    })
}

/// The household's page again, with the refusal on the form and what was
/// typed kept.
pub(super) fn refused_on_form(
    st: &WebState,
    who: &Person,
    item: &WorkItem,
    fields: &[(String, String)],
    status: StatusCode,
    message: &str,
) -> Response {
    // a number shaped like a resident registration number is not echoed
    let kept: Vec<(String, String)> = fields
        .iter()
        .filter(|(_, v)| !crate::base::ids::contains_rrn(v.as_bytes()))
        .cloned()
        .collect();
    let page = pages::household_refused(st, who, item, &kept, message);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_id_from_a_page_never_looks_like_a_resident_registration_number() {
        // about one random 32-digit hex id in 130 holds an RRN-shaped run
        // of digits (745 in 100,000 draws): 5,000 draws meet dozens
        for _ in 0..5_000 {
            let id = new_outcome_id().expect("random numbers");
            assert!(id.starts_with("oc-") && id.len() == 35, "{id}");
            assert!(!crate::base::ids::contains_rrn(id.as_bytes()), "{id}");
        }
    }
}

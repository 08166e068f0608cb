//! The city team's console and its escalation states.

use super::auth::csrf_ok;
use super::caller::Caller;
use super::households::household_json;
use super::respond::{audit, audited, city_only, fail, field, form_fields, html};
use super::users::Role;
use super::{form, WebState};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// Every `household_id` string anywhere in `v`.
pub(super) fn household_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("household_id", Value::String(h)) => out.push(h.clone()),
                    _ => household_ids(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| household_ids(x, out)),
        _ => {}
    }
}

pub(super) async fn city(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::city::CityQuery>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    if who.user.role != Role::City {
        return city_only(&st, &who, &from, uri.path(), api);
    }
    if let Err(message) = q.check(&st) {
        let page = fail(api, StatusCode::BAD_REQUEST, &message);
        return audited(
            &st,
            &who,
            &from,
            "view_city",
            uri.path(),
            vec![],
            None,
            page,
        );
    }
    let now = st.ops.work.now_ms();
    let today = st.clock.day(now) as i32;
    let (agenda_html, agenda_json, agenda_shown) = super::agenda::city_section(&st, today);
    let served: std::collections::HashSet<&str> =
        st.dongs.iter().map(|d| d.dong_code.as_str()).collect();
    let mut unassigned = st.ops.work.unassigned(&served);
    let unassigned_total = unassigned.len();
    unassigned.truncate(super::city::UNASSIGNED_SHOWN);
    let (rows, kept, matched, page_no, pages_n) = super::city::select(&st, &q);
    // exactly the households shown: this page's escalations and the
    // unassigned ones
    let mut shown: Vec<String> = rows
        .iter()
        .map(|r| r.e.household_id.clone())
        .chain(unassigned.iter().map(|i| i.household_id.clone()))
        .chain(agenda_shown)
        .collect();
    let page = if api {
        let mut data = crate::ops::http::dashboard_data(&st.ops);
        data["escalations"] = rows.iter().map(|r| super::city::row_json(&st, r)).collect();
        data["escalations_kept"] = json!(kept);
        data["escalations_matched"] = json!(matched);
        data["page"] = json!(page_no);
        data["pages"] = json!(pages_n);
        data["unassigned"] = unassigned.iter().map(|i| household_json(&st, i)).collect();
        data["unassigned_total"] = json!(unassigned_total);
        // the chart's numbers: alerts per local day, [P1, P2, P3]
        data["alerts_per_day"] = json!(st.ops.live.history().alerts_per_day);
        data["rule_yield"] = super::yields::json(&st.ops.rule_yield.table());
        data["rule_yield_waiting"] = json!(st.ops.rule_yield.waiting());
        data["fairness"] = super::yields::fairness_json(&st.ops.rule_yield.reach());
        data["agenda"] = agenda_json;
        // the boards' top households are named too
        household_ids(&data["dongs"], &mut shown);
        axum::Json(data).into_response()
    } else {
        let view = super::city::CityView {
            q: &q,
            rows: &rows,
            counts: (kept, matched, page_no, pages_n),
            unassigned: (&unassigned, unassigned_total),
            now,
            agenda: &agenda_html,
        };
        html(super::city::page(&st, &who, &view))
    };
    shown.sort();
    shown.dedup();
    audited(&st, &who, &from, "view_city", uri.path(), shown, None, page)
}

/// The fields of a body: JSON from the API (`{"state":"taken"}`), a form
/// from a page.
pub(super) fn json_or_form(api: bool, body: &Bytes) -> Vec<(String, String)> {
    match api {
        true => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| form::fields_of_json(&v).ok())
            .unwrap_or_default(),
        false => form_fields(body),
    }
}

/// Back to the city's console at the filters and page the form came from
/// (`back`: a query string, nothing else).
pub(super) fn back_to_city(back: Option<&str>) -> Response {
    let back = back
        .filter(|b| {
            b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"=&_%-+.".contains(&c))
        })
        .unwrap_or("page=1");
    Redirect::to(&format!("/city?{back}#escalations-head")).into_response()
}

/// The city team takes an escalation (`state=taken`) or gives it back
/// (`state=open`), from the page's form; kept for every instance.
pub(super) async fn set_escalation(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Caller { who, from, api } = caller;
    let path = uri.path();
    if who.user.role != Role::City {
        return city_only(&st, &who, &from, path, api);
    }
    let refuse = |status: StatusCode, message: &str, households: Vec<String>| {
        let page = fail(api, status, message);
        audited(
            &st,
            &who,
            &from,
            "set_escalation_state",
            path,
            households,
            None,
            page,
        )
    };
    let fields = json_or_form(api, &body);
    let csrf = who
        .session
        .as_ref()
        .is_some_and(|s| csrf_ok(s, field(&fields, "csrf").unwrap_or_default()));
    if !csrf && !api {
        return refuse(StatusCode::FORBIDDEN, "양식이 오래되었습니다. 화면을 새로 고친 뒤 다시 하세요. (The form's CSRF token is missing or wrong.)", vec![]);
    }
    let state = field(&fields, "state").unwrap_or_default();
    let Some(e) = st
        .ops
        .live
        .escalations()
        .into_iter()
        .find(|e| e.escalation_id == id)
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            "그런 에스컬레이션이 없습니다. (No such escalation.)",
            vec![],
        );
    };
    let households = vec![e.household_id.clone()];
    if state != "taken" && state != "open" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "상태는 taken 또는 open입니다. (state must be taken or open.)",
            households,
        );
    }
    let taken = super::escalations::Taken {
        escalation_id: e.escalation_id,
        household_id: e.household_id,
        state: state.to_string(),
        by: who.user.id.clone(),
        by_name: who.user.name.clone(),
        at: st.ops.work.now_ms(),
    };
    // audited before it is done: no change goes unaudited
    let done = if api {
        StatusCode::OK
    } else {
        StatusCode::SEE_OTHER
    };
    if let Err(r) = audit(
        &st,
        Some(&who),
        &from,
        "set_escalation_state",
        path,
        households.clone(),
        None,
        done,
    ) {
        return r;
    }
    if let Err(error) = st.escalation_states.set(taken) {
        tracing::error!(%error, "the escalation states file cannot be written");
        let failed = StatusCode::SERVICE_UNAVAILABLE;
        let page = fail(
            api,
            failed,
            "상태를 저장하지 못했습니다. 잠시 후 다시 하세요. (The state could not be kept.)",
        );
        return audited(
            &st,
            &who,
            &from,
            "set_escalation_state_failed",
            path,
            households,
            None,
            page,
        );
    }
    if api {
        return axum::Json(json!({ "escalation_id": id, "state": state })).into_response();
    }
    back_to_city(field(&fields, "back"))
}

//! A dong's work queue as a person asks for it: which households (filters
//! and a search by id), which page of fifty, and the counts that say what
//! the filters and the paging leave out. The page, its JSON and the visit
//! sheet read the same selection, so they show the same households, and
//! the audit names exactly those.

use std::fmt::Write;
use std::sync::Arc;

use serde::Deserialize;

use super::auth::Person;
use super::pages::{self, esc, layout};
use super::users::Role;
use super::WebState;
use crate::ops::work::WorkItem;
use crate::stages::alert::CaseStatus;
use crate::stages::case::work::Tier;
use crate::stages::score::Priority;

/// Rows on a page of the queue.
pub(crate) const PAGE_ROWS: usize = 50;
/// Households on one visit sheet (a printed bundle for a day's visits).
pub(crate) const SHEET_MOST: usize = 30;

/// Page `asked` (from 1; past the end: the last) of `items`,
/// [`PAGE_ROWS`] a page: (its items, the page, the pages).
pub(crate) fn paged<T>(items: Vec<T>, asked: usize) -> (Vec<T>, usize, usize) {
    let pages = items.len().div_ceil(PAGE_ROWS).max(1);
    let page = asked.clamp(1, pages);
    let rows = items
        .into_iter()
        .skip((page - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .collect();
    (rows, page, pages)
}

/// The query string of `/queue` and `/api/queue`; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct QueueQuery {
    /// The dong (the city chooses; an office sees its own).
    pub(crate) dong: Option<String>,
    /// `P1`, `P2` or `P3`.
    pub(crate) priority: Option<String>,
    /// A status (`attempting`, `unreachable`, `in_case`, ...): without it
    /// the open households are shown.
    pub(crate) status: Option<String>,
    /// A queue tier (`overdue`, `new`, `attempt_due`, ...).
    pub(crate) tier: Option<String>,
    /// Part of a household id.
    pub(crate) q: Option<String>,
    /// Page, from 1 (text: a wrong one is answered in words, not by the
    /// query parser).
    pub(crate) page: Option<String>,
}

/// The page number of a query (`None` or blank: the first), or what is
/// wrong with it.
pub(crate) fn page_number(page: &Option<String>) -> Result<usize, String> {
    match blank(page) {
        None => Ok(1),
        Some(p) => p.parse::<usize>().map(|n| n.max(1)).map_err(|_| {
            format!("쪽 번호는 1 이상의 숫자입니다 (page must be a number from 1, not {p:?})")
        }),
    }
}

/// A query whose values are known.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filters {
    /// Priority.
    pub(crate) priority: Option<Priority>,
    /// Status (`None`: the open households).
    pub(crate) status: Option<CaseStatus>,
    /// Tier.
    pub(crate) tier: Option<Tier>,
    /// Part of a household id, as typed (at most 64 characters).
    pub(crate) q: Option<String>,
    /// Page, from 1.
    pub(crate) page: usize,
}

/// A query value, trimmed; `None` when absent or blank.
pub(super) fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl QueueQuery {
    /// The filters, or what is wrong (in Korean and English).
    pub(crate) fn filters(&self) -> Result<Filters, String> {
        let priority = match blank(&self.priority) {
            None => None,
            Some(p) => Some(Priority::parse(p).ok_or_else(|| {
                format!("우선순위는 P1, P2, P3 중 하나입니다 (priority must be P1, P2 or P3, not {p:?})")
            })?),
        };
        let status = match blank(&self.status) {
            None => None,
            Some(s) => Some(
                CaseStatus::ALL
                    .into_iter()
                    .find(|c| c.as_str() == s)
                    .ok_or_else(|| format!("알 수 없는 상태입니다 (unknown status {s:?})"))?,
            ),
        };
        let tier = match blank(&self.tier) {
            None => None,
            Some(t) => Some(
                Tier::parse(t)
                    .ok_or_else(|| format!("알 수 없는 구분입니다 (unknown tier {t:?})"))?,
            ),
        };
        let q = blank(&self.q).map(|q| q.chars().take(64).collect::<String>());
        Ok(Filters {
            priority,
            status,
            tier,
            q,
            page: page_number(&self.page)?,
        })
    }
}

/// One page of a dong's queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// The rows shown: (place in the whole queue from 1, or 0 for a
    /// household not waiting, the household).
    pub(crate) rows: Vec<(usize, Arc<WorkItem>)>,
    /// Households waiting in the dong's queue, before any filter.
    pub(crate) open: usize,
    /// Households of the dong on the board (open or not).
    pub(crate) all: usize,
    /// Of the open ones: past due, unreachable; and households in case
    /// management (before any filter).
    pub(crate) overdue: usize,
    /// Unreachable.
    pub(crate) unreachable: usize,
    /// In case management.
    pub(crate) in_case: usize,
    /// Households that match the filters.
    pub(crate) matched: usize,
    /// This page, from 1.
    pub(crate) page: usize,
    /// Pages of matching households.
    pub(crate) pages: usize,
}

impl Filters {
    /// Whether any filter (not the page) is set.
    pub(crate) fn any(&self) -> bool {
        self.priority.is_some() || self.status.is_some() || self.tier.is_some() || self.q.is_some()
    }

    /// Whether household `i` passes the filters; `q` is the search text
    /// in lower case, made once per selection.
    fn keeps(&self, i: &WorkItem, q: Option<&str>) -> bool {
        let c = &i.case;
        let status = match self.status {
            Some(s) => c.status == s,
            None => c.open(),
        };
        status
            && self.priority.is_none_or(|p| c.priority == Some(p))
            && self.tier.is_none_or(|t| c.tier == Some(t))
            && q.is_none_or(|q| i.household_id.to_ascii_lowercase().contains(q))
    }

    /// The page these filters ask for of `items` (a dong's board, most
    /// urgent first).
    pub(crate) fn select(&self, items: &[Arc<WorkItem>]) -> Selection {
        let mut place = 0;
        let (mut overdue, mut unreachable, mut in_case) = (0, 0, 0);
        let mut matched = Vec::new();
        let q = self.q.as_deref().map(str::to_ascii_lowercase);
        for i in items {
            let waiting = i.in_queue();
            if waiting {
                place += 1;
                overdue += usize::from(i.overdue());
                unreachable += usize::from(i.case.status == CaseStatus::Unreachable);
            }
            in_case += usize::from(i.case.status == CaseStatus::InCase);
            if self.keeps(i, q.as_deref()) {
                matched.push((if waiting { place } else { 0 }, i));
            }
        }
        let n = matched.len();
        let (rows, page, pages) = paged(matched, self.page);
        Selection {
            rows: rows.into_iter().map(|(n, i)| (n, Arc::clone(i))).collect(),
            open: place,
            all: items.len(),
            overdue,
            unreachable,
            in_case,
            matched: n,
            page,
            pages,
        }
    }

    /// The query string of these filters at `page` (for the paging links).
    pub(crate) fn query(&self, dong: Option<&str>, page: usize) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(d) = dong {
            q.append_pair("dong", d);
        }
        if let Some(p) = self.priority {
            q.append_pair("priority", p.as_str());
        }
        if let Some(s) = self.status {
            q.append_pair("status", s.as_str());
        }
        if let Some(t) = self.tier {
            q.append_pair("tier", t.as_str());
        }
        if let Some(text) = &self.q {
            q.append_pair("q", text);
        }
        q.append_pair("page", &page.to_string());
        q.finish()
    }
}

/// The queue page: the filters, the counts, one page of households (a
/// table on a desk, cards on a phone), the paging, and a visit sheet for
/// the households ticked.
pub(crate) fn page(
    st: &WebState,
    person: &Person,
    dong: &str,
    f: &Filters,
    sel: &Selection,
    now: i64,
) -> String {
    let (name, _) = st.dong_name(dong);
    let mut body = String::new();
    if person.user.role == Role::City {
        body.push_str(&pages::dong_picker(st, "/queue", Some(dong), false));
    }
    let _ = write!(
        body,
        r#"<p class="summary" id="summary">{} · 연락 대기 <b id="n-open">{}</b> · 기한초과 <b id="n-overdue">{}</b> · 소재파악 필요 <b id="n-unreachable">{}</b> · 사례관리 <b id="n-in-case">{}</b> · 기준 {}</p>"#,
        esc(&name),
        sel.open,
        sel.overdue,
        sel.unreachable,
        sel.in_case,
        st.local_time(now)
    );
    filters_form(st, &mut body, person, dong, f);
    let first = if sel.matched == 0 {
        0
    } else {
        (sel.page - 1) * PAGE_ROWS + 1
    };
    let hidden = if f.any() {
        format!("조건에 맞는 {}가구", sel.matched)
    } else {
        format!("연락 대기 {}가구", sel.matched)
    };
    let _ = write!(
        body,
        r#"<p class="counts" id="counts">{hidden} 중 {first}–{}번째 ({}/{}쪽)</p>"#,
        first + sel.rows.len().saturating_sub(1),
        sel.page,
        sel.pages
    );
    body.push_str(r#"<form method="get" action="/visit" id="visit"></form><table id="queue" class="cards"><thead><tr><th><span class="sr">선택</span></th><th>순위</th><th>가구 <span class="en">Household</span></th><th>우선순위 <span class="en">Priority</span></th><th>상태 <span class="en">Status</span></th><th>할 일 <span class="en">Next step</span></th><th>사유 <span class="en">Reasons</span></th><th>최근조치 <span class="en">Last outcome</span></th></tr></thead><tbody>"#);
    for (place, i) in &sel.rows {
        row(st, &mut body, *place, i);
    }
    if sel.rows.is_empty() {
        let none = if f.any() {
            "조건에 맞는 가구가 없습니다."
        } else {
            "연락을 기다리는 가구가 없습니다."
        };
        let _ = write!(body, r#"<tr><td colspan="8" id="empty">{none}</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    if !sel.rows.is_empty() {
        let _ = write!(
            body,
            r#"<p class="sheet"><button type="submit" form="visit" id="print-sheet">고른 가구 방문 기록지 (최대 {SHEET_MOST}가구)</button></p>"#
        );
    }
    let owned = dong.to_string();
    let pick = (person.user.role == Role::City).then_some(owned.as_str());
    body.push_str(&pages::paging("/queue", sel.page, sel.pages, |p| {
        f.query(pick, p)
    }));
    layout(st, "업무 목록 Work queue", person, &body)
}

fn filters_form(st: &WebState, body: &mut String, person: &Person, dong: &str, f: &Filters) {
    body.push_str(r#"<form method="get" action="/queue" class="filters" id="filters">"#);
    if person.user.role == Role::City {
        let _ = write!(
            body,
            r#"<input type="hidden" name="dong" value="{}">"#,
            esc(dong)
        );
    }
    let chosen = |on: bool| if on { " selected" } else { "" };
    body.push_str(r#"<label>우선순위 <select name="priority"><option value="">전체</option>"#);
    for p in [Priority::P1, Priority::P2, Priority::P3] {
        let _ = write!(
            body,
            r#"<option value="{0}"{1}>{0}</option>"#,
            p.as_str(),
            chosen(f.priority == Some(p))
        );
    }
    body.push_str(
        r#"</select></label><label>구분 <select name="tier"><option value="">전체</option>"#,
    );
    for t in Tier::ALL {
        let _ = write!(
            body,
            r#"<option value="{}"{}>{}</option>"#,
            t.as_str(),
            chosen(f.tier == Some(t)),
            t.label_ko()
        );
    }
    body.push_str(r#"</select></label><label>상태 <select name="status"><option value="">연락 대기 전체</option>"#);
    for c in CaseStatus::ALL {
        let _ = write!(
            body,
            r#"<option value="{}"{}>{}</option>"#,
            c.as_str(),
            chosen(f.status == Some(c)),
            esc(&st.label(c.as_str()))
        );
    }
    let _ = write!(
        body,
        r#"</select></label><label>가구 ID <input type="search" name="q" id="q" maxlength="64" value="{}" autocomplete="off"></label><button type="submit">찾기</button> <a href="/queue{}">조건 지우기</a></form>"#,
        esc(f.q.as_deref().unwrap_or_default()),
        if person.user.role == Role::City {
            format!("?dong={}", esc(dong))
        } else {
            String::new()
        }
    );
}

fn row(st: &WebState, body: &mut String, place: usize, i: &WorkItem) {
    let last = i
        .case
        .outcomes
        .last()
        .map(|o| format!("{} · {}", esc(&o.label), st.local_time(o.recorded_at)))
        .unwrap_or_else(|| "-".into());
    let _ = write!(
        body,
        r#"<tr data-household="{id}" data-tier="{tier}"><td class="pick"><input type="checkbox" name="h" value="{id}" form="visit" aria-label="방문 기록지에 넣기"></td><td data-label="순위">{}</td><td data-label="가구" class="hh"><a href="/households/{id}">{id}</a></td><td data-label="우선순위" class="p">{}</td><td data-label="상태">{}</td><td data-label="할 일">{}</td><td data-label="사유">{}</td><td data-label="최근조치">{last}</td></tr>"#,
        if place > 0 {
            place.to_string()
        } else {
            "-".into()
        },
        i.case.priority.map_or("-", |p| p.as_str()),
        pages::status_cell(i),
        pages::step_cell(i),
        pages::reasons(st, i),
        tier = i.case.tier.map_or("", |t| t.as_str()),
        id = esc(&i.household_id),
    );
}

/// A visit sheet: one A4 page per household, to take on a home visit and
/// write on: who, where, why, what was tried, and space for what is found.
pub(crate) fn visit_sheet(
    st: &WebState,
    person: &Person,
    items: &[Arc<WorkItem>],
    now: i64,
) -> String {
    let mut body = format!(
        r#"<p class="no-print"><button type="button" id="print">인쇄 <span class="en">Print</span></button> {}가구 · 출력 {}</p>"#,
        items.len(),
        st.local_time(now)
    );
    for i in items {
        let c = &i.case;
        let _ = write!(
            body,
            r#"<section class="sheet-page" data-household="{id}"><h2>방문 기록지 · {id}</h2><dl class="facts"><dt>동</dt><dd>{}</dd><dt>우선순위</dt><dd>{}</dd><dt>상태</dt><dd>{}</dd><dt>할 일</dt><dd>{}</dd><dt>연락기한</dt><dd>{}</dd><dt>실패한 시도</dt><dd>{}회</dd><dt>사유</dt><dd>{}</dd></dl>"#,
            esc(&st.dong_name(&c.dong).0),
            c.priority.map_or("-", |p| p.as_str()),
            pages::status_cell(i),
            pages::step_cell(i),
            i.due_at()
                .map(|t| st.local_time(t))
                .unwrap_or_else(|| "-".into()),
            c.attempts,
            pages::reasons(st, i),
            id = esc(&i.household_id)
        );
        body.push_str(r#"<h3>최근 조치</h3><ol class="recent">"#);
        for o in c.outcomes.iter().rev().take(6) {
            let _ = write!(
                body,
                "<li>{} · {}</li>",
                st.local_time(o.recorded_at),
                esc(&o.label)
            );
        }
        if c.outcomes.is_empty() {
            body.push_str("<li>아직 없음</li>");
        }
        body.push_str(r#"</ol><h3>방문 결과 (직접 적기)</h3><table class="write"><tr><th>방문일시</th><td></td></tr><tr><th>만난 사람</th><td></td></tr><tr><th>결과</th><td>□ 만남 □ 부재 □ 빈집 □ 이사 □ 주소 불일치 □ 거부</td></tr><tr><th>필요한 지원</th><td></td></tr><tr><th>메모 (주민등록번호 금지)</th><td class="tall"></td></tr><tr><th>방문자 서명</th><td></td></tr></table></section>"#);
    }
    layout(st, "방문 기록지 Visit sheet", person, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::case::OpenWork;

    fn item(id: &str, status: CaseStatus, tier: Option<Tier>, p: Priority) -> Arc<WorkItem> {
        Arc::new(WorkItem {
            household_id: id.into(),
            case: OpenWork {
                status,
                tier,
                priority: Some(p),
                tier_rank: tier.map(|t| t as u8),
                ..OpenWork::default()
            },
            details: Vec::new(),
            score: None,
            reasons: Vec::new(),
        })
    }

    fn board() -> Vec<Arc<WorkItem>> {
        let mut items = Vec::new();
        for n in 0..120 {
            let tier = if n % 3 == 0 { Tier::Overdue } else { Tier::New };
            let p = if n % 2 == 0 {
                Priority::P1
            } else {
                Priority::P2
            };
            items.push(item(&format!("hh-{n:04}"), CaseStatus::New, Some(tier), p));
        }
        items.push(item("hh-case", CaseStatus::InCase, None, Priority::P1));
        items
    }

    #[test]
    fn a_page_holds_fifty_and_the_counts_say_what_is_left_out() {
        let items = board();
        let first = Filters::default().select(&items);
        assert_eq!(
            (first.rows.len(), first.matched, first.open, first.all),
            (50, 120, 120, 121)
        );
        assert_eq!(first.pages, 3);
        assert_eq!(first.rows[0].0, 1);
        let last = Filters {
            page: 9,
            ..Filters::default()
        }
        .select(&items);
        assert_eq!(last.page, 3, "a page past the end shows the last");
        assert_eq!(last.rows.len(), 20);
        assert_eq!(last.rows[0].0, 101, "places count in the whole queue");
    }

    #[test]
    fn filters_combine_and_keep_each_households_place() {
        let items = board();
        let f = Filters {
            priority: Some(Priority::P1),
            tier: Some(Tier::Overdue),
            ..Filters::default()
        };
        let s = f.select(&items);
        // n % 6 == 0 among 0..120
        assert_eq!(s.matched, 20);
        assert!(s.rows.iter().all(|(place, i)| {
            let n: usize = i.household_id[3..].parse().unwrap();
            n.is_multiple_of(6) && *place == n + 1
        }));
        let cases = Filters {
            status: Some(CaseStatus::InCase),
            ..Filters::default()
        }
        .select(&items);
        assert_eq!(cases.rows.len(), 1);
        assert_eq!(cases.rows[0].0, 0, "a case is not waiting: no place");
        let found = Filters {
            q: Some("HH-011".into()),
            ..Filters::default()
        }
        .select(&items);
        assert_eq!(found.matched, 10, "hh-0110 .. hh-0119, any case");
    }

    #[test]
    fn a_wrong_filter_is_named() {
        let q = QueueQuery {
            priority: Some("P9".into()),
            ..QueueQuery::default()
        };
        assert!(q.filters().unwrap_err().contains("P1, P2"));
        let q = QueueQuery {
            status: Some("<script>".into()),
            ..QueueQuery::default()
        };
        assert!(q.filters().is_err());
        let wrong_page = QueueQuery {
            page: Some("<b>".into()),
            ..QueueQuery::default()
        };
        assert!(wrong_page.filters().unwrap_err().contains("page"));
        let fine = QueueQuery {
            tier: Some(" ".into()),
            page: Some("0".into()),
            ..QueueQuery::default()
        };
        assert_eq!(
            fine.filters().unwrap(),
            Filters {
                page: 1,
                ..Filters::default()
            }
        );
    }
}

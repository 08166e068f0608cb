//! The daily lists page and the list downloads, each download audited with
//! every household in the file.

use super::auth::Person;
use super::caller::Caller;
use super::respond::{audited, fail, html};
use super::users::Role;
use super::{pages, WebState};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The list files of `dir` that `who` may download.
pub(super) fn list_files(who: &Person, lists: &dyn Store, day: &str) -> Vec<String> {
    let prefix = format!("lists/{day}/");
    let mut files: Vec<String> = lists
        .list(&prefix)
        .unwrap_or_default()
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix))
        .filter(|f| may_download(who, f))
        .map(String::from)
        .collect();
    files.sort();
    files
}

/// A dong office downloads its own dong's files; the city every list.
pub(super) fn may_download(who: &Person, file: &str) -> bool {
    let list_file = file.ends_with(".csv") || file.ends_with(".parquet");
    if !list_file || file.contains('/') || file.starts_with('.') {
        return false;
    }
    // a list file is named after its dong (`4125052000.cases.csv`)
    file.split('.')
        .next()
        .is_some_and(|list| who.sees_dong(list))
}

pub(super) fn is_day(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

pub(super) async fn lists(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    Query(q): Query<super::city::CityQuery>,
) -> Response {
    let Caller { who, from, api } = caller;
    // an office sees its own; the city chooses a dong (or the city-wide files)
    let chosen = match (who.user.role, q.dong.as_deref().map(str::trim)) {
        (Role::Dong, _) => who.user.dong.clone(),
        (Role::City, Some(d))
            if d == pages::CITY_LISTS || st.dongs.iter().any(|x| x.dong_code == d) =>
        {
            Some(d.to_string())
        }
        (Role::City, None | Some("")) => None,
        (Role::City, Some(_)) => {
            let page = fail(
                api,
                StatusCode::NOT_FOUND,
                "그런 동이 없습니다. (No such dong.)",
            );
            return audited(&st, &who, &from, "view_lists", "/lists", vec![], None, page);
        }
    };
    let days: Vec<(String, Vec<String>)> = match &chosen {
        None => Vec::new(),
        Some(dong) => list_days(&*st.lists)
            .into_iter()
            .map(|d| {
                let files = list_files(&who, &*st.lists, &d)
                    .into_iter()
                    .filter(|f| file_of(f, dong))
                    .collect();
                (d, files)
            })
            .filter(|(_, f): &(String, Vec<String>)| !f.is_empty())
            .collect(),
    };
    let page = html(pages::lists(&st, &who, chosen.as_deref(), &days));
    audited(&st, &who, &from, "view_lists", "/lists", vec![], None, page)
}

/// The days with lists (a manifest: every file it names is written),
/// newest first.
pub(super) fn list_days(lists: &dyn Store) -> Vec<String> {
    let mut days: Vec<String> = lists
        .list("lists/")
        .unwrap_or_default()
        .iter()
        .filter_map(|key| key.strip_prefix("lists/")?.strip_suffix("/manifest.json"))
        .filter(|d| is_day(d))
        .map(String::from)
        .collect();
    days.sort_by(|a, b| b.cmp(a));
    days
}

/// Whether list file `file` is of `dong` (or, for the city-wide choice, one
/// named after no dong: escalations, unassigned).
pub(super) fn file_of(file: &str, dong: &str) -> bool {
    let stem = file.split('.').next().unwrap_or_default();
    if dong == pages::CITY_LISTS {
        !crate::base::ids::is_dong_code(stem)
    } else {
        stem == dong
    }
}

/// The households a list file names (the CSV's second column, the
/// Parquet's `household_id`): a download is audited with every one, so
/// `sagak audit --household` finds who took a list that held it.
pub(super) fn households_in(file: &str, bytes: &[u8]) -> Vec<String> {
    let mut out = if file.ends_with(".csv") {
        csv_households(bytes)
    } else {
        parquet_households(bytes)
    };
    out.sort();
    out.dedup();
    out
}

pub(super) fn csv_households(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(at) = header.split(',').position(|h| h.ends_with("household_id")) else {
        return Vec::new();
    };
    // ids are [A-Za-z0-9_-] (never quoted); a neutralised one starts with '
    lines
        .filter_map(|l| l.split(',').nth(at))
        .map(|h| h.trim_start_matches('\'').to_string())
        .filter(|h| crate::base::ids::is_pseudonymous_id(h))
        .collect()
}

pub(super) fn parquet_households(bytes: &[u8]) -> Vec<String> {
    use arrow::array::AsArray;
    let Ok(reader) = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        Bytes::copy_from_slice(bytes),
    )
    .and_then(|b| b.build()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for batch in reader.flatten() {
        let Some(col) = batch.column_by_name("household_id") else {
            continue;
        };
        if let Ok(col) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) {
            out.extend(col.as_string::<i32>().iter().flatten().map(str::to_string));
        }
    }
    out
}

pub(super) async fn download(
    State(st): State<Arc<WebState>>,
    caller: Caller,
    UrlPath((day, file)): UrlPath<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let Caller { who, from, api } = caller;
    // a refusal, audited with the file asked for (RRN-shaped runs masked)
    let refuse = |action: &str, status: StatusCode, message: &str, file: Option<String>| {
        let page = fail(api, status, message);
        audited(&st, &who, &from, action, uri.path(), vec![], file, page)
    };
    if !is_day(&day) || file.contains('/') || file.contains("..") {
        return refuse(
            "download_list",
            StatusCode::BAD_REQUEST,
            "목록 주소는 /lists/YYYY-MM-DD/<파일>입니다. (A list is /lists/YYYY-MM-DD/<file>.)",
            None,
        );
    }
    let name = format!("{day}/{file}");
    if !may_download(&who, &file) {
        return refuse(
            "denied",
            StatusCode::FORBIDDEN,
            "다른 동의 목록입니다. 이 시도는 기록됩니다. (This list belongs to another dong's office; the attempt is recorded.)",
            Some(name),
        );
    }
    let Ok(Some(bytes)) = st.lists.get(&format!("lists/{day}/{file}")) else {
        return refuse(
            "download_list",
            StatusCode::NOT_FOUND,
            "그런 목록 파일이 없습니다 (보관 기간이 지났을 수 있습니다). (No such list file.)",
            Some(name),
        );
    };
    let households = households_in(&file, &bytes);
    let kind = if file.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/vnd.apache.parquet"
    };
    let disposition = format!("attachment; filename=\"{day}-{file}\"");
    let page = (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response();
    audited(
        &st,
        &who,
        &from,
        "download_list",
        uri.path(),
        households,
        Some(name),
        page,
    )
}

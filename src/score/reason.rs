//! Renders the human-readable detail of a reason from a feed's template.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate};

/// The values of one qualifying signal that a template can name.
#[derive(Debug, Clone, Default)]
pub struct ReasonValues<'a> {
    /// Subject within the feed.
    pub subject: &'a str,
    /// Kind within the feed.
    pub kind: Option<&'a str>,
    /// Months overdue.
    pub months_overdue: Option<i64>,
    /// Amount overdue in KRW.
    pub amount_krw: Option<i64>,
    /// Supply cut off or limited.
    pub disconnected: Option<bool>,
    /// Reported date, days since the epoch.
    pub occurred_on: Option<i32>,
    /// Event time, ms since the epoch.
    pub observed_at: i64,
}

/// Formats `n` with thousands separators: 1230000 -> "1,230,000".
pub fn thousands(n: i64) -> String {
    let mut out = String::with_capacity(26);
    push_thousands(&mut out, n);
    out
}

/// [`thousands`] appended to `out`, with no allocation of its own (it runs
/// for every reason of every assessment).
pub fn push_thousands(out: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut v = n.unsigned_abs();
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    for i in (0..len).rev() {
        out.push(char::from(digits[i]));
        if i > 0 && i % 3 == 0 {
            out.push(',');
        }
    }
}

/// Formats days since the epoch as YYYY-MM-DD.
pub fn date(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// Fills `template`: `{column}` becomes the value, `{column?text}` becomes
/// `text` when the boolean column is true. `labels` translates subject and
/// kind values (Korean words); without a label, `_` reads as a space.
pub fn render(template: &str, v: &ReasonValues<'_>, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &rest[open + 1..open + close];
        let (name, conditional) = match inner.split_once('?') {
            Some((n, text)) => (n, Some(text)),
            None => (inner, None),
        };
        // written straight into `out`: this runs for every reason
        let label = |out: &mut String, s: &str| match labels.get(s) {
            Some(l) => out.push_str(l),
            None => out.extend(s.chars().map(|c| if c == '_' { ' ' } else { c })),
        };
        match (name, conditional) {
            (_, Some(text)) => {
                if name == "disconnected" && v.disconnected == Some(true) {
                    out.push_str(text);
                }
            }
            ("subject", None) => label(&mut out, v.subject),
            ("kind", None) => {
                if let Some(kind) = v.kind {
                    label(&mut out, kind);
                }
            }
            ("months_overdue", None) => {
                let _ = write!(out, "{}", v.months_overdue.unwrap_or(0));
            }
            ("amount_krw", None) => push_thousands(&mut out, v.amount_krw.unwrap_or(0)),
            ("occurred_on", None) => out.push_str(&v.occurred_on.map(date).unwrap_or_default()),
            ("observed_at", None) => out.push_str(
                &DateTime::from_timestamp_millis(v.observed_at)
                    .map(|t| t.date_naive().to_string())
                    .unwrap_or_default(),
            ),
            _ => {
                out.push('{');
                out.push_str(inner);
                out.push('}');
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_230_000), "1,230,000");
        assert_eq!(thousands(-12_345), "-12,345");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn templates_read_like_the_contract_example() {
        let v = ReasonValues {
            subject: "nhis",
            months_overdue: Some(5),
            amount_krw: Some(1_230_000),
            ..Default::default()
        };
        let t = "health insurance premium {months_overdue} months overdue ({amount_krw} KRW)";
        assert_eq!(
            render(t, &v, &BTreeMap::new()),
            "health insurance premium 5 months overdue (1,230,000 KRW)"
        );
    }

    #[test]
    fn conditional_text_and_korean_labels() {
        let labels = BTreeMap::from([("electricity".to_string(), "전기".to_string())]);
        let mut v = ReasonValues {
            subject: "electricity",
            months_overdue: Some(4),
            amount_krw: Some(230_000),
            disconnected: Some(true),
            ..Default::default()
        };
        let t =
            "{subject} 요금 {months_overdue}개월 체납 ({amount_krw}원){disconnected?, 공급 중단}";
        assert_eq!(
            render(t, &v, &labels),
            "전기 요금 4개월 체납 (230,000원), 공급 중단"
        );
        v.disconnected = Some(false);
        assert_eq!(render(t, &v, &labels), "전기 요금 4개월 체납 (230,000원)");
    }
}

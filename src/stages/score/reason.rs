//! Renders the human-readable detail of a reason from a feed's template.

use std::collections::BTreeMap;

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
#[cfg(test)]
pub fn thousands(n: i64) -> String {
    let mut out = String::with_capacity(26);
    push_thousands(&mut out, n);
    out
}

/// [`thousands`] appended to `out`, with no allocation of its own and one
/// copy into `out` (it runs for every reason of every assessment).
pub fn push_thousands(out: &mut String, n: i64) {
    push_decimal(out, n, true);
}

/// Appends `n` in decimal, with a comma before each group of three digits
/// when `separators`, without the formatter's machinery.
fn push_decimal(out: &mut String, n: i64, separators: bool) {
    // written from the right: 19 digits, 6 commas and a sign fill 26 bytes
    let mut buf = [0u8; 26];
    let mut at = buf.len();
    let mut v = n.unsigned_abs();
    let mut digits = 0;
    loop {
        if separators && digits > 0 && digits % 3 == 0 {
            at -= 1;
            buf[at] = b',';
        }
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        digits += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    // ASCII digits, commas and a minus only
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

/// Appends the date `days` since the epoch as YYYY-MM-DD (nothing for a
/// year outside 0000-9999).
fn push_date(out: &mut String, days: i64) {
    if let Some(d) = crate::base::civil::date_bytes(days) {
        // ASCII digits and dashes only
        out.push_str(std::str::from_utf8(&d).unwrap_or_default());
    }
}

/// One part of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// Text written as it is.
    Text(String),
    Subject,
    Kind,
    MonthsOverdue,
    AmountKrw,
    OccurredOn,
    ObservedAt,
    /// `{disconnected?text}`: the text when the signal's supply was cut.
    IfDisconnected(String),
}

/// A reason template, parsed once per feed: `{column}` becomes the value,
/// `{column?text}` becomes `text` when the boolean column is true, and an
/// unknown `{name}` or an unclosed `{` stays as written.
///
/// ```
/// use std::collections::BTreeMap;
/// use sagak::stages::score::reason::{ReasonValues, Template};
///
/// let t = Template::parse("{subject} bill {months_overdue} months overdue{disconnected?, cut off}");
/// let v = ReasonValues {
///     subject: "water",
///     months_overdue: Some(4),
///     disconnected: Some(true),
///     ..Default::default()
/// };
/// assert_eq!(t.render(&v, &BTreeMap::new()), "water bill 4 months overdue, cut off");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Length of the fixed text, to size the output once.
    fixed_len: usize,
}

impl Template {
    /// Parses `template`.
    pub fn parse(template: &str) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                // unclosed: the rest stays as written
                text.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let inner = &rest[open + 1..open + close];
            let piece = match inner.split_once('?') {
                Some(("disconnected", shown)) => Some(Piece::IfDisconnected(shown.to_string())),
                // a condition on another column never shows
                Some(_) => None,
                None => match inner {
                    "subject" => Some(Piece::Subject),
                    "kind" => Some(Piece::Kind),
                    "months_overdue" => Some(Piece::MonthsOverdue),
                    "amount_krw" => Some(Piece::AmountKrw),
                    "occurred_on" => Some(Piece::OccurredOn),
                    "observed_at" => Some(Piece::ObservedAt),
                    _ => {
                        text.push_str(&rest[open..=open + close]);
                        rest = &rest[open + close + 1..];
                        continue;
                    }
                },
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.extend(piece);
            rest = &rest[open + close + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let fixed_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        Template { pieces, fixed_len }
    }

    /// The template filled with `v`. `labels` translates subject and kind
    /// values (Korean words); without a label, `_` reads as a space.
    pub fn render(&self, v: &ReasonValues<'_>, labels: &BTreeMap<String, String>) -> String {
        let mut out = String::with_capacity(self.fixed_len + 32);
        let label = |out: &mut String, s: &str| match labels.get(s) {
            Some(l) => out.push_str(l),
            // whole pieces: a value is pushed once, not a char at a time
            None => {
                for (i, part) in s.split('_').enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(part);
                }
            }
        };
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Subject => label(&mut out, v.subject),
                Piece::Kind => {
                    if let Some(kind) = v.kind {
                        label(&mut out, kind);
                    }
                }
                Piece::MonthsOverdue => {
                    push_decimal(&mut out, v.months_overdue.unwrap_or(0), false)
                }
                Piece::AmountKrw => push_thousands(&mut out, v.amount_krw.unwrap_or(0)),
                Piece::OccurredOn => {
                    if let Some(days) = v.occurred_on {
                        push_date(&mut out, i64::from(days));
                    }
                }
                Piece::ObservedAt => push_date(
                    &mut out,
                    v.observed_at.div_euclid(crate::definition::DAY_MS),
                ),
                Piece::IfDisconnected(shown) => {
                    if v.disconnected == Some(true) {
                        out.push_str(shown);
                    }
                }
            }
        }
        out
    }
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
        assert_eq!(thousands(i64::MAX), "9,223,372,036,854,775,807");
        assert_eq!(thousands(-1), "-1");
        assert_eq!(thousands(1_000), "1,000");
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
            Template::parse(t).render(&v, &BTreeMap::new()),
            "health insurance premium 5 months overdue (1,230,000 KRW)"
        );
        // months are a count, written without separators; none is 0
        let many = ReasonValues {
            months_overdue: Some(1_200),
            ..v.clone()
        };
        assert_eq!(
            Template::parse(t).render(&many, &BTreeMap::new()),
            "health insurance premium 1200 months overdue (1,230,000 KRW)"
        );
        let none = ReasonValues {
            months_overdue: None,
            ..v
        };
        assert_eq!(
            Template::parse("{months_overdue} months").render(&none, &BTreeMap::new()),
            "0 months"
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
            Template::parse(t).render(&v, &labels),
            "전기 요금 4개월 체납 (230,000원), 공급 중단"
        );
        v.disconnected = Some(false);
        assert_eq!(
            Template::parse(t).render(&v, &labels),
            "전기 요금 4개월 체납 (230,000원)"
        );
    }

    #[test]
    fn dates_unknown_names_and_unclosed_braces() {
        let v = ReasonValues {
            subject: "person_1",
            kind: Some("job_loss"),
            occurred_on: Some(20_000),
            observed_at: 1_700_000_000_000,
            ..Default::default()
        };
        let none = BTreeMap::new();
        let t = Template::parse(
            "{subject}: {kind} on {occurred_on}, seen {observed_at} {other} {x?y}{z",
        );
        assert_eq!(
            t.render(&v, &none),
            "person 1: job loss on 2024-10-04, seen 2023-11-14 {other} {z"
        );
        let no_date = ReasonValues::default();
        assert_eq!(
            Template::parse("on {occurred_on}.").render(&no_date, &none),
            "on ."
        );
    }
}

//! Decode and validate: message bytes -> rows of an Arrow micro-batch, or a
//! [`Reject`] naming the problem.
//!
//! The JSON is read in one pass with a visitor that keeps only the fields the
//! feed declares (unknown fields are skipped for forward compatibility) and
//! borrows strings from the message, so a valid message costs no allocation
//! beyond the Arrow buffers it is appended to.
//!
//! ```
//! use sagak::stages::decode::{Decoder, RejectClass};
//! use sagak::definition::PipelineSpec;
//! let spec = PipelineSpec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default").as_ref()).unwrap();
//! let mut decoder = Decoder::new(&spec);
//! let health = spec.feed_index("health-insurance").unwrap() as u16;
//! let json = br#"{"event_id":"e1","household_id":"hh-1","dong_code":"4125051000",
//!   "observed_at":"2026-11-01T09:00:00+09:00","source":"nhis","months_overdue":5,"amount_krw":1230000}"#;
//! let now = 1_800_000_000_000;
//! assert!(decoder.decode(0, health, Some(b"hh-1"), Some(json), now).is_ok());
//! let bad = decoder.decode(1, health, Some(b"hh-1"), Some(b"not json"), now).unwrap_err();
//! assert_eq!(bad.class, RejectClass::NotJson);
//! assert_eq!(decoder.finish().num_rows(), 1);
//! ```

use crate::base::ids;
pub(crate) mod json;
mod reject;

use std::borrow::Cow;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate};

pub use reject::RejectClass;
pub(crate) use reject::{utf8, Reject};

use crate::definition::{Column, FieldSpec, FieldType, PipelineSpec, COMMON_FIELDS, MAX_FIELDS};
use crate::stages::signal::{DecodedBatchBuilder, DecodedRow, Measures};
use json::Json;

const EVENT_ID: usize = 0;
const HOUSEHOLD_ID: usize = 1;
const DONG_CODE: usize = 2;
const OBSERVED_AT: usize = 3;
const SOURCE: usize = 4;

struct CompiledFeed {
    /// Common field names, then the feed's own, in slot order.
    names: Vec<String>,
    /// The feed's own fields, slot `COMMON_FIELDS.len() + i`.
    fields: Vec<FieldSpec>,
    subject_const: Option<String>,
}

/// The decode stage: validates messages of every feed into one Arrow batch.
pub struct Decoder {
    feeds: Vec<CompiledFeed>,
    max_future_ms: i64,
    builder: DecodedBatchBuilder,
}

impl Decoder {
    /// A decoder for the feeds of `spec`. Messages more than
    /// `window.max_future_hours` ahead of `now` are rejected.
    pub fn new(spec: &PipelineSpec) -> Self {
        let feeds = spec
            .feeds
            .iter()
            .map(|f| CompiledFeed {
                names: COMMON_FIELDS
                    .iter()
                    .map(|s| s.to_string())
                    .chain(f.fields.keys().cloned())
                    .collect(),
                fields: f.fields.values().cloned().collect(),
                subject_const: f.subject.clone(),
            })
            .collect();
        Decoder {
            feeds,
            max_future_ms: i64::from(spec.window.max_future_hours) * 3_600_000,
            builder: DecodedBatchBuilder::new(),
        }
    }

    /// Validates one message of feed `feed` and appends it to the batch, or
    /// says why it cannot be accepted. `now_ms` is the wall clock.
    pub fn decode(
        &mut self,
        msg_index: u32,
        feed: u16,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), Reject> {
        let compiled = self.feeds.get(usize::from(feed)).ok_or_else(|| {
            Reject::new(
                RejectClass::UnknownTopic,
                "no feed of the pipeline reads this topic",
            )
        })?;
        let text = reject::utf8(payload.unwrap_or_default())?;
        let mut slots: [Option<Json<'_>>; MAX_FIELDS] = Default::default();
        json::read_object(text, &compiled.names, &mut slots)?;

        let str_field = |i: usize| -> Result<&str, Reject> {
            match &slots[i] {
                Some(Json::Str(s)) => Ok(s.as_ref()),
                None | Some(Json::Null) => Err(missing(&compiled.names[i])),
                Some(other) => Err(wrong_type(&compiled.names[i], "a string", other)),
            }
        };

        // Privacy first: an RRN anywhere in the key or an id-like field is
        // rejected before any other check can echo it.
        if key.is_some_and(ids::contains_rrn) {
            return Err(rrn("the message key"));
        }
        let household_id = str_field(HOUSEHOLD_ID)?;
        no_rrn("household_id", household_id)?;
        if !ids::is_pseudonymous_id(household_id) {
            return Err(Reject::new(
                RejectClass::BadHouseholdId,
                "household_id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (a pseudonymous id)",
            ));
        }
        let event_id = str_field(EVENT_ID)?;
        no_rrn("event_id", event_id)?;
        check_text("event_id", event_id, 128)?;
        let source = str_field(SOURCE)?;
        no_rrn("source", source)?;
        check_text("source", source, 64)?;
        let dong_code = str_field(DONG_CODE)?;
        check_dong_code(dong_code)?;
        let observed_at_ms = observed_ms(str_field(OBSERVED_AT)?)?;

        let mut subject: Option<&str> = compiled.subject_const.as_deref();
        let mut measures = Measures::default();
        for (i, spec) in compiled.fields.iter().enumerate() {
            let slot = COMMON_FIELDS.len() + i;
            let name = compiled.names[slot].as_str();
            let value = match &slots[slot] {
                None | Some(Json::Null) if spec.required => return Err(missing(name)),
                None | Some(Json::Null) => continue,
                Some(v) => v,
            };
            if let Json::Str(text) = value {
                no_rrn(name, text)?;
            }
            let checked = check_field(name, spec, value)?;
            match (spec.column, checked) {
                (Some(Column::Subject), Checked::Text(s)) => subject = Some(s),
                (Some(Column::Kind), Checked::Text(s)) => measures.kind = Some(s),
                (Some(Column::MonthsOverdue), Checked::Int(n)) => measures.months_overdue = Some(n),
                (Some(Column::AmountKrw), Checked::Int(n)) => measures.amount_krw = Some(n),
                (Some(Column::Disconnected), Checked::Bool(b)) => measures.disconnected = Some(b),
                (Some(Column::OccurredOn), Checked::Date(d)) => measures.occurred_on = Some(d),
                _ => {}
            }
        }
        let subject = subject.ok_or_else(|| missing("subject"))?;

        if key != Some(household_id.as_bytes()) {
            return Err(Reject::new(
                RejectClass::KeyMismatch,
                "message key must be the household_id of the value (UTF-8), so that a household's signals share a partition",
            ));
        }
        if observed_at_ms > now_ms.saturating_add(self.max_future_ms) {
            return Err(Reject::new(
                RejectClass::FutureEvent,
                format!(
                    "observed_at is more than {} hours ahead of the pipeline's clock",
                    self.max_future_ms / 3_600_000
                ),
            ));
        }
        self.builder.append(&DecodedRow {
            msg_index,
            feed,
            household_id,
            dong_code,
            event_id,
            source,
            observed_at_ms,
            subject,
            measures,
        });
        Ok(())
    }

    /// Rows decoded since the last [`finish`](Self::finish).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.builder.len()
    }

    /// Takes the decoded rows as one record batch.
    pub fn finish(&mut self) -> RecordBatch {
        self.builder.finish()
    }
}

enum Checked<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Date(i32),
}

fn check_field<'a>(
    name: &str,
    spec: &FieldSpec,
    value: &'a Json<'a>,
) -> Result<Checked<'a>, Reject> {
    match spec.ty {
        FieldType::String | FieldType::Id | FieldType::Enum => {
            let Json::Str(s) = value else {
                return Err(wrong_type(name, "a string", value));
            };
            let s: &str = s.as_ref();
            if ids::contains_rrn(s.as_bytes()) {
                return Err(rrn(name));
            }
            match spec.ty {
                FieldType::Id if !ids::is_pseudonymous_id(s) => Err(Reject::new(
                    RejectClass::WrongType,
                    format!("{name} must be a pseudonymous id: 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"),
                )),
                FieldType::Enum if !spec.values.iter().any(|v| v == s) => Err(Reject::new(
                    RejectClass::NotInEnum,
                    format!("{name} must be one of {}", spec.values.join(", ")),
                )),
                FieldType::String => check_text(name, s, 256).map(|_| Checked::Text(s)),
                _ => Ok(Checked::Text(s)),
            }
        }
        FieldType::Int => {
            let n = match value {
                Json::Int(n) => *n,
                Json::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => *f as i64,
                Json::Float(_) => {
                    return Err(Reject::new(
                        RejectClass::OutOfRange,
                        format!("{name} must be a whole number"),
                    ));
                }
                other => return Err(wrong_type(name, "an integer", other)),
            };
            let (min, max) = (spec.min.unwrap_or(i64::MIN), spec.max.unwrap_or(i64::MAX));
            if n < min || n > max {
                return Err(Reject::new(
                    RejectClass::OutOfRange,
                    format!("{name} must be between {min} and {max}, got {n}"),
                ));
            }
            Ok(Checked::Int(n))
        }
        FieldType::Bool => match value {
            Json::Bool(b) => Ok(Checked::Bool(*b)),
            other => Err(wrong_type(name, "true or false", other)),
        },
        FieldType::Date => {
            let Json::Str(s) = value else {
                return Err(wrong_type(name, "a YYYY-MM-DD date string", value));
            };
            let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                Reject::new(
                    RejectClass::WrongType,
                    format!("{name} must be a YYYY-MM-DD date"),
                )
            })?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            Ok(Checked::Date((date - epoch).num_days() as i32))
        }
    }
}

fn check_text(name: &str, s: &str, max_chars: usize) -> Result<(), Reject> {
    // no more bytes than the limit is no more characters either
    if !s.is_empty() && s.len() <= max_chars {
        return Ok(());
    }
    let n = s.chars().count();
    if n == 0 || n > max_chars {
        return Err(Reject::new(
            RejectClass::OutOfRange,
            format!("{name} must be 1-{max_chars} characters, got {n}"),
        ));
    }
    Ok(())
}

fn missing(name: &str) -> Reject {
    Reject::new(
        RejectClass::MissingField,
        format!("required field {name} is missing or null"),
    )
}

/// A dong code is exactly 10 digits.
#[inline]
fn check_dong_code(dong_code: &str) -> Result<(), Reject> {
    if ids::is_dong_code(dong_code) {
        return Ok(());
    }
    Err(Reject::new(
        RejectClass::BadDongCode,
        format!(
            "dong_code must be exactly 10 digits (administrative dong code), got {} characters",
            dong_code.chars().count()
        ),
    ))
}

/// `observed_at` in ms: the common shape read without chrono, anything
/// else checked by it.
#[inline]
fn observed_ms(observed_at: &str) -> Result<i64, Reject> {
    if let Some(ms) = crate::base::civil::rfc3339_ms(observed_at) {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(observed_at)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            Reject::new(
                RejectClass::WrongType,
                format!("observed_at is not an RFC 3339 timestamp with offset ({e}), e.g. 2026-11-22T06:00:00+09:00"),
            )
        })
}

/// Rejects a text value holding a resident registration number, before any
/// check whose message could repeat it.
fn no_rrn(name: &str, text: &str) -> Result<(), Reject> {
    if ids::contains_rrn(text.as_bytes()) {
        return Err(rrn(name));
    }
    Ok(())
}

fn rrn(name: &str) -> Reject {
    Reject::new(
        RejectClass::ResidentRegistrationNumber,
        format!(
            "{name} looks like a resident registration number; only pseudonymous ids may be sent (the number was masked in this dead letter)"
        ),
    )
}

fn wrong_type(name: &str, expected: &str, got: &Json<'_>) -> Reject {
    Reject::new(
        RejectClass::WrongType,
        format!("{name} must be {expected}, got {}", got.type_name()),
    )
}

/// Borrowed or owned text of a JSON string (owned only when it had escapes).
pub(crate) type Text<'a> = Cow<'a, str>;

#[cfg(test)]
mod tests;

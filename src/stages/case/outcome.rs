//! The outcome a dong office records for a household: its wire names, and
//! decoding with the same validation (and reject classes) as signals.

use serde_json::{Map, Value};

use crate::base::ids;
use crate::stages::decode::{Reject, RejectClass};

/// Declares a closed set of wire names with a stable one-byte code each.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named `text` on the wire.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// Its code in the case state (position in [`Self::ALL`]).
            pub fn code(self) -> u8 {
                self as u8
            }

            /// The value of a code.
            pub fn from_code(code: u8) -> Option<Self> {
                Self::ALL.get(usize::from(code)).copied()
            }

            /// The wire names, for messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | ")
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// What an office did (`kind`).
    OutcomeKind {
        /// 연락 시도: a call, visit, text or letter, with its result.
        ContactAttempted = "contact_attempted",
        /// 상담 완료.
        Counselled = "counselled",
        /// 서비스 연계.
        SupportLinked = "support_linked",
        /// 통합사례관리 선정.
        CaseOpened = "case_opened",
        /// 비대상.
        NotApplicable = "not_applicable",
        /// 서비스 거부.
        Declined = "declined",
        /// 종결.
        CaseClosed = "case_closed",
        /// 기록 철회: undoes a mistaken outcome.
        Withdrawn = "withdrawn",
    }
}

wire_enum! {
    /// How a contact was attempted (`channel`).
    Channel {
        /// 전화.
        Phone = "phone",
        /// 방문.
        Visit = "visit",
        /// 문자.
        Sms = "sms",
        /// 우편.
        Letter = "letter",
    }
}

wire_enum! {
    /// What a contact attempt found (`result`).
    ContactResult {
        /// Someone of the household was reached.
        Reached = "reached",
        /// Nobody answered.
        NoAnswer = "no_answer",
        /// The number is not theirs.
        WrongNumber = "wrong_number",
        /// Nobody lives at the address.
        EmptyHouse = "empty_house",
        /// They moved.
        Moved = "moved",
        /// The registered address is not where they live.
        AddressMismatch = "address_mismatch",
        /// They refused (counts as `declined`).
        Refused = "refused",
    }
}

impl ContactResult {
    /// A failed attempt: nobody of the household was reached.
    pub fn failed(self) -> bool {
        !matches!(self, ContactResult::Reached | ContactResult::Refused)
    }

    /// A failure that alone says the household is not where it is
    /// registered.
    pub fn not_there(self) -> bool {
        matches!(
            self,
            ContactResult::EmptyHouse | ContactResult::Moved | ContactResult::AddressMismatch
        )
    }
}

wire_enum! {
    /// A service a household was linked to (`services`).
    Service {
        /// 긴급복지.
        EmergencyWelfare = "emergency_welfare",
        /// 기초생활보장.
        BasicLivelihood = "basic_livelihood",
        /// 차상위.
        NearPoor = "near_poor",
        /// 의료급여.
        MedicalAid = "medical_aid",
        /// 에너지바우처.
        Energy = "energy",
        /// 고용지원.
        Employment = "employment",
        /// 채무조정.
        Debt = "debt",
        /// 돌봄.
        Care = "care",
        /// 정신건강.
        MentalHealth = "mental_health",
        /// 민간자원.
        Private = "private",
    }
}

wire_enum! {
    /// Which track a case opened on (`track`).
    Track {
        /// 통합사례관리.
        CaseManagement = "case_management",
        /// 서비스 연계.
        ServiceLinkage = "service_linkage",
    }
}

wire_enum! {
    /// Why a household is not a case (`reason` of `not_applicable`).
    NotApplicableReason {
        /// Already receives support.
        AlreadyRecipient = "already_recipient",
        /// No need found.
        NoNeed = "no_need",
        /// Moved out of the dong.
        MovedOut = "moved_out",
        /// Deceased.
        Deceased = "deceased",
        /// The signals were wrong.
        DataError = "data_error",
    }
}

wire_enum! {
    /// Why a case closed (`reason` of `case_closed`).
    CloseReason {
        /// Its goals were met.
        GoalMet = "goal_met",
        /// The household declined to go on.
        Declined = "declined",
        /// Moved out.
        MovedOut = "moved_out",
        /// Deceased.
        Deceased = "deceased",
        /// Entered an institution.
        Institutionalised = "institutionalised",
        /// Handed to another agency.
        Transferred = "transferred",
    }
}

/// What an outcome says, with the value its kind requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// `contact_attempted`.
    Contact(Channel, ContactResult),
    /// `counselled`.
    Counselled,
    /// `support_linked`: the services as a bit set over [`Service::ALL`].
    SupportLinked(u16),
    /// `case_opened`.
    CaseOpened(Track),
    /// `not_applicable`.
    NotApplicable(NotApplicableReason),
    /// `declined`.
    Declined,
    /// `case_closed`.
    CaseClosed(CloseReason),
    /// `withdrawn`: the `outcome_id` it withdraws.
    Withdrawn(String),
}

impl Said {
    /// Its kind.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Said::Contact(..) => OutcomeKind::ContactAttempted,
            Said::Counselled => OutcomeKind::Counselled,
            Said::SupportLinked(_) => OutcomeKind::SupportLinked,
            Said::CaseOpened(_) => OutcomeKind::CaseOpened,
            Said::NotApplicable(_) => OutcomeKind::NotApplicable,
            Said::Declined => OutcomeKind::Declined,
            Said::CaseClosed(_) => OutcomeKind::CaseClosed,
            Said::Withdrawn(_) => OutcomeKind::Withdrawn,
        }
    }

    /// The code of its value within its kind (0 where it has none worth
    /// keeping): what the case state keeps of it.
    pub fn detail(&self) -> u8 {
        match self {
            Said::Contact(_, r) => r.code(),
            Said::CaseOpened(t) => t.code(),
            Said::NotApplicable(r) => r.code(),
            Said::CaseClosed(r) => r.code(),
            _ => 0,
        }
    }
}

/// One decoded outcome. Its `note` is checked and not kept: it stays in
/// the outcomes topic, never in the engine's state or logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Unique id; a re-sent outcome counts once.
    pub outcome_id: String,
    /// Pseudonymous household id.
    pub household_id: String,
    /// The office that recorded it.
    pub dong_code: String,
    /// The alert it answers, as the 128-bit hash its id spells.
    pub alert_id: Option<u128>,
    /// When it was recorded, ms since the epoch.
    pub recorded_at: i64,
    /// Pseudonymous id of the person who recorded it.
    pub staff_id: String,
    /// What it says.
    pub said: Said,
}

/// The hash an alert id (`al-` and 32 hex digits) spells.
pub fn parse_alert_id(text: &str) -> Option<u128> {
    let hex = text.strip_prefix("al-")?;
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

/// Decodes one outcome message. `now_ms` is the pipeline's clock; an
/// outcome recorded more than `max_future_ms` ahead of it is rejected.
pub fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    now_ms: i64,
    max_future_ms: i64,
) -> Result<Outcome, Reject> {
    let text = crate::stages::decode::utf8(payload.unwrap_or_default())?;
    if key.is_some_and(ids::contains_rrn) {
        return Err(rrn("the message key"));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Reject::new(
            RejectClass::NotJson,
            format!("value is not JSON ({e}); an outcome is one JSON object"),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(Reject::new(
            RejectClass::NotJson,
            "value must be one JSON object (an outcome)",
        ));
    };
    // privacy first: no field may carry a resident registration number,
    // the note included, before any message could echo it
    for (name, v) in &fields {
        if let Value::String(s) = v {
            // an alert id is sagak's own hash, whose hex digits may run 13
            // decimals long: it is checked for its shape, not for an RRN
            let own_id = name == "alert_id" && parse_alert_id(s).is_some();
            if !own_id && ids::contains_rrn(s.as_bytes()) {
                return Err(rrn(name));
            }
        }
    }
    let f = Fields(&fields);
    let household_id = f.id("household_id", RejectClass::BadHouseholdId)?;
    let outcome_id = f.id("outcome_id", RejectClass::WrongType)?;
    let staff_id = f.id("staff_id", RejectClass::WrongType)?;
    let dong_code = f.string("dong_code")?;
    if !ids::is_dong_code(dong_code) {
        return Err(Reject::new(
            RejectClass::BadDongCode,
            "dong_code must be exactly 10 digits: the office recording the outcome",
        ));
    }
    let alert_id = match fields.get("alert_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_alert_id(s).ok_or_else(|| {
            Reject::new(
                RejectClass::WrongType,
                "alert_id must be the alert_id of an alert: al- and 32 hex digits",
            )
        })?),
        Some(other) => return Err(wrong_type("alert_id", "a string", other)),
    };
    let recorded = f.string("recorded_at")?;
    let recorded_at = chrono::DateTime::parse_from_rfc3339(recorded)
        .map_err(|e| {
            Reject::new(
                RejectClass::WrongType,
                format!("recorded_at is not an RFC 3339 timestamp with offset ({e}), e.g. 2026-11-22T14:00:00+09:00"),
            )
        })?
        .timestamp_millis();
    if let Some(note) = fields.get("note") {
        match note {
            Value::Null => {}
            Value::String(s) if s.chars().count() <= 500 => {}
            Value::String(_) => {
                return Err(Reject::new(
                    RejectClass::OutOfRange,
                    "note must be at most 500 characters",
                ))
            }
            other => return Err(wrong_type("note", "a string", other)),
        }
    }
    let kind = f.choice::<OutcomeKind>("kind", OutcomeKind::parse, OutcomeKind::names)?;
    let said = match kind {
        OutcomeKind::ContactAttempted => Said::Contact(
            f.choice("channel", Channel::parse, Channel::names)?,
            f.choice("result", ContactResult::parse, ContactResult::names)?,
        ),
        OutcomeKind::Counselled => Said::Counselled,
        OutcomeKind::SupportLinked => Said::SupportLinked(f.services()?),
        OutcomeKind::CaseOpened => {
            Said::CaseOpened(f.choice("track", Track::parse, Track::names)?)
        }
        OutcomeKind::NotApplicable => Said::NotApplicable(f.choice(
            "reason",
            NotApplicableReason::parse,
            NotApplicableReason::names,
        )?),
        OutcomeKind::Declined => Said::Declined,
        OutcomeKind::CaseClosed => {
            Said::CaseClosed(f.choice("reason", CloseReason::parse, CloseReason::names)?)
        }
        OutcomeKind::Withdrawn => {
            Said::Withdrawn(f.id("withdraws", RejectClass::WrongType)?.to_string())
        }
    };
    if key != Some(household_id.as_bytes()) {
        return Err(Reject::new(
            RejectClass::KeyMismatch,
            "message key must be the household_id of the value (UTF-8), so that a household's outcomes share a partition with its signals",
        ));
    }
    if recorded_at > now_ms.saturating_add(max_future_ms) {
        return Err(Reject::new(
            RejectClass::FutureEvent,
            format!(
                "recorded_at is more than {} hours ahead of the pipeline's clock",
                max_future_ms / 3_600_000
            ),
        ));
    }
    Ok(Outcome {
        outcome_id: outcome_id.into(),
        household_id: household_id.into(),
        dong_code: dong_code.into(),
        alert_id,
        recorded_at,
        staff_id: staff_id.into(),
        said,
    })
}

/// The fields of an outcome object, read with the reject each problem gets.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn string(&self, name: &str) -> Result<&'a str, Reject> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Err(missing(name)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// A pseudonymous id; `class` when it is not one.
    fn id(&self, name: &str, class: RejectClass) -> Result<&'a str, Reject> {
        let s = self.string(name)?;
        if !ids::is_pseudonymous_id(s) {
            return Err(Reject::new(
                class,
                format!("{name} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (a pseudonymous id)"),
            ));
        }
        Ok(s)
    }

    fn choice<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        names: fn() -> String,
    ) -> Result<T, Reject> {
        let s = self.string(name)?;
        parse(s).ok_or_else(|| {
            Reject::new(
                RejectClass::NotInEnum,
                format!("{name} must be one of {}", names()),
            )
        })
    }

    fn services(&self) -> Result<u16, Reject> {
        let list = match self.0.get("services") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) => {
                return Err(Reject::new(
                    RejectClass::OutOfRange,
                    "services must name at least one service",
                ))
            }
            None | Some(Value::Null) => return Err(missing("services")),
            Some(other) => return Err(wrong_type("services", "an array of strings", other)),
        };
        let mut set = 0u16;
        for item in list {
            let service = item.as_str().and_then(Service::parse).ok_or_else(|| {
                Reject::new(
                    RejectClass::NotInEnum,
                    format!("each of services must be one of {}", Service::names()),
                )
            })?;
            set |= 1 << service.code();
        }
        Ok(set)
    }
}

fn missing(name: &str) -> Reject {
    Reject::new(
        RejectClass::MissingField,
        format!("required field {name} is missing or null"),
    )
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> Reject {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Reject::new(
        RejectClass::WrongType,
        format!("{name} must be {expected}, got {got}"),
    )
}

fn rrn(name: &str) -> Reject {
    Reject::new(
        RejectClass::ResidentRegistrationNumber,
        format!(
            "{name} looks like a resident registration number; only pseudonymous ids may be sent (the number was masked in this dead letter)"
        ),
    )
}

//! The outcome a dong office records for a household: its wire names, and
//! decoding with the same validation (and reject classes) as signals.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::base::ids;
use crate::stages::decode::json::Json;
use crate::stages::decode::{Reject, RejectClass, Text};

/// Declares a closed set of wire names, each with an explicit, stable
/// one-byte code (what the case state's snapshots keep: never reuse or
/// renumber one) and its Korean label (the default of `[outcomes.labels_ko]`).
/// This table is the one declaration behind the decoder, the page's form,
/// the pages and `schemas/outcome.schema.json` (a test checks the schema
/// against it).
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal, $ko:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The Korean label unless the pipeline names another.
            pub fn label_ko(self) -> &'static str {
                match self {
                    $($name::$variant => $ko,)+
                }
            }

            /// The value named `text` on the wire.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// Its code in the case state (declared, stable).
            pub fn code(self) -> u8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value of a code.
            pub fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
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
        ContactAttempted = 0, "contact_attempted", "연락 시도";
        /// 상담 완료.
        Counselled = 1, "counselled", "상담 완료";
        /// 서비스 연계.
        SupportLinked = 2, "support_linked", "서비스 연계";
        /// 통합사례관리 선정.
        CaseOpened = 3, "case_opened", "통합사례관리 선정";
        /// 비대상.
        NotApplicable = 4, "not_applicable", "비대상";
        /// 서비스 거부.
        Declined = 5, "declined", "서비스 거부";
        /// 종결.
        CaseClosed = 6, "case_closed", "종결";
        /// 기록 철회: undoes a mistaken outcome.
        Withdrawn = 7, "withdrawn", "기록 철회";
        /// 사례 계획: the needs found, the services planned and the goals
        /// (a case meeting's decision for an open case).
        CasePlan = 8, "case_plan", "사례 계획";
        /// 사례 점검: each goal of the plan met or not, each linked service
        /// fitting or not, and the next review.
        CaseReviewed = 9, "case_reviewed", "사례 점검";
    }
}

wire_enum! {
    /// How a contact was attempted (`channel`).
    Channel {
        /// 전화.
        Phone = 0, "phone", "전화";
        /// 방문.
        Visit = 1, "visit", "방문";
        /// 문자.
        Sms = 2, "sms", "문자";
        /// 우편.
        Letter = 3, "letter", "우편";
    }
}

wire_enum! {
    /// What a contact attempt found (`result`).
    ContactResult {
        /// Someone of the household was reached.
        Reached = 0, "reached", "연락됨";
        /// Nobody answered.
        NoAnswer = 1, "no_answer", "응답 없음";
        /// The number is not theirs.
        WrongNumber = 2, "wrong_number", "결번";
        /// Nobody lives at the address.
        EmptyHouse = 3, "empty_house", "빈집";
        /// They moved.
        Moved = 4, "moved", "이사";
        /// The registered address is not where they live.
        AddressMismatch = 5, "address_mismatch", "주소 불일치";
        /// They refused (counts as `declined`).
        Refused = 6, "refused", "거부";
    }
}

impl ContactResult {
    /// A failed attempt: nobody of the household was reached.
    pub(crate) fn failed(self) -> bool {
        !matches!(self, ContactResult::Reached | ContactResult::Refused)
    }

    /// A failure that alone says the household is not where it is
    /// registered.
    pub(crate) fn not_there(self) -> bool {
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
        EmergencyWelfare = 0, "emergency_welfare", "긴급복지";
        /// 기초생활보장.
        BasicLivelihood = 1, "basic_livelihood", "기초생활보장";
        /// 차상위.
        NearPoor = 2, "near_poor", "차상위";
        /// 의료급여.
        MedicalAid = 3, "medical_aid", "의료급여";
        /// 에너지바우처.
        Energy = 4, "energy", "에너지바우처";
        /// 고용지원.
        Employment = 5, "employment", "고용지원";
        /// 채무조정.
        Debt = 6, "debt", "채무조정";
        /// 돌봄.
        Care = 7, "care", "돌봄";
        /// 정신건강.
        MentalHealth = 8, "mental_health", "정신건강";
        /// 민간자원.
        Private = 9, "private", "민간자원";
    }
}

wire_enum! {
    /// Which track a case opened on (`track`).
    Track {
        /// 통합사례관리.
        CaseManagement = 0, "case_management", "통합사례관리";
        /// 서비스 연계.
        ServiceLinkage = 1, "service_linkage", "서비스 연계";
    }
}

wire_enum! {
    /// Why a household is not a case (`reason` of `not_applicable`).
    NotApplicableReason {
        /// Already receives support.
        AlreadyRecipient = 0, "already_recipient", "기수급자";
        /// No need found.
        NoNeed = 1, "no_need", "욕구 없음";
        /// Moved out of the dong.
        MovedOut = 2, "moved_out", "전출";
        /// Deceased.
        Deceased = 3, "deceased", "사망";
        /// The signals were wrong.
        DataError = 4, "data_error", "자료 오류";
    }
}

wire_enum! {
    /// Why a case closed (`reason` of `case_closed`).
    CloseReason {
        /// Its goals were met.
        GoalMet = 0, "goal_met", "목표 달성";
        /// The household declined to go on.
        Declined = 1, "declined", "서비스 거부";
        /// Moved out.
        MovedOut = 2, "moved_out", "전출";
        /// Deceased.
        Deceased = 3, "deceased", "사망";
        /// Entered an institution.
        Institutionalised = 4, "institutionalised", "시설 입소";
        /// Handed to another agency.
        Transferred = 5, "transferred", "이관";
    }
}

wire_enum! {
    /// A need found in the needs assessment (`needs` of `case_plan`): the
    /// ten domains of the integrated case management's assessment.
    Need {
        /// 안전.
        Safety = 0, "safety", "안전";
        /// 건강.
        Health = 1, "health", "건강";
        /// 일상생활 유지.
        DailyLiving = 2, "daily_living", "일상생활 유지";
        /// 가족관계.
        Family = 3, "family", "가족관계";
        /// 사회적 관계.
        Social = 4, "social", "사회적 관계";
        /// 경제.
        Economic = 5, "economic", "경제";
        /// 교육.
        Education = 6, "education", "교육";
        /// 고용.
        Employment = 7, "employment", "고용";
        /// 생활환경 (housing).
        Housing = 8, "housing", "생활환경";
        /// 권익보장.
        Rights = 9, "rights", "권익보장";
    }
}

wire_enum! {
    /// What a review found of one goal (`goal_results` of `case_reviewed`).
    GoalResult {
        /// 달성.
        Met = 0, "met", "달성";
        /// 부분 달성.
        Partly = 1, "partly", "부분 달성";
        /// 미달성.
        NotMet = 2, "not_met", "미달성";
    }
}

/// Goals a plan may set.
pub(crate) const MAX_GOALS: usize = 5;
/// Characters a goal's text may have.
pub(crate) const GOAL_CHARS: usize = 200;

/// A `case_plan`'s facts (the goals' texts travel beside it, like a note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The needs found, a bit set over [`Need::ALL`] by code.
    pub(crate) needs: u16,
    /// The services planned, a bit set over [`Service::ALL`] by code.
    pub(crate) services: u16,
    /// Each goal's target date, as days since 1970-01-01 (the office's date).
    pub(crate) targets: Vec<i32>,
}

/// A `case_reviewed`'s facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Review {
    /// Per goal of the case's newest plan, in its order.
    pub(crate) results: Vec<GoalResult>,
    /// Linked services found fitting, a bit set by code.
    pub(crate) fits: u16,
    /// Linked services found not fitting.
    pub(crate) unfit: u16,
    /// The next review's date (days since 1970-01-01), if set.
    pub(crate) next_review: Option<i32>,
}

/// What an outcome says, with the value its kind requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
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
    /// `case_plan`.
    CasePlan(Plan),
    /// `case_reviewed`.
    CaseReviewed(Review),
}

impl Said {
    /// Its kind.
    pub(crate) fn kind(&self) -> OutcomeKind {
        match self {
            Said::Contact(..) => OutcomeKind::ContactAttempted,
            Said::Counselled => OutcomeKind::Counselled,
            Said::SupportLinked(_) => OutcomeKind::SupportLinked,
            Said::CaseOpened(_) => OutcomeKind::CaseOpened,
            Said::NotApplicable(_) => OutcomeKind::NotApplicable,
            Said::Declined => OutcomeKind::Declined,
            Said::CaseClosed(_) => OutcomeKind::CaseClosed,
            Said::Withdrawn(_) => OutcomeKind::Withdrawn,
            Said::CasePlan(_) => OutcomeKind::CasePlan,
            Said::CaseReviewed(_) => OutcomeKind::CaseReviewed,
        }
    }

    /// The code of its value within its kind (0 where it has none worth
    /// keeping): what the case state keeps of it.
    pub(crate) fn detail(&self) -> u8 {
        match self {
            Said::Contact(_, r) => r.code(),
            Said::CaseOpened(t) => t.code(),
            Said::NotApplicable(r) => r.code(),
            Said::CaseClosed(r) => r.code(),
            _ => 0,
        }
    }
}

/// One decoded outcome. Its `note` is never kept in the engine's state or
/// written to a log: the web front keeps it beside the record, for the
/// household's office and the city, until the record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Unique id; a re-sent outcome counts once.
    pub(crate) outcome_id: String,
    /// Pseudonymous household id.
    pub(crate) household_id: String,
    /// The office that recorded it.
    pub(crate) dong_code: String,
    /// The alert it answers, as the 128-bit hash its id spells.
    pub(crate) alert_id: Option<u128>,
    /// When it was recorded, ms since the epoch.
    pub(crate) recorded_at: i64,
    /// Pseudonymous id of the person who recorded it.
    pub(crate) staff_id: String,
    /// What it says.
    pub(crate) said: Said,
    /// The office's free-text note (at most 500 characters).
    pub(crate) note: Option<String>,
    /// A `case_plan`'s goals as the office wrote them: private like the
    /// note (never in the engine's state or a log).
    pub(crate) goals: Vec<String>,
}

/// The hash an alert id (`al-` and 32 hex digits) spells.
pub(crate) fn parse_alert_id(text: &str) -> Option<u128> {
    let hex = text.strip_prefix("al-")?;
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

/// Decodes one outcome message. `now_ms` is the pipeline's clock; an
/// outcome recorded more than `max_future_ms` ahead of it is rejected.
pub(crate) fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    now_ms: i64,
    max_future_ms: i64,
) -> Result<Outcome, Reject> {
    let text = crate::stages::decode::utf8(payload.unwrap_or_default())?;
    if key.is_some_and(ids::contains_rrn) {
        return Err(rrn("the message key"));
    }
    let fields = read(text)?;
    // privacy first: no field may carry a resident registration number,
    // the note included, before any message could echo it
    no_rrn(&fields)?;
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
    let alert_id = f.alert_id()?;
    let recorded_at = f.recorded_at()?;
    let note_text = f.note()?;
    let kind = f.choice::<OutcomeKind>("kind", OutcomeKind::parse, OutcomeKind::names)?;
    let (said, goals) = f.said(kind)?;
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
        note: note_text,
        goals,
    })
}

/// Refuses an outcome any of whose text fields holds something shaped
/// like a resident registration number (an alert id is sagak's own hash,
/// whose hex digits may run 13 decimals long: it is checked for its shape).
fn no_rrn(fields: &[(Text<'_>, Item<'_>)]) -> Result<(), Reject> {
    let holds = |s: &str| ids::contains_rrn(s.as_bytes());
    for (name, v) in fields {
        let found = match v {
            Item::One(Json::Str(s)) => {
                let own_id = name == "alert_id" && parse_alert_id(s).is_some();
                !own_id && holds(s)
            }
            // a goal's text is as free as a note
            Item::List(items) => items.iter().any(|e| match e {
                Elem::One(Json::Str(s)) => holds(s),
                Elem::Object(pairs) => pairs
                    .iter()
                    .any(|(k, v)| holds(k) || matches!(v, Json::Str(s) if holds(s))),
                _ => false,
            }),
            _ => false,
        };
        if found {
            return Err(rrn(name));
        }
    }
    Ok(())
}

impl<'f> Fields<'f, '_> {
    /// The alert answered, if the outcome names one.
    fn alert_id(&self) -> Result<Option<u128>, Reject> {
        let id = match self.get("alert_id") {
            None | Some(Item::One(Json::Null)) => None,
            Some(Item::One(Json::Str(s))) => Some(parse_alert_id(s).ok_or_else(|| {
                Reject::new(
                    RejectClass::WrongType,
                    "alert_id must be the alert_id of an alert: al- and 32 hex digits",
                )
            })?),
            Some(other) => return Err(wrong_type("alert_id", "a string", other)),
        };
        Ok(id)
    }

    /// `recorded_at`, ms.
    fn recorded_at(&self) -> Result<i64, Reject> {
        let recorded = self.string("recorded_at")?;
        // the common shape is read without chrono; anything else is checked by it
        let at = match crate::base::civil::rfc3339_ms(recorded) {
            Some(ms) => ms,
            None => chrono::DateTime::parse_from_rfc3339(recorded)
                .map_err(|e| {
                    Reject::new(
                        RejectClass::WrongType,
                        format!("recorded_at is not an RFC 3339 timestamp with offset ({e}), e.g. 2026-11-22T14:00:00+09:00"),
                    )
                })?
                .timestamp_millis(),
        };
        Ok(at)
    }

    /// The note, if one is written (at most 500 characters).
    fn note(&self) -> Result<Option<String>, Reject> {
        let mut note_text = None;
        if let Some(note) = self.get("note") {
            match note {
                Item::One(Json::Null) => {}
                Item::One(Json::Str(s)) if s.chars().count() <= 500 => {
                    note_text = (!s.trim().is_empty()).then(|| s.to_string());
                }
                Item::One(Json::Str(_)) => {
                    return Err(Reject::new(
                        RejectClass::OutOfRange,
                        "note must be at most 500 characters",
                    ))
                }
                other => return Err(wrong_type("note", "a string", other)),
            }
        }
        Ok(note_text)
    }

    /// What the outcome says, by its kind, and a plan's goals' texts.
    fn said(&self, kind: OutcomeKind) -> Result<(Said, Vec<String>), Reject> {
        match kind {
            OutcomeKind::CasePlan => {
                let (plan, texts) = self.plan()?;
                Ok((Said::CasePlan(plan), texts))
            }
            OutcomeKind::CaseReviewed => Ok((Said::CaseReviewed(self.review()?), Vec::new())),
            _ => Ok((self.said_simple(kind)?, Vec::new())),
        }
    }

    /// `case_plan`: `needs` (one or more), `services` (planned, may be
    /// empty) and `goals` (1 to 5 objects of `text` and `target_date`).
    fn plan(&self) -> Result<(Plan, Vec<String>), Reject> {
        let needs = self.set("needs", Need::parse, Need::code, Need::names)?;
        let services = match self.get("services") {
            None | Some(Item::One(Json::Null)) => 0,
            Some(_) => self.set("services", Service::parse, Service::code, Service::names)?,
        };
        let goals = match self.get("goals") {
            Some(Item::List(list)) if (1..=MAX_GOALS).contains(&list.len()) => list,
            Some(Item::List(_)) => {
                return Err(Reject::new(
                    RejectClass::OutOfRange,
                    format!("goals must hold 1 to {MAX_GOALS} goals"),
                ))
            }
            None | Some(Item::One(Json::Null)) => return Err(missing("goals")),
            Some(other) => return Err(wrong_type("goals", "an array of objects", other)),
        };
        let (mut targets, mut texts) = (Vec::new(), Vec::new());
        for g in goals {
            let (text, target) = goal(g)?;
            texts.push(text);
            targets.push(target);
        }
        let plan = Plan {
            needs,
            services,
            targets,
        };
        Ok((plan, texts))
    }

    /// `case_reviewed`: `goal_results` (one per goal of the newest plan),
    /// `service_fit` (objects of `service` and `fits`), `next_review`.
    fn review(&self) -> Result<Review, Reject> {
        let list = self.strings("goal_results")?;
        let mut results = Vec::with_capacity(list.len());
        for s in list {
            results.push(GoalResult::parse(s).ok_or_else(|| {
                Reject::new(
                    RejectClass::NotInEnum,
                    format!(
                        "each of goal_results must be one of {}",
                        GoalResult::names()
                    ),
                )
            })?);
        }
        let (mut fits, mut unfit) = (0u16, 0u16);
        if let Some(Item::List(items)) = self.get("service_fit") {
            for e in items {
                let (service, fit) = service_fit(e)?;
                if fit {
                    fits |= 1 << service.code();
                } else {
                    unfit |= 1 << service.code();
                }
            }
        } else if let Some(other) = self
            .get("service_fit")
            .filter(|i| !matches!(i, Item::One(Json::Null)))
        {
            return Err(wrong_type("service_fit", "an array of objects", other));
        }
        let next_review = match self.get("next_review") {
            None | Some(Item::One(Json::Null)) => None,
            Some(Item::One(Json::Str(s))) => Some(date_field("next_review", s)?),
            Some(other) => return Err(wrong_type("next_review", "a date string", other)),
        };
        Ok(Review {
            results,
            fits,
            unfit,
            next_review,
        })
    }

    /// A non-empty array of strings (each a declared value: anything else
    /// in it is `not_in_enum`).
    fn strings(&self, name: &str) -> Result<Vec<&'f str>, Reject> {
        let list = match self.get(name) {
            Some(Item::List(list)) if !list.is_empty() => list,
            Some(Item::List(_)) => {
                return Err(Reject::new(
                    RejectClass::OutOfRange,
                    format!("{name} must hold at least one value"),
                ))
            }
            None | Some(Item::One(Json::Null)) => return Err(missing(name)),
            Some(other) => return Err(wrong_type(name, "an array of strings", other)),
        };
        list.iter()
            .map(|e| match e {
                Elem::One(Json::Str(s)) => Ok(&**s),
                _ => Err(Reject::new(
                    RejectClass::NotInEnum,
                    format!("each of {name} must be one of its declared names (a string)"),
                )),
            })
            .collect()
    }

    /// A set of declared values as a bit set by code.
    fn set<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        code: fn(T) -> u8,
        names: fn() -> String,
    ) -> Result<u16, Reject> {
        let mut set = 0u16;
        for s in self.strings(name)? {
            let v = parse(s).ok_or_else(|| {
                Reject::new(
                    RejectClass::NotInEnum,
                    format!("each of {name} must be one of {}", names()),
                )
            })?;
            set |= 1 << code(v);
        }
        Ok(set)
    }

    /// What the outcome says, for the kinds of one or no value.
    fn said_simple(&self, kind: OutcomeKind) -> Result<Said, Reject> {
        let said = match kind {
            OutcomeKind::ContactAttempted => Said::Contact(
                self.choice("channel", Channel::parse, Channel::names)?,
                self.choice("result", ContactResult::parse, ContactResult::names)?,
            ),
            OutcomeKind::Counselled => Said::Counselled,
            OutcomeKind::SupportLinked => Said::SupportLinked(self.services()?),
            OutcomeKind::CaseOpened => {
                Said::CaseOpened(self.choice("track", Track::parse, Track::names)?)
            }
            OutcomeKind::NotApplicable => Said::NotApplicable(self.choice(
                "reason",
                NotApplicableReason::parse,
                NotApplicableReason::names,
            )?),
            OutcomeKind::Declined => Said::Declined,
            OutcomeKind::CaseClosed => {
                Said::CaseClosed(self.choice("reason", CloseReason::parse, CloseReason::names)?)
            }
            OutcomeKind::Withdrawn => {
                Said::Withdrawn(self.id("withdraws", RejectClass::WrongType)?.to_string())
            }
            OutcomeKind::CasePlan | OutcomeKind::CaseReviewed => unreachable!("read by said"),
        };
        Ok(said)
    }
}

/// The visits of a JSON scalar, each wrapped by `$wrap` (a top-level
/// value and an array's item read scalars alike).
macro_rules! scalar_visits {
    ($wrap:path) => {
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok($wrap(Json::Str(Text::Borrowed(v))))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Json::Str(Text::Owned(v.to_owned()))))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(Json::Int(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(
                i64::try_from(v).map_or(Json::Float(v as f64), Json::Int),
            ))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(Json::Float(v)))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(Json::Bool(v)))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($wrap(Json::Null))
        }
    };
}

/// One top-level value of an outcome object.
enum Item<'a> {
    /// A scalar (strings borrowed from the message unless escaped).
    One(Json<'a>),
    /// An array's items.
    List(Vec<Elem<'a>>),
    /// An object.
    Object,
}

impl Item<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Item::One(j) => j.type_name(),
            Item::List(_) => "an array",
            Item::Object => "an object",
        }
    }
}

impl<'de> serde::Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Elem<'de>>()? {
            items.push(item);
        }
        Ok(Item::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Item::Object)
    }
    scalar_visits!(Item::One);
}

/// One item of an array: a scalar, or an object of scalars (a goal);
/// anything deeper is `One(Json::Composite)`.
enum Elem<'a> {
    One(Json<'a>),
    Object(Vec<(Text<'a>, Json<'a>)>),
}

impl<'de> serde::Deserialize<'de> for Elem<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElemVisitor)
    }
}

struct ElemVisitor;

impl<'de> Visitor<'de> for ElemVisitor {
    type Value = Elem<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<Json<'de>>()? {
            let value = map.next_value::<Json<'de>>()?;
            if let Json::Str(name) = key {
                pairs.push((name, value));
            }
        }
        Ok(Elem::Object(pairs))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Elem::One(Json::Composite))
    }
    scalar_visits!(Elem::One);
}

/// The top-level fields of an object, in order, as one pass reads them
/// (an outcome has up to eleven: no allocation for them).
type FieldList<'de> = smallvec::SmallVec<[(Text<'de>, Item<'de>); 12]>;

/// [`FieldList`] as a visitor fills it.
struct ObjectFields<'de>(FieldList<'de>);

impl<'de> Visitor<'de> for &mut ObjectFields<'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Json<'de>>()? {
            let Json::Str(name) = key else { continue };
            let value = map.next_value::<Item<'de>>()?;
            self.0.push((name, value));
        }
        Ok(())
    }
}

/// Reads `text` as one JSON object: its fields, without a map or an
/// allocation per string (outcomes come one per alert).
fn read(text: &str) -> Result<FieldList<'_>, Reject> {
    let mut fields = ObjectFields(FieldList::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let result = de.deserialize_map(&mut fields).and_then(|()| de.end());
    result.map_err(|e| {
        // serde_json's data errors can quote values, which may hold personal
        // data; the reason is built from the error's class and position only
        let why = match e.classify() {
            serde_json::error::Category::Data => {
                return Reject::new(
                    RejectClass::NotJson,
                    "value must be one JSON object (an outcome)",
                )
            }
            serde_json::error::Category::Eof => "it ends early".to_string(),
            _ => format!("line {} column {}", e.line(), e.column()),
        };
        Reject::new(
            RejectClass::NotJson,
            format!("value is not JSON ({why}); an outcome is one JSON object"),
        )
    })?;
    Ok(fields.0)
}

/// The fields of an outcome object, read with the reject each problem gets.
struct Fields<'f, 'a>(&'f [(Text<'a>, Item<'a>)]);

impl<'f, 'a> Fields<'f, 'a> {
    /// The value of `name` (the last one, as a JSON map keeps it).
    fn get(&self, name: &str) -> Option<&'f Item<'a>> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn string(&self, name: &str) -> Result<&'f str, Reject> {
        match self.get(name) {
            Some(Item::One(Json::Str(s))) => Ok(s),
            None | Some(Item::One(Json::Null)) => Err(missing(name)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// A pseudonymous id; `class` when it is not one.
    fn id(&self, name: &str, class: RejectClass) -> Result<&'f str, Reject> {
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
        self.set("services", Service::parse, Service::code, Service::names)
    }
}

/// The value of `name` in an array's object (the last, as a JSON map
/// keeps it).
fn member<'p, 'a>(pairs: &'p [(Text<'a>, Json<'a>)], name: &str) -> Option<&'p Json<'a>> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// One goal of a plan: its text (1 to 200 characters) and target date.
fn goal(e: &Elem<'_>) -> Result<(String, i32), Reject> {
    let Elem::Object(pairs) = e else {
        return Err(Reject::new(
            RejectClass::WrongType,
            "each of goals must be an object of text and target_date",
        ));
    };
    let get = |n: &str| member(pairs, n);
    let text = match get("text") {
        Some(Json::Str(s)) if !s.trim().is_empty() && s.chars().count() <= GOAL_CHARS => {
            s.trim().to_string()
        }
        Some(Json::Str(_)) => {
            return Err(Reject::new(
                RejectClass::OutOfRange,
                format!("a goal's text must be 1 to {GOAL_CHARS} characters"),
            ))
        }
        _ => return Err(missing("goals[].text")),
    };
    let target = match get("target_date") {
        Some(Json::Str(s)) => date_field("goals[].target_date", s)?,
        _ => return Err(missing("goals[].target_date")),
    };
    Ok((text, target))
}

/// One item of `service_fit`: a service and whether it fits.
fn service_fit(e: &Elem<'_>) -> Result<(Service, bool), Reject> {
    let wrong = || {
        Reject::new(
            RejectClass::WrongType,
            format!(
                "each of service_fit must be an object of service (one of {}) and fits (true or false)",
                Service::names()
            ),
        )
    };
    let Elem::Object(pairs) = e else {
        return Err(wrong());
    };
    let get = |n: &str| member(pairs, n);
    let service = match get("service") {
        Some(Json::Str(s)) => Service::parse(s).ok_or_else(wrong)?,
        _ => return Err(wrong()),
    };
    match get("fits") {
        Some(Json::Bool(b)) => Ok((service, *b)),
        _ => Err(wrong()),
    }
}

/// A date of the office's calendar, `YYYY-MM-DD`, as days since 1970-01-01.
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

/// The text of a day [`parse_date`] read.
pub(crate) fn date_text(day: i32) -> String {
    let (y, m, d) = crate::base::civil::civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

fn date_field(name: &str, s: &str) -> Result<i32, Reject> {
    parse_date(s).ok_or_else(|| {
        Reject::new(
            RejectClass::WrongType,
            format!("{name} must be a date, YYYY-MM-DD (e.g. 2027-03-31)"),
        )
    })
}

fn missing(name: &str) -> Reject {
    Reject::new(
        RejectClass::MissingField,
        format!("required field {name} is missing or null"),
    )
}

fn wrong_type(name: &str, expected: &str, got: &Item<'_>) -> Reject {
    Reject::new(
        RejectClass::WrongType,
        format!("{name} must be {expected}, got {}", got.type_name()),
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

//! Why a message was not accepted: the classes written to the dead-letter
//! topic's `sagak.error.class` header and counted per class in the metrics.

use serde::Serialize;

/// Class of a rejected message. Each class is a distinct, stable string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RejectClass {
    /// The value is not valid UTF-8.
    NotUtf8,
    /// The value is not one JSON object.
    NotJson,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type or format.
    WrongType,
    /// A number or text length is outside its allowed range.
    OutOfRange,
    /// A value is not one of the allowed enum values.
    NotInEnum,
    /// `dong_code` is not exactly 10 digits.
    BadDongCode,
    /// An id looks like a resident registration number (13 digits).
    ResidentRegistrationNumber,
    /// `household_id` is not 1-64 characters of `[A-Za-z0-9_-]`.
    BadHouseholdId,
    /// The message key is not the household id.
    KeyMismatch,
    /// The event time is too far ahead of the wall clock.
    FutureEvent,
    /// The event time is older than the watermark minus the window.
    LateEvent,
    /// The message came from a topic no feed reads (configuration error).
    UnknownTopic,
    /// An outcome names an alert not in the household's kept history.
    UnknownAlert,
    /// An outcome comes from an office that does not serve the household.
    WrongOffice,
    /// A `withdrawn` outcome names an outcome not held for the household.
    UnknownOutcome,
    /// A `case_closed` for a household with no open case.
    NoOpenCase,
    /// A `case_opened` for a household whose case is open.
    CaseAlreadyOpen,
    /// A `case_reviewed` for a case with no plan, or with a result for
    /// other than each of its plan's goals.
    NoPlan,
}

impl RejectClass {
    /// Every class, for pre-registering metrics and documenting.
    pub(crate) const ALL: [RejectClass; 19] = [
        RejectClass::NotUtf8,
        RejectClass::NotJson,
        RejectClass::MissingField,
        RejectClass::WrongType,
        RejectClass::OutOfRange,
        RejectClass::NotInEnum,
        RejectClass::BadDongCode,
        RejectClass::ResidentRegistrationNumber,
        RejectClass::BadHouseholdId,
        RejectClass::KeyMismatch,
        RejectClass::FutureEvent,
        RejectClass::LateEvent,
        RejectClass::UnknownTopic,
        RejectClass::UnknownAlert,
        RejectClass::WrongOffice,
        RejectClass::UnknownOutcome,
        RejectClass::NoOpenCase,
        RejectClass::CaseAlreadyOpen,
        RejectClass::NoPlan,
    ];

    /// The stable name used in headers and metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RejectClass::NotUtf8 => "not_utf8",
            RejectClass::NotJson => "not_json",
            RejectClass::MissingField => "missing_field",
            RejectClass::WrongType => "wrong_type",
            RejectClass::OutOfRange => "out_of_range",
            RejectClass::NotInEnum => "not_in_enum",
            RejectClass::BadDongCode => "bad_dong_code",
            RejectClass::ResidentRegistrationNumber => "resident_registration_number",
            RejectClass::BadHouseholdId => "bad_household_id",
            RejectClass::KeyMismatch => "key_mismatch",
            RejectClass::FutureEvent => "future_event",
            RejectClass::LateEvent => "late",
            RejectClass::UnknownTopic => "unknown_topic",
            RejectClass::UnknownAlert => "unknown_alert",
            RejectClass::WrongOffice => "wrong_office",
            RejectClass::UnknownOutcome => "unknown_outcome",
            RejectClass::NoOpenCase => "no_open_case",
            RejectClass::CaseAlreadyOpen => "case_already_open",
            RejectClass::NoPlan => "no_plan",
        }
    }
}

impl RejectClass {
    /// The class in Korean, as the city's page names it.
    pub(crate) fn label_ko(self) -> &'static str {
        match self {
            RejectClass::NotUtf8 => "문자 인코딩 오류 (UTF-8 아님)",
            RejectClass::NotJson => "JSON 형식 아님",
            RejectClass::MissingField => "필수 항목 누락",
            RejectClass::WrongType => "값의 형식 오류",
            RejectClass::OutOfRange => "허용 범위 밖의 값",
            RejectClass::NotInEnum => "허용되지 않는 값",
            RejectClass::BadDongCode => "잘못된 행정동코드",
            RejectClass::ResidentRegistrationNumber => "주민등록번호 포함 (저장하지 않음)",
            RejectClass::BadHouseholdId => "잘못된 가구 ID",
            RejectClass::KeyMismatch => "메시지 키와 가구 ID 불일치",
            RejectClass::FutureEvent => "미래 시각의 신호",
            RejectClass::LateEvent => "너무 늦게 도착한 신호",
            RejectClass::UnknownTopic => "알 수 없는 토픽",
            RejectClass::UnknownAlert => "알 수 없는 알림",
            RejectClass::WrongOffice => "담당이 아닌 동의 기록",
            RejectClass::UnknownOutcome => "철회할 기록 없음",
            RejectClass::NoOpenCase => "열린 사례 없음",
            RejectClass::CaseAlreadyOpen => "이미 사례관리 중",
            RejectClass::NoPlan => "사례 계획 없음",
        }
    }
}

impl std::fmt::Display for RejectClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: its class and a reason a person can act on.
///
/// The reason never quotes an id value, so it cannot leak a resident
/// registration number into logs or the dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The class.
    pub class: RejectClass,
    /// Human-readable reason.
    pub(crate) reason: String,
}

impl Reject {
    /// A rejection of `class` with `reason`.
    pub(crate) fn new(class: RejectClass, reason: impl Into<String>) -> Self {
        Reject {
            class,
            reason: reason.into(),
        }
    }
}

/// The value as text, or the `not_utf8` reject naming where it breaks.
pub(crate) fn utf8(payload: &[u8]) -> Result<&str, Reject> {
    std::str::from_utf8(payload).map_err(|e| {
        Reject::new(
            RejectClass::NotUtf8,
            format!(
                "value is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

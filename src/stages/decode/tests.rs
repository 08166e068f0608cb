use super::*;
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{Date32Type, TimestampMillisecondType};

const NOW: i64 = 1_795_000_000_000; // 2026-11-17

fn spec() -> PipelineSpec {
    PipelineSpec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/default").as_ref()).unwrap()
}

fn feed(spec: &PipelineSpec, name: &str) -> u16 {
    spec.feed_index(name).unwrap() as u16
}

fn utility(extra: &str) -> String {
    format!(
        r#"{{"event_id":"u-1","household_id":"hh-1","dong_code":"4125052000","observed_at":"2026-11-01T09:00:00+09:00","source":"kepco","utility":"electricity","months_overdue":4,"amount_krw":230000,"disconnected":true{extra}}}"#
    )
}

fn decode_one(feed_name: &str, key: &[u8], value: &[u8]) -> Result<RecordBatch, Reject> {
    let spec = spec();
    let mut d = Decoder::new(&spec);
    d.decode(7, feed(&spec, feed_name), Some(key), Some(value), NOW)?;
    Ok(d.finish())
}

fn class_of(feed_name: &str, key: &[u8], value: &str) -> RejectClass {
    decode_one(feed_name, key, value.as_bytes())
        .unwrap_err()
        .class
}

#[test]
fn valid_utility_signal_fills_every_column() {
    let batch = decode_one(
        "utility-arrears",
        b"hh-1",
        utility(r#","unknown_future_field":{"a":[1,2]}"#).as_bytes(),
    )
    .expect("valid");
    assert_eq!(batch.num_rows(), 1);
    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    assert_eq!(
        col("msg_index")
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .value(0),
        7
    );
    assert_eq!(col("household_id").as_string::<i32>().value(0), "hh-1");
    assert_eq!(col("subject").as_string::<i32>().value(0), "electricity");
    assert_eq!(
        col("months_overdue")
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        4
    );
    assert!(col("disconnected").as_boolean().value(0));
    // 2026-11-01T09:00+09:00 is 2026-11-01T00:00Z
    assert_eq!(
        col("observed_at")
            .as_primitive::<TimestampMillisecondType>()
            .value(0),
        1_793_491_200_000
    );
}

#[test]
fn job_loss_uses_person_as_subject_and_keeps_the_date() {
    let v = r#"{"event_id":"j-1","household_id":"hh-1","dong_code":"4125052000","observed_at":"2026-11-01T09:00:00+09:00","source":"moel","person_id":"p-77","kind":"business_closure","occurred_on":"2026-10-30"}"#;
    let batch = decode_one("job-loss", b"hh-1", v.as_bytes()).unwrap();
    assert_eq!(
        batch
            .column_by_name("subject")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "p-77"
    );
    assert_eq!(
        batch
            .column_by_name("kind")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "business_closure"
    );
    let d = batch
        .column_by_name("occurred_on")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    assert_eq!(d, 20_756); // days from 1970-01-01 to 2026-10-30
}

#[test]
fn escaped_strings_are_accepted() {
    let v = utility("").replace(r#""source":"kepco""#, r#""source":"ke\u0070co""#);
    assert!(decode_one("utility-arrears", b"hh-1", v.as_bytes()).is_ok());
}

#[test]
fn each_bad_input_gets_its_own_class() {
    let u = "utility-arrears";
    assert_eq!(
        decode_one(u, b"hh-1", &[0xff, 0xfe, b'{'])
            .unwrap_err()
            .class,
        RejectClass::NotUtf8
    );
    assert_eq!(class_of(u, b"hh-1", "hello"), RejectClass::NotJson);
    assert_eq!(class_of(u, b"hh-1", "[1,2]"), RejectClass::NotJson);
    assert_eq!(class_of(u, b"hh-1", ""), RejectClass::NotJson);
    assert_eq!(
        class_of(u, b"hh-1", &(utility("") + "x")),
        RejectClass::NotJson
    );
    assert_eq!(
        class_of(u, b"hh-1", &utility("").replace(r#""source":"kepco","#, "")),
        RejectClass::MissingField
    );
    assert_eq!(
        class_of(
            u,
            b"hh-1",
            &utility("").replace(r#""amount_krw":230000"#, r#""amount_krw":null"#)
        ),
        RejectClass::MissingField
    );
    assert_eq!(
        class_of(
            u,
            b"hh-1",
            &utility("").replace(r#""months_overdue":4"#, r#""months_overdue":"4""#)
        ),
        RejectClass::WrongType
    );
    assert_eq!(
        class_of(u, b"hh-1", &utility("").replace("true", "\"yes\"")),
        RejectClass::WrongType
    );
    assert_eq!(
        class_of(
            u,
            b"hh-1",
            &utility("").replace("2026-11-01T09:00:00+09:00", "2026-11-01 09:00")
        ),
        RejectClass::WrongType
    );
    assert_eq!(
        class_of(
            u,
            b"hh-1",
            &utility("").replace(r#""months_overdue":4"#, r#""months_overdue":-1"#)
        ),
        RejectClass::OutOfRange
    );
    assert_eq!(
        class_of(
            u,
            b"hh-1",
            &utility("").replace("electricity", "heating_oil")
        ),
        RejectClass::NotInEnum
    );
    assert_eq!(
        class_of(u, b"hh-1", &utility("").replace("4125052000", "41250520")),
        RejectClass::BadDongCode
    );
    assert_eq!(
        class_of(u, b"hh-1", &utility("").replace("\"hh-1\"", "\"hh 1\"")),
        RejectClass::BadHouseholdId
    );
    assert_eq!(class_of(u, b"hh-2", &utility("")), RejectClass::KeyMismatch);
    assert_eq!(
        class_of(u, b"hh-1", &utility("").replace("2026-11-01", "2026-11-20")),
        RejectClass::FutureEvent
    );
}

#[test]
fn resident_registration_numbers_are_rejected_without_echoing_them() {
    for rrn in ["900101-1234567", "9001011234567"] {
        let v = utility("").replace("\"hh-1\"", &format!("\"{rrn}\""));
        let err = decode_one("utility-arrears", rrn.as_bytes(), v.as_bytes()).unwrap_err();
        assert_eq!(err.class, RejectClass::ResidentRegistrationNumber);
        assert!(
            !err.reason.contains(rrn),
            "reason leaks the number: {}",
            err.reason
        );
    }
    let v = r#"{"event_id":"j-1","household_id":"hh-1","dong_code":"4125052000","observed_at":"2026-11-01T09:00:00+09:00","source":"moel","person_id":"850202-1234567","kind":"job_loss","occurred_on":"2026-10-30"}"#;
    assert_eq!(
        class_of("job-loss", b"hh-1", v),
        RejectClass::ResidentRegistrationNumber
    );
}

#[test]
fn a_batch_keeps_only_valid_rows_in_order() {
    let spec = spec();
    let mut d = Decoder::new(&spec);
    let u = feed(&spec, "utility-arrears");
    assert!(d
        .decode(0, u, Some(b"hh-1"), Some(utility("").as_bytes()), NOW)
        .is_ok());
    assert!(d.decode(1, u, Some(b"hh-1"), Some(b"{"), NOW).is_err());
    let second = utility("").replace("u-1", "u-2");
    assert!(d
        .decode(2, u, Some(b"hh-1"), Some(second.as_bytes()), NOW)
        .is_ok());
    assert_eq!(d.pending(), 2);
    let batch = d.finish();
    let idx = batch
        .column(0)
        .as_primitive::<arrow::datatypes::UInt32Type>();
    assert_eq!(idx.values().to_vec(), vec![0, 2]);
    assert_eq!(d.pending(), 0);
}

/// A small deterministic fuzzer: random bytes and byte-level mutations of
/// valid messages never panic the decoder, and each gets an answer.
#[test]
fn mutated_and_random_input_never_panics() {
    let spec = spec();
    let mut d = Decoder::new(&spec);
    let seeds = [
        utility(""),
        r#"{"event_id":"j-1","household_id":"hh-1","dong_code":"4125052000","observed_at":"2026-11-01T09:00:00+09:00","source":"moel","person_id":"p-77","kind":"job_loss","occurred_on":"2026-10-30"}"#.to_string(),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ok, mut rejected) = (0, 0);
    for i in 0..50_000 {
        let mut bytes = seeds[i % 2].clone().into_bytes();
        match next() % 4 {
            0 => bytes = (0..next() % 256).map(|_| next() as u8).collect(),
            1 => {
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            2 => bytes.truncate(next() as usize % bytes.len()),
            _ => {
                let at = next() as usize % bytes.len();
                let b =
                    [b'"', b'{', b'}', b'[', b',', b':', b'\\', b'0', b'-'][next() as usize % 9];
                bytes.insert(at, b);
            }
        }
        let feed = (next() % 3) as u16;
        match d.decode(i as u32, feed, Some(b"hh-1"), Some(&bytes), NOW) {
            Ok(()) => ok += 1,
            Err(r) => {
                assert!(!r.reason.is_empty());
                rejected += 1;
            }
        }
    }
    assert_eq!(ok + rejected, 50_000);
    assert_eq!(
        d.finish().num_rows(),
        ok,
        "every accepted message is one row"
    );
}

#[test]
fn text_limits_count_characters_not_bytes() {
    let u = "utility-arrears";
    let with_event_id =
        |id: &str| utility("").replace(r#""event_id":"u-1""#, &format!(r#""event_id":"{id}""#));
    // 128 Hangul syllables are 384 bytes and within the 128-character limit
    assert!(decode_one(u, b"hh-1", with_event_id(&"가".repeat(128)).as_bytes()).is_ok());
    assert!(decode_one(u, b"hh-1", with_event_id(&"e".repeat(128)).as_bytes()).is_ok());
    for too_long in ["가".repeat(129), "e".repeat(129), String::new()] {
        let reject = decode_one(u, b"hh-1", with_event_id(&too_long).as_bytes())
            .expect_err("outside 1-128 characters");
        assert_eq!(reject.class, RejectClass::OutOfRange);
        let n = too_long.chars().count();
        assert!(
            reject
                .reason
                .contains(&format!("must be 1-128 characters, got {n}")),
            "{}",
            reject.reason
        );
    }
}

/// Property tests: hostile values in every field of a signal.
mod properties {
    use super::*;
    use crate::base::ids::contains_rrn;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const FIELDS: [&str; 9] = [
        "event_id",
        "household_id",
        "dong_code",
        "observed_at",
        "source",
        "utility",
        "months_overdue",
        "amount_krw",
        "disconnected",
    ];
    const TEXT_FIELDS: [&str; 4] = ["event_id", "household_id", "source", "utility"];

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,24}".prop_map(Value::from),
            "[0-9-]{0,16}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,8}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn base() -> Map<String, Value> {
        serde_json::from_str(&utility("")).expect("valid base signal")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Any value in any field, or the field missing: the signal is
        /// decoded into a well-formed row or rejected with a reason that
        /// never repeats a resident registration number. Never a panic.
        #[test]
        fn any_value_in_any_field_is_decoded_or_explained(
            field in 0..FIELDS.len(),
            value in any_json(),
            remove in any::<bool>(),
        ) {
            let mut signal = base();
            if remove {
                signal.remove(FIELDS[field]);
            } else {
                signal.insert(FIELDS[field].into(), value);
            }
            let bytes = serde_json::to_vec(&signal).expect("serializable");
            match decode_one("utility-arrears", b"hh-1", &bytes) {
                Ok(batch) => {
                    prop_assert_eq!(batch.num_rows(), 1);
                    prop_assert_eq!(batch.column(2).as_string::<i32>().value(0), "hh-1");
                    let dong = batch.column(3).as_string::<i32>().value(0);
                    prop_assert!(dong.len() == 10 && dong.bytes().all(|b| b.is_ascii_digit()));
                    for col in [4, 5, 7] {
                        let text = batch.column(col).as_string::<i32>().value(0);
                        prop_assert!(!contains_rrn(text.as_bytes()), "stored an RRN: {text}");
                    }
                }
                Err(r) => {
                    prop_assert!(!r.reason.is_empty());
                    prop_assert!(!contains_rrn(r.reason.as_bytes()), "echoed: {}", r.reason);
                }
            }
        }

        /// A resident registration number inside any text field, with or
        /// without its dash, is rejected as one.
        #[test]
        fn a_resident_registration_number_in_any_text_field_is_rejected(
            field in 0..TEXT_FIELDS.len(),
            front in "[0-9]{6}",
            back in "[1-4][0-9]{6}",
            dash in any::<bool>(),
            prefix in "[a-z_]{0,6}",
        ) {
            let rrn = if dash { format!("{front}-{back}") } else { format!("{front}{back}") };
            let mut signal = base();
            let value = format!("{prefix}{rrn}");
            signal.insert(TEXT_FIELDS[field].into(), Value::from(value.clone()));
            let key = if TEXT_FIELDS[field] == "household_id" { value } else { "hh-1".into() };
            let bytes = serde_json::to_vec(&signal).expect("serializable");
            let reject = decode_one("utility-arrears", key.as_bytes(), &bytes)
                .expect_err("an RRN is bad input");
            prop_assert_eq!(reject.class, RejectClass::ResidentRegistrationNumber);
            prop_assert!(!reject.reason.contains(&rrn));
        }
    }
}

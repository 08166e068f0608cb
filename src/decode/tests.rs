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

//! Checks on identifiers: pseudonymous ids, dong codes and resident
//! registration numbers (주민등록번호), which must never enter the pipeline.

/// True when `s` is 1-64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn is_pseudonymous_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True when `s` is exactly 10 ASCII digits (an administrative dong code).
pub(crate) fn is_dong_code(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Finds the first resident-registration-number-shaped run in `bytes`:
/// 6 digits, an optional dash, 7 digits, not inside a longer digit run.
/// Returns its byte range.
pub(crate) fn find_rrn(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let run = digits_from(bytes, i);
        if run == 13 {
            return Some(i..i + 13);
        }
        if run == 6 && bytes.get(i + 6) == Some(&b'-') && digits_from(bytes, i + 7) == 7 {
            return Some(i..i + 14);
        }
        i += run.max(1);
    }
    None
}

fn digits_from(bytes: &[u8], start: usize) -> usize {
    bytes[start.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// True when `s` holds something shaped like a resident registration number.
pub(crate) fn contains_rrn(s: &[u8]) -> bool {
    find_rrn(s).is_some()
}

/// Returns `bytes` with the digits of every RRN-shaped run replaced by `*`,
/// or `None` when there is none. Used before bad input goes to the
/// dead-letter topic, so no resident registration number is ever stored.
pub(crate) fn redact_rrn(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut first = find_rrn(bytes)?;
    let mut out = bytes.to_vec();
    loop {
        for b in &mut out[first.clone()] {
            if b.is_ascii_digit() {
                *b = b'*';
            }
        }
        match find_rrn(&out[first.end..]) {
            Some(r) => first = first.end + r.start..first.end + r.end,
            None => return Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrn_with_and_without_dash_is_found() {
        assert!(contains_rrn(b"900101-1234567"));
        assert!(contains_rrn(b"9001011234567"));
        assert!(contains_rrn(b"hh_9001011234567"));
        assert!(contains_rrn(b"{\"household_id\":\"900101-2234567\"}"));
    }

    #[test]
    fn other_digit_runs_are_not_rrn() {
        assert!(!contains_rrn(b"4125051000"));
        assert!(!contains_rrn(b"12345678901234"));
        assert!(!contains_rrn(b"123456-12345678"));
        assert!(!contains_rrn(b"hh-000123"));
        assert!(!contains_rrn(b"2026-11-22T06:00:00+09:00"));
    }

    #[test]
    fn redaction_masks_every_rrn_and_keeps_the_rest() {
        let out = redact_rrn(b"a 900101-1234567 b 8001012345678 c").unwrap();
        assert_eq!(out, b"a ******-******* b ************* c".to_vec());
        assert_eq!(redact_rrn(b"nothing here 4125051000"), None);
    }

    #[test]
    fn pseudonymous_ids_and_dong_codes() {
        assert!(is_pseudonymous_id("hh_00012-a"));
        assert!(!is_pseudonymous_id(""));
        assert!(!is_pseudonymous_id("hh 1"));
        assert!(!is_pseudonymous_id(&"a".repeat(65)));
        assert!(is_dong_code("4125051000"));
        assert!(!is_dong_code("412505100"));
        assert!(!is_dong_code("41250510OO"));
    }
}

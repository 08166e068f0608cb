//! Calendar dates from days since the Unix epoch, written without chrono
//! and without an allocation: alerts and reasons write several dates per
//! household, on the hot path.

/// Year, month (1-12) and day (1-31) of `days` since 1970-01-01, proleptic
/// Gregorian (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `days` since the epoch as `YYYY-MM-DD` on the stack; `None` for a year
/// outside 0000-9999.
pub fn date_bytes(days: i64) -> Option<[u8; 10]> {
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = *b"0000-00-00";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], month);
    put_digits(&mut out[8..10], day);
    Some(out)
}

/// Writes `v` into `out` as decimal digits, zero-padded to its width.
pub fn put_digits(out: &mut [u8], mut v: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_chrono_across_four_centuries() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        for days in (-700_000..2_900_000)
            .step_by(997)
            .chain([-1, 0, 59, 60, 11_016])
        {
            let expected = (epoch + chrono::Duration::days(days)).to_string();
            let got = date_bytes(days).map(|b| String::from_utf8_lossy(&b).into_owned());
            assert_eq!(got.as_deref(), Some(expected.as_str()), "day {days}");
        }
        assert_eq!(date_bytes(-800_000), None, "year before 0000");
    }
}

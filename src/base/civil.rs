//! Calendar dates from days since the Unix epoch, written without chrono
//! and without an allocation: alerts and reasons write several dates per
//! household, on the hot path.

const DAY_MS: i64 = 86_400_000;

/// The offices' clock: the pipeline's `lists.utc_offset_hours`. The one
/// place an instant becomes a local day or a local time; nothing else adds
/// hours to a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClock {
    offset_ms: i64,
}

impl LocalClock {
    /// The clock `hours` east of UTC (`9`: Korea).
    pub fn from_hours(hours: i32) -> LocalClock {
        LocalClock {
            offset_ms: i64::from(hours) * 3_600_000,
        }
    }

    /// The offset for chrono.
    pub(crate) fn fixed_offset(self) -> chrono::FixedOffset {
        // within -14..14 h (checked by the pipeline loader): always valid
        chrono::FixedOffset::east_opt((self.offset_ms / 1000) as i32)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("UTC"))
    }

    /// The local day of an instant, as days since 1970-01-01.
    pub(crate) fn day(self, at_ms: i64) -> i64 {
        (at_ms + self.offset_ms).div_euclid(DAY_MS)
    }

    /// The local date of an instant.
    pub(crate) fn date(self, at_ms: i64) -> chrono::NaiveDate {
        let (y, m, d) = civil_from_days(self.day(at_ms));
        chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32).unwrap_or_default()
    }

    /// The local date as `YYYY-MM-DD`.
    pub(crate) fn day_text(self, at_ms: i64) -> String {
        self.date(at_ms).to_string()
    }

    /// The local time to the minute: `2026-10-27 23:22`.
    pub(crate) fn minute_text(self, at_ms: i64) -> String {
        let minutes = (at_ms + self.offset_ms).div_euclid(60_000);
        let (h, m) = (minutes.rem_euclid(1440) / 60, minutes.rem_euclid(60));
        format!("{} {h:02}:{m:02}", self.day_text(at_ms))
    }

    /// Today's local date by the wall clock.
    pub(crate) fn today(self) -> chrono::NaiveDate {
        self.date(chrono::Utc::now().timestamp_millis())
    }
}

/// Year, month (1-12) and day (1-31) of `days` since 1970-01-01, proleptic
/// Gregorian (H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch of an RFC 3339 timestamp in its common
/// forms, `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1-9 digits (cut
/// to the millisecond, as chrono's `timestamp_millis` cuts it; what a
/// browser's `toISOString` writes), then `Z` or `+HH:MM`/`-HH:MM`; `None`
/// for any other form (leap seconds, other separators) or an impossible
/// date, which the caller then hands to chrono. Every message carries one,
/// and chrono's general parser is most of the time its validation takes.
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0_i64, |v, &d| {
            d.is_ascii_digit().then(|| v * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // the fraction's digits, of which the first three count
    let digits = b
        .get(19..)?
        .strip_prefix(b".")
        .map_or(0, |f| f.iter().take_while(|d| d.is_ascii_digit()).count());
    if digits > 9 || (digits == 0 && at(19, b'.')) {
        return None;
    }
    let fraction_ms = (0..3).fold(0, |v, k| {
        let d = if k < digits { b[20 + k] - b'0' } else { 0 };
        v * 10 + i64::from(d)
    });
    let zone = 19 + if digits > 0 { digits + 1 } else { 0 };
    let offset_s = match b.get(zone..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(zone + 1..zone + 3)?, num(zone + 4..zone + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let east = h * 3600 + m * 60;
            if *sign == b'-' {
                -east
            } else {
                east
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let local_s = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((local_s - offset_s) * 1000 + fraction_ms)
}

/// `days` since the epoch as `YYYY-MM-DD` on the stack; `None` for a year
/// outside 0000-9999.
pub(crate) fn date_bytes(days: i64) -> Option<[u8; 10]> {
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
pub(crate) fn put_digits(out: &mut [u8], mut v: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_local_clock_cuts_days_at_local_midnight() {
        let kst = LocalClock::from_hours(9);
        // 2026-10-27T14:22:03Z is 23:22 in Seoul and 09:22 five hours west
        let at = rfc3339_ms("2026-10-27T14:22:03.000Z").unwrap();
        assert_eq!(kst.minute_text(at), "2026-10-27 23:22");
        assert_eq!(kst.minute_text(at + 3_600_000), "2026-10-28 00:22");
        assert_eq!(
            LocalClock::from_hours(-5).minute_text(at),
            "2026-10-27 09:22"
        );
        assert_eq!(kst.day_text(at + 3_600_000), "2026-10-28");
        assert_eq!(kst.day(at) + 1, kst.day(at + 3_600_000));
        assert_eq!(kst.fixed_offset().local_minus_utc(), 9 * 3600);
    }

    use super::*;
    use proptest::prelude::*;

    /// chrono's reading of an RFC 3339 timestamp, in ms.
    fn chrono_ms(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Whatever the fast reader takes, chrono reads the same instant.
        #[test]
        fn rfc3339_agrees_with_chrono(
            year in 0_u32..10_000,
            month in 0_u32..14,
            day in 0_u32..33,
            hour in 0_u32..26,
            minute in 0_u32..62,
            second in 0_u32..62,
            offset in prop::sample::select(vec!["Z", "z", "+09:00", "-05:30", "+00:00", "-00:00", "+23:59", "+24:00", "+09:60", "+0900", "+09", ".5Z", ".123+09:00", ".987654321-05:30", ".1234567890Z", ".Z", "."]),
            sep in prop::sample::select(vec!["T", "t", " "]),
            damage in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(vec!['0', '9', '-', ':', 'T', ' ', '+']))),
        ) {
            let mut s = format!("{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{offset}");
            if let Some((at, c)) = damage {
                let i = at.index(s.len());
                s.replace_range(i..=i, &c.to_string());
            }
            if let Some(ms) = rfc3339_ms(&s) {
                prop_assert_eq!(Some(ms), chrono_ms(&s), "{}", s);
            }
        }
    }

    #[test]
    fn rfc3339_reads_the_wire_form_and_leaves_the_rest() {
        for s in [
            "2026-11-01T09:00:00+09:00",
            "2024-02-29T23:59:59Z",
            "1970-01-01T00:00:00-00:30",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+23:59",
            "2026-11-01T09:00:00.250+09:00",
            "2026-11-22T05:00:00.000Z",
            "1969-12-31T23:59:59.999999999Z",
            "1960-06-01T00:00:00.5-05:30",
        ] {
            assert_eq!(rfc3339_ms(s), chrono_ms(s), "{s}");
            assert!(rfc3339_ms(s).is_some(), "{s}");
        }
        for s in [
            "2026-11-01T09:00:00.+09:00",
            "2026-11-01T09:00:00.1234567890Z",
            "2026-11-01T09:00:00.25",
            "2026-11-01 09:00:00+09:00",
            "2025-02-29T00:00:00Z",
            "2026-11-01T09:00:60Z",
            "2026-11-01T09:00:00+0900",
            "2026-11-01T09:00:00",
        ] {
            assert_eq!(rfc3339_ms(s), None, "{s}");
        }
    }

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

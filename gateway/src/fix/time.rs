//! UTC time in FIX form: `YYYYMMDD-HH:MM:SS.sss` (UTCTimestamp with milliseconds, as
//! we send it), and parsing of what counterparties send (0, 3, 6 or 9 decimals). Times
//! are milliseconds since the Unix epoch; the calendar arithmetic is the proleptic
//! Gregorian one (days from civil date and back).

use std::time::{SystemTime, UNIX_EPOCH};

/// The length of a UTCTimestamp with milliseconds.
pub const TIMESTAMP_MS_LEN: usize = 21;

/// Milliseconds since the Unix epoch, now (wall clock).
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a day count since 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Formats `epoch_ms` as `YYYYMMDD-HH:MM:SS.sss`. Years outside 0..=9999 are clamped
/// (they never occur with a working clock).
pub fn format_timestamp_ms(epoch_ms: i64, out: &mut [u8; TIMESTAMP_MS_LEN]) {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000) as u64;
    let (year, month, day) = civil_from_days(days);
    let year = year.clamp(0, 9999) as u64;
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[4..6], u64::from(month));
    put_digits(&mut out[6..8], u64::from(day));
    out[8] = b'-';
    put_digits(&mut out[9..11], ms_of_day / 3_600_000);
    out[11] = b':';
    put_digits(&mut out[12..14], ms_of_day / 60_000 % 60);
    out[14] = b':';
    put_digits(&mut out[15..17], ms_of_day / 1000 % 60);
    out[17] = b'.';
    put_digits(&mut out[18..21], ms_of_day % 1000);
}

/// `epoch_ms` formatted, as an owned array.
pub fn timestamp_ms(epoch_ms: i64) -> [u8; TIMESTAMP_MS_LEN] {
    let mut out = [0; TIMESTAMP_MS_LEN];
    format_timestamp_ms(epoch_ms, &mut out);
    out
}

fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, digit| acc * 10 + u32::from(digit - b'0')))
}

/// Parses `YYYYMMDD`: (year, month, day), checking the calendar.
fn parse_date(bytes: &[u8]) -> Option<(i64, u32, u32)> {
    if bytes.len() != 8 {
        return None;
    }
    let year = i64::from(digits(&bytes[0..4])?);
    let month = digits(&bytes[4..6])?;
    let day = digits(&bytes[6..8])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

/// Parses `HH:MM:SS[.f]` with 0, 3, 6 or 9 decimals: milliseconds of the day
/// (a leap second 60 is accepted and counted as 59.999).
fn parse_time_of_day(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < 8 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    let hours = digits(&bytes[0..2])?;
    let minutes = digits(&bytes[3..5])?;
    let seconds = digits(&bytes[6..8])?;
    if hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    let millis = match &bytes[8..] {
        [] => 0,
        [b'.', fraction @ ..] if matches!(fraction.len(), 3 | 6 | 9) => digits(&fraction[..3])?,
        _ => return None,
    };
    if !bytes[8..].iter().skip(1).all(u8::is_ascii_digit) {
        return None;
    }
    let millis = if seconds == 60 { 999 } else { millis };
    let seconds = seconds.min(59);
    Some(i64::from(hours) * 3_600_000 + i64::from(minutes) * 60_000 + i64::from(seconds) * 1000 + i64::from(millis))
}

/// Parses a UTCTimestamp (`YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]`) into
/// milliseconds since the epoch (sub-millisecond digits are dropped).
pub fn parse_timestamp(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < 17 || bytes[8] != b'-' {
        return None;
    }
    let (year, month, day) = parse_date(&bytes[..8])?;
    let ms_of_day = parse_time_of_day(&bytes[9..])?;
    Some(days_from_civil(year, month, day) * 86_400_000 + ms_of_day)
}

/// Whether `bytes` is a UTCTimeOnly (`HH:MM:SS[.sss]`).
pub fn is_time_only(bytes: &[u8]) -> bool {
    parse_time_of_day(bytes).is_some()
}

/// Whether `bytes` is a UTCDateOnly (`YYYYMMDD`).
pub fn is_date_only(bytes: &[u8]) -> bool {
    parse_date(bytes).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        for ms in [0, 1_700_000_000_123, 951_782_400_000 /* 2000-02-29 */, 4_102_444_799_999] {
            let text = timestamp_ms(ms);
            assert_eq!(parse_timestamp(&text), Some(ms), "{}", String::from_utf8_lossy(&text));
        }
        assert_eq!(&timestamp_ms(951_782_400_000), b"20000229-00:00:00.000");
        assert_eq!(&timestamp_ms(1_700_000_000_123), b"20231114-22:13:20.123");
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            &b"20040415"[..],
            b"20230230-00:00:00",
            b"20231301-00:00:00",
            b"20230101-24:00:00",
            b"20230101-00:60:00",
            b"20230101-00:00:00.1",
            b"20230101-00:00:00.12a",
            b"20230101 00:00:00",
            b"2023010a-00:00:00",
            b"",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_timestamp(b"20230101-00:00:00.123456").is_some());
        assert!(is_time_only(b"12:30:00") && !is_time_only(b"12:30"));
        assert!(is_date_only(b"20240229") && !is_date_only(b"20230229"));
    }
}

//! Timestamps as the API writes them (RFC 3339, UTC, seconds) and ages as kubectl prints them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn format_rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (year, month, day) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn now_rfc3339() -> String {
    format_rfc3339(SystemTime::now())
}

/// Parses what `format_rfc3339` writes.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let days = days_from_civil(i64::from(n(0..4)?), n(5..7)?, n(8..10)?);
    let secs = days * 86_400 + i64::from(n(11..13)?) * 3600 + i64::from(n(14..16)?) * 60 + i64::from(n(17..19)?);
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// kubectl's short human duration: `45s`, `3m12s`, `12m`, `5h`, `3d`.
pub fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The age of an object whose `creationTimestamp` is `stamp`.
pub fn age_of(stamp: Option<&str>) -> String {
    stamp.and_then(parse_rfc3339).and_then(|t| SystemTime::now().duration_since(t).ok()).map_or_else(|| "<unknown>".to_string(), human_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let text = format_rfc3339(t);
        assert_eq!(text, "2026-11-18T11:06:40Z");
        assert_eq!(parse_rfc3339(&text), Some(t));
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z").map(format_rfc3339).as_deref(), Some("2024-02-29T23:59:59Z"));
    }

    #[test]
    fn ages() {
        assert_eq!(human_age(Duration::from_secs(5)), "5s");
        assert_eq!(human_age(Duration::from_secs(192)), "3m12s");
        assert_eq!(human_age(Duration::from_secs(720)), "12m");
        assert_eq!(human_age(Duration::from_secs(5 * 3600)), "5h");
        assert_eq!(human_age(Duration::from_secs(3 * 86_400)), "3d");
    }
}

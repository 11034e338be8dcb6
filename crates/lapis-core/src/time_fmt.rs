//! Conversions between clock milliseconds and the textual times Azure uses: RFC 1123
//! in headers and message XML, ISO 8601 in SAS tokens and access policies.

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::clock::Millis;

/// The latest instant Azure represents: `9999-12-31T23:59:59Z`, used for messages
/// that never expire.
pub const MAX_MS: Millis = 253_402_300_799_000;

fn to_datetime(ms: Millis) -> OffsetDateTime {
    let ms = ms.clamp(0, MAX_MS);
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `Mon, 01 Jan 2024 00:00:00 GMT`.
pub fn rfc1123(ms: Millis) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    to_datetime(ms).format(&fmt).unwrap_or_default()
}

/// `2024-01-01T00:00:00.0000000Z`, the seven-digit form Azure writes in error bodies.
pub fn iso8601_7(ms: Millis) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    to_datetime(ms).format(&fmt).unwrap_or_default()
}

/// Parses the ISO 8601 forms SAS tokens and access policies use: full RFC 3339, or
/// `YYYY-MM-DD`, `YYYY-MM-DDThh:mmZ`, `YYYY-MM-DDThh:mm:ssZ` and fractional seconds
/// with any number of digits.
pub fn parse_iso8601(text: &str) -> Option<Millis> {
    let text = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some((dt.unix_timestamp_nanos() / 1_000_000) as Millis);
    }
    if let Ok(d) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let no_zone = text.strip_suffix('Z')?;
    let formats = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ];
    for fmt in formats {
        if let Ok(dt) = PrimitiveDateTime::parse(no_zone, &fmt) {
            return Some(dt.assume_offset(UtcOffset::UTC).unix_timestamp() * 1000);
        }
    }
    None
}

/// Parses an RFC 1123 date as sent in `Date` / `x-ms-date` headers.
pub fn parse_rfc1123(text: &str) -> Option<Millis> {
    OffsetDateTime::parse(text.trim(), &Rfc2822).ok().map(|dt| dt.unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc1123(1_704_067_200_000), "Mon, 01 Jan 2024 00:00:00 GMT");
        assert_eq!(rfc1123(MAX_MS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(iso8601_7(1_704_067_200_123), "2024-01-01T00:00:00.1230000Z");
        for t in ["2024-01-01T00:00:00Z", "2024-01-01", "2024-01-01T00:00Z", "2024-01-01T00:00:00.0000000Z"] {
            assert_eq!(parse_iso8601(t), Some(1_704_067_200_000), "{t}");
        }
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_rfc1123("Mon, 01 Jan 2024 00:00:00 GMT"), Some(1_704_067_200_000));
    }
}

/// Parses an ISO 8601 duration as Service Bus configuration writes them (`PT1M`,
/// `P1DT2H`, `PT0.5S`, `P14D`), to milliseconds. Years and months are not accepted:
/// they have no fixed length.
pub fn parse_duration(text: &str) -> Option<Millis> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
            } else {
                let (_, scale) = units.iter().find(|(u, _)| *u == c)?;
                total += number.parse::<f64>().ok()? * scale;
                number.clear();
                any = true;
            }
        }
        number.is_empty().then_some(())
    };
    take(date, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    (any && total.is_finite() && total <= i64::MAX as f64).then_some(total.round() as Millis)
}

/// Formats milliseconds as an ISO 8601 duration (`PT1M`, `P1DT2H`, `PT0.5S`).
pub fn format_duration(ms: Millis) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (h, m, s_ms) = (rest / 3_600_000, rest % 3_600_000 / 60_000, rest % 60_000);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s_ms > 0 || (h == 0 && m == 0) {
            if s_ms % 1000 == 0 {
                out.push_str(&format!("{}S", s_ms / 1000));
            } else {
                out.push_str(&format!("{}S", s_ms as f64 / 1000.0));
            }
        }
    }
    out
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, ms) in [("PT1M", 60_000), ("PT20S", 20_000), ("P1DT2H", 93_600_000), ("PT0.5S", 500), ("P14D", 1_209_600_000), ("P1W", 604_800_000)] {
            assert_eq!(parse_duration(text), Some(ms), "{text}");
        }
        for ms in [60_000, 20_000, 93_600_000, 500, 1_209_600_000, 0, 3_723_000] {
            assert_eq!(parse_duration(&format_duration(ms)), Some(ms), "{ms}");
        }
        for bad in ["", "P", "PT", "1M", "P1M", "PT1X", "PT1", "P1Y"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

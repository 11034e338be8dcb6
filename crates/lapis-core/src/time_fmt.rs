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

//! Event Grid publish credentials: the topic's key sent as it is (`aeg-sas-key`), or a
//! token (`aeg-sas-token`) `r=<url-encoded resource>&e=<url-encoded expiry>&s=<url-encoded
//! signature>`, the signature being base64 HMAC-SHA256, under the base64-decoded key,
//! of the token's own text before `&s=`. The SDKs write the expiry differently (Python
//! `2030-01-01 00:00:00[.ffffff][+00:00]`, JavaScript `1/1/2030 12:00:00 AM`, .NET
//! `1/1/2030 12:00:00 AM +00:00` (its offset may be a local one), Java
//! `1/1/2030 12:0:0 AM`), and .NET and Java form-encode (`+` for a space, lowercase or
//! uppercase hex), so the signed text is taken as sent, never rebuilt.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use percent_encoding::percent_decode_str;
use time::{Date, Month, PrimitiveDateTime, Time};

use super::verify_any;
use crate::clock::Millis;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishAuthError {
    #[error("The request authorization key is not authorized for this topic.")]
    WrongKey,
    #[error("The SAS token is malformed: {0}.")]
    MalformedToken(&'static str),
    #[error("The SAS token's signature does not match any of the topic's keys.")]
    BadSignature,
    #[error("The SAS token expired at {0}.")]
    Expired(String),
}

/// Whether `provided` (an `aeg-sas-key` header) is one of the topic's keys, compared
/// in constant time.
pub fn check_key(keys: &[String], provided: &str) -> Result<(), PublishAuthError> {
    let provided = provided.trim().as_bytes();
    let matches = |k: &String| {
        let k = k.as_bytes();
        k.len() == provided.len() && k.iter().zip(provided).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    };
    if keys.iter().any(matches) {
        Ok(())
    } else {
        Err(PublishAuthError::WrongKey)
    }
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishToken {
    /// The decoded resource: the endpoint and `?apiVersion=…`.
    pub resource: String,
    pub expires_at: Millis,
}

/// Checks an `aeg-sas-token` against the topic's keys at `now`.
pub fn check_token(keys: &[String], token: &str, now: Millis) -> Result<PublishToken, PublishAuthError> {
    let token = token.trim();
    let (signed, signature) = token.rsplit_once("&s=").ok_or(PublishAuthError::MalformedToken("no signature ('&s=')"))?;
    let mut resource = None;
    let mut expiry = None;
    for part in signed.split('&') {
        match part.split_once('=') {
            Some(("r", v)) => resource = Some(decode(v)?),
            Some(("e", v)) => expiry = Some(decode(v)?),
            _ => return Err(PublishAuthError::MalformedToken("a part other than r, e and s")),
        }
    }
    let resource = resource.ok_or(PublishAuthError::MalformedToken("no resource ('r=')"))?;
    let expiry = expiry.ok_or(PublishAuthError::MalformedToken("no expiry ('e=')"))?;
    let expires_at = parse_expiry(&expiry).ok_or(PublishAuthError::MalformedToken("an expiry in no known format"))?;
    let decoded_keys: Vec<Vec<u8>> = keys.iter().filter_map(|k| B64.decode(k.trim()).ok()).collect();
    if !verify_any(&decoded_keys, signed, &decode(signature)?) {
        return Err(PublishAuthError::BadSignature);
    }
    if expires_at <= now {
        return Err(PublishAuthError::Expired(expiry));
    }
    Ok(PublishToken { resource, expires_at })
}

/// Percent-decoding, with `+` as a space: .NET's `HttpUtility.UrlEncode` and Java's
/// `URLEncoder` write spaces so, and every SDK writes a real `+` as `%2B`.
fn decode(v: &str) -> Result<String, PublishAuthError> {
    let spaced = v.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().map(|s| s.into_owned()).map_err(|_| PublishAuthError::MalformedToken("text that is not UTF-8"))
}

/// An expiry as the SDKs write it, or RFC 3339.
fn parse_expiry(text: &str) -> Option<Millis> {
    crate::time_fmt::parse_iso8601(text).or_else(|| python_expiry(text)).or_else(|| us_expiry(text))
}

/// `YYYY-MM-DD hh:mm:ss[.ffffff][+00:00]`: Python's `str(datetime)`.
fn python_expiry(text: &str) -> Option<Millis> {
    let text = text.strip_suffix("+00:00").unwrap_or(text);
    let (date, clock) = text.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    let micros = if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").get(..6)?.parse::<i64>().ok()? };
    utc_ms(year, month, day, hour, minute, second).map(|ms| ms + micros / 1000)
}

/// `M/D/YYYY h:mm:ss AM|PM` on a 12-hour clock, in UTC: JavaScript's, and Java's
/// (`M/d/yyyy h:m:s a`, minutes and seconds unpadded); .NET's `DateTimeOffset` in the
/// en-US culture adds its offset (`12/1/2026 10:00:00 AM +00:00`).
fn us_expiry(text: &str) -> Option<Millis> {
    let mut words = text.split_whitespace();
    let (date, clock, half) = (words.next()?, words.next()?, words.next()?);
    let offset_ms = match words.next() {
        None => 0,
        Some(offset) => utc_offset_ms(offset)?,
    };
    if words.next().is_some() {
        return None;
    }
    let mut d = date.splitn(3, '/').map(|n| n.parse::<i64>().ok());
    let (month, day, year) = (d.next()??, d.next()??, d.next()??);
    let mut t = clock.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (hour12, minute, second) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&hour12) {
        return None;
    }
    let hour = match half.to_ascii_uppercase().as_str() {
        "AM" => hour12 % 12,
        "PM" => hour12 % 12 + 12,
        _ => return None,
    };
    // A wall time at +02:00 is two hours ahead of UTC.
    utc_ms(year, month, day, hour, minute, second).map(|ms| ms - offset_ms)
}

/// `+HH:MM` or `-HH:MM`.
fn utc_offset_ms(text: &str) -> Option<Millis> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m) * 60_000)
}

fn utc_ms(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> Option<Millis> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The JavaScript SDK's own test vector (generateSharedAccessSignature.spec.ts) and
    // the Python SDK's token for the same key, URL and expiry.
    const KEY: &str = "dGhpcyBpcyBub3QgYSByZWFsIEV2ZW50R3JpZCBrZXk=";
    const JS_TOKEN: &str = "r=https%3A%2F%2Feg-topic.westus-2.eventgrid.azure.net%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=1%2F1%2F2020%2012%3A00%3A00%20AM&s=ZzvNAYRyvJwDrOJKYxbNAPNCoSqgOJVLFi4IMXOrW2Q%3D";
    const PY_TOKEN: &str = "r=https%3A%2F%2Feg-topic.westus-2.eventgrid.azure.net%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2020-01-01%2000%3A00%3A00&s=r5Ydd3j%2BPVffJXHt7XtAFUmEi3GTFZ672gvGoAD1x70%3D";
    const PY_TZ_TOKEN: &str = "r=https%3A%2F%2Feg-topic.westus-2.eventgrid.azure.net%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2020-01-01%2000%3A00%3A00%2B00%3A00&s=tvC3p3A0mwMni2cai0XH8x3O1VQ1koaxETrqOWbqK%2F0%3D";
    const JAN_1_2020: Millis = 1_577_836_800_000;

    fn keys() -> Vec<String> {
        vec!["b3RoZXIga2V5".into(), KEY.into()]
    }

    #[test]
    fn both_sdks_tokens_verify_until_they_expire() {
        for token in [JS_TOKEN, PY_TOKEN, PY_TZ_TOKEN] {
            let t = check_token(&keys(), token, JAN_1_2020 - 1).unwrap_or_else(|e| panic!("{token}: {e}"));
            assert_eq!(t.resource, "https://eg-topic.westus-2.eventgrid.azure.net/api/events?apiVersion=2018-01-01");
            assert_eq!(t.expires_at, JAN_1_2020);
            assert!(matches!(check_token(&keys(), token, JAN_1_2020), Err(PublishAuthError::Expired(_))));
        }
    }

    /// `text` as .NET's `HttpUtility.UrlEncode` (lowercase hex) or Java's `URLEncoder`
    /// (uppercase) write it: spaces as `+`, only letters, digits and `-_.*` (Java) or
    /// `-_.!*()` (.NET) left alone.
    fn form_encode(text: &str, upper: bool) -> String {
        text.bytes()
            .map(|b| match b {
                b' ' => "+".to_string(),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
                _ if upper => format!("%{b:02X}"),
                _ => format!("%{b:02x}"),
            })
            .collect()
    }

    /// A token as the .NET (`EventGridSasBuilder.GenerateSas`) or Java
    /// (`EventGridPublisherClient.generateSas`) SDK builds it: the signature is over
    /// the encoded `r=…&e=…`.
    fn sdk_token(expiry: &str, upper: bool) -> String {
        let resource = "https://eg-topic.westus-2.eventgrid.azure.net/api/events?api-version=2018-01-01";
        let unsigned = format!("r={}&e={}", form_encode(resource, upper), form_encode(expiry, upper));
        let sig = crate::auth::sign(&B64.decode(KEY).unwrap(), &unsigned);
        format!("{unsigned}&s={}", form_encode(&sig, upper))
    }

    #[test]
    fn dotnet_and_java_tokens_verify_until_they_expire() {
        for (token, who) in [(sdk_token("1/1/2020 12:00:00 AM +00:00", false), ".NET"), (sdk_token("12/31/2019 7:00:00 PM -05:00", false), ".NET, local time"), (sdk_token("1/1/2020 12:0:0 AM", true), "Java")] {
            let t = check_token(&keys(), &token, JAN_1_2020 - 1).unwrap_or_else(|e| panic!("{who} {token}: {e}"));
            assert_eq!(t.expires_at, JAN_1_2020, "{who}");
            assert!(t.resource.ends_with("?api-version=2018-01-01"), "{who}");
            assert!(matches!(check_token(&keys(), &token, JAN_1_2020), Err(PublishAuthError::Expired(_))), "{who}");
        }
    }

    #[test]
    fn a_changed_token_or_another_key_fails() {
        let other = vec!["b3RoZXIga2V5".to_string()];
        assert_eq!(check_token(&other, JS_TOKEN, 0), Err(PublishAuthError::BadSignature));
        let tampered = JS_TOKEN.replace("eg-topic", "eg-topicx");
        assert_eq!(check_token(&keys(), &tampered, 0), Err(PublishAuthError::BadSignature));
        let later = PY_TOKEN.replace("2020-01-01", "2030-01-01");
        assert_eq!(check_token(&keys(), &later, 0), Err(PublishAuthError::BadSignature), "the expiry is signed");
    }

    #[test]
    fn malformed_tokens_say_why() {
        for bad in ["", "r=x&e=y", "r=x&s=abc", "e=2020-01-01%2000%3A00%3A00&s=abc", "r=x&e=tomorrow&s=abc", "r=x&e=1&q=2&s=abc"] {
            assert!(matches!(check_token(&keys(), bad, 0), Err(PublishAuthError::MalformedToken(_))), "{bad}");
        }
    }

    #[test]
    fn expiry_formats() {
        assert_eq!(python_expiry("2020-01-01 00:00:00.5"), Some(JAN_1_2020 + 500));
        assert_eq!(us_expiry("12/31/2019 11:59:59 PM"), Some(JAN_1_2020 - 1000));
        assert_eq!(us_expiry("1/1/2020 12:00:01 PM"), Some(JAN_1_2020 + 12 * 3_600_000 + 1000));
        assert_eq!(us_expiry("1/1/2020 13:00:00 PM"), None);
        assert_eq!(us_expiry("1/1/2020 12:0:0 AM"), Some(JAN_1_2020), "Java pads nothing");
        assert_eq!(us_expiry("1/1/2020 2:00:00 AM +02:00"), Some(JAN_1_2020), ".NET writes the offset");
        assert_eq!(us_expiry("12/31/2019 7:00:00 PM -05:00"), Some(JAN_1_2020));
        assert_eq!(us_expiry("1/1/2020 12:00:00 AM +25:00"), None);
        assert_eq!(parse_expiry("2020-01-01T00:00:00Z"), Some(JAN_1_2020));
    }

    #[test]
    fn keys_compare_whole() {
        assert_eq!(check_key(&keys(), KEY), Ok(()));
        assert_eq!(check_key(&keys(), &KEY[..10]), Err(PublishAuthError::WrongKey));
        assert_eq!(check_key(&keys(), "nope"), Err(PublishAuthError::WrongKey));
    }
}

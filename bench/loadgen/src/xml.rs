//! Minimal reading of `QueueMessagesList` responses: just MessageId and
//! PopReceipt of the first message.

fn element<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let i = s.find(&open)? + open.len();
    let j = s[i..].find(&close)? + i;
    Some(&s[i..j])
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#x2B;", "+")
        .replace("&#43;", "+")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&amp;", "&")
}

/// (MessageId, PopReceipt) of the first message, or None if the list is empty.
pub fn first_message(body: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(body).ok()?;
    let msg = element(s, "QueueMessage")?;
    let id = element(msg, "MessageId")?.trim();
    let pop = element(msg, "PopReceipt")?.trim();
    Some((unescape(id), unescape(pop)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_response() {
        let body = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><QueueMessagesList><QueueMessage><MessageId>0f1e-22</MessageId><InsertionTime>Mon, 01 Jan 2024 00:00:00 GMT</InsertionTime><ExpirationTime>Mon, 08 Jan 2024 00:00:00 GMT</ExpirationTime><PopReceipt>MDFKYW4y+/A=&amp;x</PopReceipt><TimeNextVisible>Mon, 01 Jan 2024 00:00:30 GMT</TimeNextVisible><DequeueCount>1</DequeueCount><MessageText>hi</MessageText></QueueMessage></QueueMessagesList>"#;
        let (id, pop) = first_message(body).unwrap();
        assert_eq!(id, "0f1e-22");
        assert_eq!(pop, "MDFKYW4y+/A=&x");
    }

    #[test]
    fn empty_list() {
        assert!(first_message(b"<?xml version=\"1.0\"?><QueueMessagesList />").is_none());
        assert!(first_message(b"<QueueMessagesList></QueueMessagesList>").is_none());
    }
}

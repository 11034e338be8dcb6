//! Adding the broker's annotations to a stored message without decoding it: the
//! encoded message is a run of sections (header, delivery-annotations,
//! message-annotations, properties, …, body); this finds their boundaries by the AMQP
//! type encoding alone and writes a new message-annotations section — the broker's
//! entries followed by the sender's — in place of the old one. Cheaper than a decode
//! and re-encode per delivery, and it leaves every other byte as the sender wrote it.
//! The same scan takes a batch envelope apart into its events and reads a partition
//! key, borrowing from the received bytes.

/// Section descriptor codes (AMQP 1.0, 3.2), in the order sections come in.
const DELIVERY_ANNOTATIONS: u8 = 0x71;
const MESSAGE_ANNOTATIONS: u8 = 0x72;
const DATA: u8 = 0x75;
/// The body sections: data, amqp-sequence, amqp-value.
const BODY: std::ops::RangeInclusive<u8> = 0x75..=0x77;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an AMQP message: {0}")]
pub struct SectionError(&'static str);

type Result<T> = std::result::Result<T, SectionError>;

fn byte(b: &[u8], at: usize) -> Result<u8> {
    b.get(at).copied().ok_or(SectionError("truncated"))
}

fn size(b: &[u8], at: usize, wide: bool) -> Result<(usize, usize)> {
    if wide {
        let s = b.get(at..at + 4).ok_or(SectionError("truncated"))?;
        Ok((u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize, 4))
    } else {
        Ok((byte(b, at)? as usize, 1))
    }
}

/// The end of the AMQP value that starts at `at` (its constructor included).
pub fn skip_value(b: &[u8], at: usize, depth: usize) -> Result<usize> {
    if depth > 32 {
        return Err(SectionError("nested too deeply"));
    }
    let code = byte(b, at)?;
    let end = match code {
        0x00 => {
            let after_descriptor = skip_value(b, at + 1, depth + 1)?;
            return skip_value(b, after_descriptor, depth + 1);
        }
        0x40..=0x4f => at + 1,
        0x50..=0x5f => at + 2,
        0x60..=0x6f => at + 3,
        0x70..=0x7f => at + 5,
        0x80..=0x8f => at + 9,
        0x90..=0x9f => at + 17,
        0xa0..=0xaf | 0xc0..=0xcf | 0xe0..=0xef => {
            let (n, w) = size(b, at + 1, false)?;
            at + 1 + w + n
        }
        0xb0..=0xbf | 0xd0..=0xdf | 0xf0..=0xff => {
            let (n, w) = size(b, at + 1, true)?;
            at + 1 + w + n
        }
        _ => return Err(SectionError("unknown type code")),
    };
    if end > b.len() {
        return Err(SectionError("truncated"));
    }
    Ok(end)
}

/// A section: its descriptor code and byte range.
struct Section {
    code: u8,
    start: usize,
    end: usize,
}

fn sections(b: &[u8]) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if b.get(at..at + 2) != Some(&[0x00, 0x53]) {
            return Err(SectionError("a section must have a small-ulong descriptor"));
        }
        let code = byte(b, at + 2)?;
        let end = skip_value(b, at + 3, 0)?;
        out.push(Section { code, start: at, end });
        at = end;
    }
    Ok(out)
}

/// Checks that `message` is a run of well-formed sections.
pub fn check(message: &[u8]) -> Result<()> {
    if message.is_empty() {
        return Err(SectionError("empty"));
    }
    sections(message).map(|_| ())
}

/// The events of a batch envelope (message format 0x80013700): the contents of its
/// data sections, each one event's encoded message, borrowed from `envelope`. Each
/// must itself be a well-formed message.
pub fn batch_events(envelope: &[u8]) -> Result<Vec<&[u8]>> {
    let mut events = Vec::new();
    for s in sections(envelope)?.iter().filter(|s| BODY.contains(&s.code)) {
        if s.code != DATA {
            return Err(SectionError("a batch envelope must carry data sections"));
        }
        let at = s.start + 3;
        let (len, width) = match byte(envelope, at)? {
            0xa0 => size(envelope, at + 1, false)?,
            0xb0 => size(envelope, at + 1, true)?,
            _ => return Err(SectionError("a data section must be binary")),
        };
        let event = envelope.get(at + 1 + width..at + 1 + width + len).ok_or(SectionError("truncated"))?;
        check(event)?;
        events.push(event);
    }
    if events.is_empty() {
        return Err(SectionError("a batch envelope must carry data sections"));
    }
    Ok(events)
}

/// The string or symbol value of `key` in `message`'s message-annotations, if it
/// has one. Reads no further than that section.
pub fn message_annotation_text(message: &[u8], key: &str) -> Option<String> {
    let mut at = 0;
    while at < message.len() {
        if message.get(at..at + 2) != Some(&[0x00, 0x53]) {
            return None;
        }
        let code = *message.get(at + 2)?;
        if code > MESSAGE_ANNOTATIONS {
            return None;
        }
        let end = skip_value(message, at + 3, 0).ok()?;
        if code == MESSAGE_ANNOTATIONS {
            let (entries, count) = map_entries(message, at + 3).ok()?;
            let mut pos = 0;
            for _ in 0..count / 2 {
                let key_end = skip_value(entries, pos, 0).ok()?;
                let value_end = skip_value(entries, key_end, 0).ok()?;
                if key_text(&entries[pos..key_end]) == Some(key.as_bytes()) {
                    let text = key_text(&entries[key_end..value_end])?;
                    return std::str::from_utf8(text).ok().map(str::to_string);
                }
                pos = value_end;
            }
            return None;
        }
        at = end;
    }
    None
}

/// The entries of a map value (without its constructor, size and count), and how
/// many elements (keys and values) it holds.
fn map_entries(b: &[u8], at: usize) -> Result<(&[u8], u32)> {
    match byte(b, at)? {
        0x40 => Ok((&[], 0)),
        0xc1 => {
            let size = byte(b, at + 1)? as usize;
            let count = byte(b, at + 2)? as u32;
            Ok((b.get(at + 3..at + 2 + size).ok_or(SectionError("truncated"))?, count))
        }
        0xd1 => {
            let s = b.get(at + 1..at + 9).ok_or(SectionError("truncated"))?;
            let size = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
            let count = u32::from_be_bytes([s[4], s[5], s[6], s[7]]);
            Ok((b.get(at + 9..at + 5 + size).ok_or(SectionError("truncated"))?, count))
        }
        _ => Err(SectionError("message-annotations must be a map")),
    }
}

/// An annotation value to add.
pub enum Annotation<'a> {
    Long(i64),
    Int(i32),
    Timestamp(i64),
    Str(&'a str),
}

fn put_symbol(out: &mut Vec<u8>, s: &str) {
    if s.len() < 256 {
        out.extend_from_slice(&[0xa3, s.len() as u8]);
    } else {
        out.push(0xb3);
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Annotation<'_>) {
    match v {
        Annotation::Long(n) => {
            out.push(0x81);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Annotation::Int(n) => {
            out.push(0x71);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Annotation::Timestamp(ms) => {
            out.push(0x83);
            out.extend_from_slice(&ms.to_be_bytes());
        }
        Annotation::Str(s) => {
            if s.len() < 256 {
                out.extend_from_slice(&[0xa1, s.len() as u8]);
            } else {
                out.push(0xb1);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The text of an encoded symbol or string key.
fn key_text(key: &[u8]) -> Option<&[u8]> {
    match key.first()? {
        0xa3 | 0xa1 => key.get(2..),
        0xb3 | 0xb1 => key.get(5..),
        _ => None,
    }
}

/// `message` with `ours` added to its message-annotations (ahead of the sender's;
/// a sender's entry with the same key is dropped, so ours win). Every other section
/// is copied byte for byte.
pub fn annotate(message: &[u8], ours: &[(&str, Annotation<'_>)]) -> Result<Vec<u8>> {
    annotate_section(message, MESSAGE_ANNOTATIONS, ours)
}

/// `message` with `ours` added to its delivery-annotations, as [`annotate`] does.
pub fn annotate_delivery(message: &[u8], ours: &[(&str, Annotation<'_>)]) -> Result<Vec<u8>> {
    annotate_section(message, DELIVERY_ANNOTATIONS, ours)
}

/// Writes the annotations section `code` (sections come in the order of their codes,
/// so it goes before the first section with a higher one).
fn annotate_section(message: &[u8], code: u8, ours: &[(&str, Annotation<'_>)]) -> Result<Vec<u8>> {
    let parts = sections(message)?;
    let mut out = Vec::with_capacity(message.len() + 64 + ours.len() * 32);
    let existing = parts.iter().find(|s| s.code == code);
    let mut written = false;
    let write_annotations = |out: &mut Vec<u8>| -> Result<()> {
        let mut entries = Vec::with_capacity(ours.len() * 32);
        let mut count = 0u32;
        for (k, v) in ours {
            put_symbol(&mut entries, k);
            put_value(&mut entries, v);
            count += 2;
        }
        if let Some(s) = existing {
            let (theirs, their_count) = map_entries(message, s.start + 3)?;
            // Copy the sender's entries but those whose key we set.
            let mut at = 0;
            let mut pairs = 0;
            while at < theirs.len() && pairs * 2 < their_count {
                let key_end = skip_value(theirs, at, 0)?;
                let value_end = skip_value(theirs, key_end, 0)?;
                let key = key_text(&theirs[at..key_end]);
                let ours_too = ours.iter().any(|(k, _)| key == Some(k.as_bytes()));
                if !ours_too {
                    entries.extend_from_slice(&theirs[at..value_end]);
                    count += 2;
                }
                at = value_end;
                pairs += 1;
            }
        }
        out.extend_from_slice(&[0x00, 0x53, code, 0xd1]);
        out.extend_from_slice(&((entries.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&entries);
        Ok(())
    };
    for s in &parts {
        if s.code == code {
            write_annotations(&mut out)?;
            written = true;
            continue;
        }
        if s.code > code && !written {
            write_annotations(&mut out)?;
            written = true;
        }
        out.extend_from_slice(&message[s.start..s.end]);
    }
    if !written {
        write_annotations(&mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::messaging::annotations::OwnedKey;
    use fe2o3_amqp_types::messaging::message::__private::Serializable;
    use fe2o3_amqp_types::messaging::{Header, Message, MessageAnnotations, MessageId, Properties};
    use fe2o3_amqp_types::primitives::{Symbol, Timestamp, Value};

    fn annotation(m: &crate::message::Decoded, key: &str) -> Option<Value> {
        m.message_annotations.as_ref()?.0.get(&OwnedKey::Symbol(Symbol::from(key))).cloned()
    }

    #[test]
    fn annotations_are_added_and_the_rest_kept() {
        let sent = Message::builder()
            .header(Header { durable: true, ..Default::default() })
            .message_annotations(MessageAnnotations::builder().insert("x-opt-partition-key", "track-42").insert("x-opt-sequence-number", 999i64).build())
            .properties(Properties::builder().message_id(MessageId::String("m1".into())).build())
            .value("hello".to_string())
            .build();
        let bytes = serde_amqp::to_vec(&Serializable(sent)).unwrap();
        let ours = [("x-opt-sequence-number", Annotation::Long(7)), ("x-opt-offset", Annotation::Str("4096")), ("x-opt-enqueued-time", Annotation::Timestamp(1_700_000_000_000))];
        let out = annotate(&bytes, &ours).unwrap();
        let m = crate::message::decode(&out).unwrap();
        assert_eq!(annotation(&m, "x-opt-sequence-number"), Some(Value::Long(7)), "ours win over the sender's");
        assert_eq!(annotation(&m, "x-opt-offset"), Some(Value::String("4096".into())));
        assert_eq!(annotation(&m, "x-opt-enqueued-time"), Some(Value::Timestamp(Timestamp::from_milliseconds(1_700_000_000_000))));
        assert_eq!(annotation(&m, "x-opt-partition-key"), Some(Value::String("track-42".into())), "the sender's stay");
        assert!(m.header.unwrap().durable);
        assert_eq!(m.properties.unwrap().message_id, Some(MessageId::String("m1".into())));
    }

    #[test]
    fn a_message_without_annotations_gets_a_section_in_the_right_place() {
        let sent = Message::builder().properties(Properties::builder().subject("s").build()).data(vec![1u8, 2, 3]).build();
        let bytes = serde_amqp::to_vec(&Serializable(sent)).unwrap();
        let out = annotate(&bytes, &[("x-opt-offset", Annotation::Str("0"))]).unwrap();
        let m = crate::message::decode(&out).unwrap();
        assert_eq!(annotation(&m, "x-opt-offset"), Some(Value::String("0".into())));
        assert_eq!(m.properties.unwrap().subject.as_deref(), Some("s"));
    }

    #[test]
    fn delivery_annotations_go_before_the_message_annotations() {
        let sent = Message::builder().header(Header::default()).message_annotations(MessageAnnotations::builder().insert("k", "v").build()).value(1i32).build();
        let bytes = serde_amqp::to_vec(&Serializable(sent)).unwrap();
        let out = annotate_delivery(&bytes, &[("last_enqueued_sequence_number", Annotation::Long(41))]).unwrap();
        let m = crate::message::decode(&out).unwrap();
        let da = m.delivery_annotations.clone().expect("delivery annotations");
        assert_eq!(da.0.get(&OwnedKey::Symbol(Symbol::from("last_enqueued_sequence_number"))), Some(&Value::Long(41)));
        assert_eq!(annotation(&m, "k"), Some(Value::String("v".into())));
    }

    fn encoded<T: fe2o3_amqp_types::messaging::SerializableBody>(m: Message<T>) -> Vec<u8> {
        serde_amqp::to_vec(&Serializable(m)).unwrap()
    }

    #[test]
    fn a_batch_envelope_comes_apart_into_its_events_and_keys_are_read() {
        let keyed = |text: &str| {
            let annotations = MessageAnnotations::builder().insert("x-opt-app", 1i32).insert("x-opt-partition-key", "track-42").build();
            encoded(Message::builder().message_annotations(annotations).value(text.to_string()).build())
        };
        let (a, b) = (keyed("a"), encoded(Message::builder().data(vec![1u8, 2]).build()));
        let envelope = encoded(
            Message::builder()
                .message_annotations(MessageAnnotations::builder().insert("x-opt-partition-key", "outer").build())
                .data_batch([a.clone(), b.clone()].map(fe2o3_amqp_types::messaging::Data::from))
                .build(),
        );
        assert_eq!(batch_events(&envelope).unwrap(), vec![a.as_slice(), b.as_slice()]);
        assert_eq!(message_annotation_text(&envelope, "x-opt-partition-key").as_deref(), Some("outer"));
        assert_eq!(message_annotation_text(&a, "x-opt-partition-key").as_deref(), Some("track-42"));
        assert_eq!(message_annotation_text(&a, "x-opt-app"), None, "not text");
        assert_eq!(message_annotation_text(&b, "x-opt-partition-key"), None);
    }

    #[test]
    fn a_batch_must_hold_data_sections_of_messages() {
        let value_body = encoded(Message::builder().value(1i32).build());
        assert!(batch_events(&value_body).is_err(), "an amqp-value body is no batch");
        let garbage_inside = encoded(Message::builder().data_batch([fe2o3_amqp_types::messaging::Data::from(vec![0x12u8, 0x34])]).build());
        assert!(batch_events(&garbage_inside).is_err(), "each event must be a message");
        assert!(check(&[]).is_err() && check(&value_body).is_ok());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(annotate(&[0x00, 0x53], &[]).is_err());
        assert!(annotate(&[0x00, 0x53, 0x77, 0xa1, 200, b'x'], &[]).is_err());
        assert!(annotate(&[0x12, 0x34], &[]).is_err());
    }
}

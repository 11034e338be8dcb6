//! How one event is laid out inside a journal record: a version byte, its sequence
//! number, offset and enqueued time (little-endian i64s), then the body. The journal
//! frame around it carries the length and checksum.

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 1 + 8 * 3;

/// The payload of the record for one event.
pub fn encode(seq: i64, offset: i64, enqueued_at: i64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&enqueued_at.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The header fields of a record payload, and its body.
pub struct Header<'a> {
    pub seq: i64,
    pub offset: i64,
    pub enqueued_at: i64,
    pub body: &'a [u8],
}

pub fn decode(payload: &[u8]) -> Option<Header<'_>> {
    if payload.len() < HEADER_LEN || payload[0] != VERSION {
        return None;
    }
    let field = |i: usize| i64::from_le_bytes(payload[1 + 8 * i..9 + 8 * i].try_into().expect("8 bytes"));
    Some(Header { seq: field(0), offset: field(1), enqueued_at: field(2), body: &payload[HEADER_LEN..] })
}

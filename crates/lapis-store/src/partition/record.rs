//! How one event is laid out inside a journal record: a version byte, its sequence
//! number, offset and enqueued time (little-endian i64s), then the body. The journal
//! frame around it carries the length and checksum.

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 1 + 8 * 3;

/// The header that precedes an event's body in its record.
pub fn header(seq: i64, offset: i64, enqueued_at: i64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = VERSION;
    out[1..9].copy_from_slice(&seq.to_le_bytes());
    out[9..17].copy_from_slice(&offset.to_le_bytes());
    out[17..25].copy_from_slice(&enqueued_at.to_le_bytes());
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

//! Record framing: how one record is laid out on disk and checked on the way back.
//!
//! A frame is `[payload length: u32 LE][crc32c over length and payload: u32 LE][payload]`.
//! Covering the length with the checksum means a flipped bit in the length field is
//! caught as corruption instead of sending the reader off to a wrong offset.

/// Bytes of the frame header that precede every payload.
pub const HEADER_LEN: usize = 8;

/// Largest payload a single record may carry. Service Bus premium allows 100 MB
/// messages; anything beyond this bound is treated as corruption on read.
pub const MAX_PAYLOAD_LEN: usize = 128 * 1024 * 1024;

fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len_bytes);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one framed record to `out`.
pub fn encode_into(out: &mut Vec<u8>, payload: &[u8]) {
    encode_parts_into(out, &[payload]);
}

/// Appends one framed record whose payload is `parts` one after another, without
/// first joining them.
pub fn encode_parts_into(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    assert!(len <= MAX_PAYLOAD_LEN, "record payload exceeds bound");
    let len_bytes = (len as u32).to_le_bytes();
    let crc = parts.iter().fold(crc32c::crc32c(&len_bytes), |crc, p| crc32c::crc32c_append(crc, p));
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Size on disk of a record carrying `payload_len` bytes.
pub fn framed_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// What the decoder found at one position of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact record and the total bytes it occupies.
    Record { payload: &'a [u8], framed_len: usize },
    /// The buffer ends inside the header or the payload.
    Truncated,
    /// The header claims an impossible length, or the checksum does not match.
    /// `claimed_len` is the framed length the header announced, when plausible.
    Corrupt { claimed_len: Option<usize> },
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Truncated;
    }
    let len_bytes: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    let stored_crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Decoded::Corrupt { claimed_len: None };
    }
    let end = HEADER_LEN + len;
    if buf.len() < end {
        return Decoded::Truncated;
    }
    let payload = &buf[HEADER_LEN..end];
    if checksum(len_bytes, payload) != stored_crc {
        return Decoded::Corrupt { claimed_len: Some(end) };
    }
    Decoded::Record { payload, framed_len: end }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_into(&mut buf, b"hello");
        encode_into(&mut buf, b"");
        assert_eq!(decode(&buf), Decoded::Record { payload: b"hello", framed_len: 13 });
        assert_eq!(decode(&buf[13..]), Decoded::Record { payload: b"", framed_len: 8 });
    }

    #[test]
    fn parts_frame_as_their_concatenation() {
        let (mut joined, mut parts) = (Vec::new(), Vec::new());
        encode_into(&mut joined, b"header+body");
        encode_parts_into(&mut parts, &[b"header", b"+", b"body"]);
        assert_eq!(joined, parts);
    }

    #[test]
    fn zeroed_tail_is_corrupt_not_a_record() {
        assert!(matches!(decode(&[0u8; 16]), Decoded::Corrupt { .. }));
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..2048) {
            let mut buf = Vec::new();
            encode_into(&mut buf, &payload);
            let bit = bit % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            let intact = matches!(decode(&buf), Decoded::Record { .. });
            prop_assert!(!intact);
        }

        #[test]
        fn every_truncation_is_reported_as_truncated(payload in proptest::collection::vec(any::<u8>(), 1..256), cut in 0usize..264) {
            let mut buf = Vec::new();
            encode_into(&mut buf, &payload);
            let cut = cut % buf.len();
            prop_assert_eq!(decode(&buf[..cut]), Decoded::Truncated);
        }
    }
}

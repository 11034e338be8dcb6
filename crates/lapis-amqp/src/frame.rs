//! AMQP 1.0 framing: protocol headers, and frames read and written with bounds.
//!
//! A frame is `[size: u32][doff: u8][type: u8][channel: u16][extended header][body]`.
//! AMQP frames (type 0) carry a performative and, for transfers, a payload after it;
//! an empty body is a heartbeat. SASL frames (type 1) carry a SASL performative.
//! Sizes, data offsets and types are checked before anything is decoded, so a hostile
//! peer gets an error, never a panic or an unbounded allocation.

use bytes::{BufMut, Bytes};
use fe2o3_amqp::frames::sasl;
use fe2o3_amqp_types::performatives::Performative;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `AMQP\x03\x01\x00\x00`: the SASL layer comes first.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// `AMQP\x00\x01\x00\x00`: plain AMQP 1.0.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

/// The smallest max-frame-size AMQP allows; SASL frames are bounded by it.
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

const TYPE_AMQP: u8 = 0;
const TYPE_SASL: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes exceeds the negotiated maximum of {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("could not encode a frame: {0}")]
    Encode(String),
}

/// An AMQP frame: a performative (none for a heartbeat) and the payload after it.
#[derive(Debug)]
pub struct AmqpFrame {
    pub channel: u16,
    pub performative: Option<Performative>,
    pub payload: Bytes,
}

/// Reads the peer's 8-byte protocol header.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<[u8; 8], FrameError> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    Ok(h)
}

/// Reads one raw frame: its type, channel and body.
async fn read_raw<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<(u8, u16, Bytes), FrameError> {
    let size = r.read_u32().await?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if size < 8 {
        return Err(FrameError::Malformed(format!("frame size {size} is below the 8-byte header")));
    }
    // Read into spare capacity: a frame's buffer is not zeroed first.
    let want = size as usize - 4;
    let mut rest = bytes::BytesMut::with_capacity(want);
    while rest.len() < want {
        let limit = want - rest.len();
        if r.read_buf(&mut (&mut rest).limit(limit)).await? == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    let doff = rest[0] as usize * 4;
    if doff < 8 || doff > size as usize {
        return Err(FrameError::Malformed(format!("data offset {doff} is outside the frame")));
    }
    let frame_type = rest[1];
    let channel = u16::from_be_bytes([rest[2], rest[3]]);
    let body = rest.freeze().slice(doff - 4..);
    Ok((frame_type, channel, body))
}

/// How many bytes the described list at the start of `body` (a performative)
/// occupies: descriptor, then a list0, list8 or list32.
fn performative_len(body: &[u8]) -> Result<usize, FrameError> {
    let bad = |what: &str| FrameError::Malformed(format!("performative: {what}"));
    if body.first() != Some(&0x00) {
        return Err(bad("not a described type"));
    }
    let descriptor_len = match body.get(1) {
        Some(0x53) => 2,
        Some(0x80) => 9,
        Some(0xa3) => 2 + *body.get(2).ok_or_else(|| bad("truncated descriptor"))? as usize,
        _ => return Err(bad("unknown descriptor encoding")),
    };
    let at = 1 + descriptor_len;
    let list_len = match body.get(at) {
        Some(0x45) => 1,
        Some(0xc0) => 2 + *body.get(at + 1).ok_or_else(|| bad("truncated list"))? as usize,
        Some(0xd0) => {
            let size = body.get(at + 1..at + 5).ok_or_else(|| bad("truncated list"))?;
            5 + u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize
        }
        _ => return Err(bad("not a list")),
    };
    let total = at + list_len;
    if total > body.len() {
        return Err(bad("runs past the frame"));
    }
    Ok(total)
}

pub async fn read_amqp<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<AmqpFrame, FrameError> {
    let (frame_type, channel, body) = read_raw(r, max).await?;
    if frame_type != TYPE_AMQP {
        return Err(FrameError::Malformed(format!("frame type {frame_type} where an AMQP frame was expected")));
    }
    if body.is_empty() {
        return Ok(AmqpFrame { channel, performative: None, payload: Bytes::new() });
    }
    let len = performative_len(&body)?;
    let performative: Performative = match serde_amqp::from_slice(&body[..len]) {
        Ok(p) => p,
        Err(e) => lenient_performative(&body[..len]).ok_or_else(|| FrameError::Malformed(e.to_string()))?,
    };
    Ok(AmqpFrame { channel, performative: Some(performative), payload: body.slice(len..) })
}

/// The descriptor code of the `error` type.
const ERROR_CODE: u64 = 0x1d;

/// Decodes a performative that the strict decoder refused because an `error`'s
/// `info` map has string keys where the specification says symbols (rhea writes
/// the dead-letter reason that way): the keys are turned into symbols and the
/// performative decoded again.
fn lenient_performative(bytes: &[u8]) -> Option<Performative> {
    let mut value: fe2o3_amqp_types::primitives::Value = serde_amqp::from_slice(bytes).ok()?;
    if !symbolize_error_info(&mut value, 0) {
        return None;
    }
    serde_amqp::from_slice(&serde_amqp::to_vec(&value).ok()?).ok()
}

/// Rewrites string keys of every error's info map to symbols; true if any changed.
fn symbolize_error_info(value: &mut fe2o3_amqp_types::primitives::Value, depth: usize) -> bool {
    use fe2o3_amqp_types::primitives::Value;
    use serde_amqp::descriptor::Descriptor;
    if depth > 16 {
        return false;
    }
    match value {
        Value::Described(d) => {
            let is_error = matches!(&d.descriptor, Descriptor::Code(ERROR_CODE)) || matches!(&d.descriptor, Descriptor::Name(n) if n.as_str() == "amqp:error:list");
            let mut changed = false;
            if let (true, Value::List(fields)) = (is_error, &mut d.value) {
                if let Some(Value::Map(info)) = fields.get_mut(2) {
                    let rewritten = std::mem::take(info)
                        .into_iter()
                        .map(|(k, v)| match k {
                            Value::String(s) => {
                                changed = true;
                                (Value::Symbol(s.into()), v)
                            }
                            other => (other, v),
                        })
                        .collect();
                    *info = rewritten;
                }
            }
            symbolize_error_info(&mut d.value, depth + 1) || changed
        }
        Value::List(items) => {
            // Every item is visited: no short-circuit.
            let mut changed = false;
            for v in items {
                changed |= symbolize_error_info(v, depth + 1);
            }
            changed
        }
        _ => false,
    }
}

pub async fn read_sasl<R: AsyncRead + Unpin>(r: &mut R) -> Result<sasl::Frame, FrameError> {
    let (frame_type, _, body) = read_raw(r, MIN_MAX_FRAME_SIZE).await?;
    if frame_type != TYPE_SASL {
        return Err(FrameError::Malformed(format!("frame type {frame_type} where a SASL frame was expected")));
    }
    serde_amqp::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn frame_bytes(frame_type: u8, channel: u16, body: &[u8], tail: &[u8]) -> Vec<u8> {
    let size = (8 + body.len() + tail.len()) as u32;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[2, frame_type]);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(tail);
    out
}

/// How many fields each performative has (by descriptor code), so that every field
/// is written: some clients read fields by position and fail on a list whose trailing
/// defaults were left out.
fn field_count(code: u8) -> Option<u32> {
    Some(match code {
        0x10 => 10, // open
        0x11 => 8,  // begin
        0x12 => 14, // attach
        0x13 => 11, // flow
        0x14 => 11, // transfer
        0x15 => 6,  // disposition
        0x16 => 3,  // detach
        0x17 | 0x18 => 1, // end, close
        _ => return None,
    })
}

/// Appends a performative as a described list32 of all its fields, padding the
/// fields the encoder left out with nulls.
fn put_performative(out: &mut Vec<u8>, p: &Performative) -> Result<(), FrameError> {
    let bytes = serde_amqp::to_vec(p).map_err(|e| FrameError::Encode(e.to_string()))?;
    let (code, count, fields) = match bytes.as_slice() {
        [0x00, 0x53, code, 0x45, ..] => (*code, 0u32, &[][..]),
        [0x00, 0x53, code, 0xc0, _size, count, fields @ ..] => (*code, *count as u32, fields),
        [0x00, 0x53, code, 0xd0, rest @ ..] if rest.len() >= 8 => (*code, u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]), &rest[8..]),
        _ => {
            out.extend_from_slice(&bytes);
            return Ok(());
        }
    };
    let full = field_count(code).unwrap_or(count).max(count);
    let missing = (full - count) as usize;
    out.extend_from_slice(&[0x00, 0x53, code, 0xd0]);
    out.extend_from_slice(&((4 + fields.len() + missing) as u32).to_be_bytes());
    out.extend_from_slice(&full.to_be_bytes());
    out.extend_from_slice(fields);
    out.resize(out.len() + missing, 0x40);
    Ok(())
}

/// Appends an encoded AMQP frame to `out` (a heartbeat when `performative` is `None`).
pub fn encode_amqp_into(out: &mut Vec<u8>, channel: u16, performative: Option<&Performative>, payload: &[u8]) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 2, TYPE_AMQP]);
    out.extend_from_slice(&channel.to_be_bytes());
    if let Some(p) = performative {
        if let Err(e) = put_performative(out, p) {
            out.truncate(start);
            return Err(e);
        }
    }
    out.extend_from_slice(payload);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Encodes an AMQP frame (a heartbeat when `performative` is `None`).
pub fn encode_amqp(channel: u16, performative: Option<&Performative>, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_amqp_into(&mut out, channel, performative, payload)?;
    Ok(out)
}

pub async fn write_sasl<W: AsyncWrite + Unpin>(w: &mut W, frame: &sasl::Frame) -> Result<(), FrameError> {
    let body = serde_amqp::to_vec(frame).map_err(|e| FrameError::Encode(e.to_string()))?;
    w.write_all(&frame_bytes(TYPE_SASL, 0, &body, &[])).await?;
    Ok(w.flush().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::performatives::{Begin, Close};

    #[tokio::test]
    async fn frames_round_trip_and_hostile_sizes_are_refused() {
        let begin = Performative::Begin(Begin {
            remote_channel: Some(3),
            next_outgoing_id: 0,
            incoming_window: 100,
            outgoing_window: 100,
            handle_max: Default::default(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        });
        let mut bytes = encode_amqp(7, Some(&begin), b"tail").unwrap();
        bytes.extend(encode_amqp(0, None, &[]).unwrap());
        let mut r = bytes.as_slice();
        let f = read_amqp(&mut r, 1 << 20).await.unwrap();
        assert_eq!((f.channel, f.performative.as_ref(), &f.payload[..]), (7, Some(&begin), &b"tail"[..]));
        assert!(read_amqp(&mut r, 1 << 20).await.unwrap().performative.is_none(), "heartbeat");

        let close = encode_amqp(0, Some(&Performative::Close(Close { error: None })), &[]).unwrap();
        assert!(matches!(read_amqp(&mut close.as_slice(), 8).await, Err(FrameError::TooLarge { .. })));
        let tiny = [0u8, 0, 0, 4];
        assert!(matches!(read_amqp(&mut &tiny[..], 512).await, Err(FrameError::Malformed(_))));
        let bad_doff = [0u8, 0, 0, 8, 9, 0, 0, 0];
        assert!(matches!(read_amqp(&mut &bad_doff[..], 512).await, Err(FrameError::Malformed(_))));
        let garbage = [0u8, 0, 0, 12, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_amqp(&mut &garbage[..], 512).await, Err(FrameError::Malformed(_))));
    }

    #[tokio::test]
    async fn every_field_of_a_performative_is_written() {
        let close = Performative::Close(Close { error: None });
        let mut out = Vec::new();
        encode_amqp_into(&mut out, 0, Some(&close), &[]).unwrap();
        // size, doff, type, channel, then 0x00 0x53 0x18 list32 [size][count=1] null
        assert_eq!(&out[8..], &[0x00, 0x53, 0x18, 0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x40]);
        let f = read_amqp(&mut out.as_slice(), 1 << 20).await.unwrap();
        assert_eq!(f.performative, Some(close));
    }

    #[tokio::test]
    async fn an_error_info_map_with_string_keys_is_read() {
        // disposition{role receiver, first 7, settled, state rejected{error{
        //   com.microsoft:dead-letter, null, {"DeadLetterReason": "Bad"}}}} as rhea writes it
        let mut body = vec![0x00, 0x53, 0x15, 0xc0, 0, 5, 0x41, 0x52, 7, 0x40, 0x41];
        let info = [&[0xa1, 16][..], b"DeadLetterReason", &[0xa1, 3], b"Bad"].concat();
        let mut error = vec![0x00, 0x53, 0x1d, 0xc0, 0, 3, 0xa3, 25];
        error.extend_from_slice(b"com.microsoft:dead-letter");
        error.push(0x40);
        error.extend_from_slice(&[0xc1, (info.len() + 1) as u8, 2]);
        error.extend_from_slice(&info);
        error[4] = (error.len() - 5) as u8;
        let mut rejected = vec![0x00, 0x53, 0x25, 0xc0, 0, 1];
        rejected.extend_from_slice(&error);
        rejected[4] = (rejected.len() - 5) as u8;
        body.extend_from_slice(&rejected);
        body[4] = (body.len() - 5) as u8;
        let frame = frame_bytes(TYPE_AMQP, 0, &body, &[]);
        let f = read_amqp(&mut frame.as_slice(), 1 << 20).await.expect("read leniently");
        let Some(Performative::Disposition(d)) = f.performative else { panic!("a disposition") };
        let Some(fe2o3_amqp_types::messaging::DeliveryState::Rejected(r)) = d.state else { panic!("rejected") };
        let info = r.error.and_then(|e| e.info).expect("info");
        assert_eq!(info.get(&fe2o3_amqp_types::primitives::Symbol::from("DeadLetterReason")), Some(&fe2o3_amqp_types::primitives::Value::String("Bad".into())));
    }
}

//! The Event Hubs side of the AMQP endpoint: what link addresses name a hub, a
//! partition or a consumer group's partition ([`address`]); where a receiver starts,
//! from its selector filter ([`selector`]); the annotations stamped on each
//! delivered event; and the `$management` READ operations ([`management`]).

pub mod address;
pub mod management;
pub mod selector;

use lapis_core::stream::{StoredEvent, Visible};

use crate::sections::{self, Annotation};

pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub const OFFSET: &str = "x-opt-offset";
pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub const PARTITION_KEY: &str = "x-opt-partition-key";

/// The largest message (an event or a batch) a producer may send, stated on attach.
pub const MAX_MESSAGE_SIZE: u64 = lapis_core::stream::MAX_EVENT_BYTES as u64;

/// The event as a receiver gets it: the stored message with its sequence number,
/// offset (a string, as the service writes it) and enqueued time; with `latest` (for
/// receivers that asked for runtime metrics), the partition's last enqueued event in
/// the delivery annotations.
pub fn delivery(event: &StoredEvent, latest: Option<(Visible, i64)>) -> Result<Vec<u8>, sections::SectionError> {
    let offset = event.offset.to_string();
    let ours = [
        (SEQUENCE_NUMBER, Annotation::Long(event.seq)),
        (OFFSET, Annotation::Str(&offset)),
        (ENQUEUED_TIME, Annotation::Timestamp(event.enqueued_at)),
    ];
    let annotated = sections::annotate(&event.body, &ours)?;
    let Some((last, now)) = latest else { return Ok(annotated) };
    let last_offset = last.offset.to_string();
    let metrics = [
        ("last_enqueued_sequence_number", Annotation::Long(last.seq)),
        ("last_enqueued_offset", Annotation::Str(&last_offset)),
        ("last_enqueued_time_utc", Annotation::Timestamp(last.enqueued_at)),
        ("runtime_info_retrieval_time_utc", Annotation::Timestamp(now)),
    ];
    sections::annotate_delivery(&annotated, &metrics)
}

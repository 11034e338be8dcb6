//! Messaging mode: the phone hands each item to the Lapis service that fits it and
//! keeps it in its outbox until that service acknowledges (which means it is on
//! disk) — an upload as audio in Blob plus a job on the Storage Queue, a comment
//! on the Service Bus queue (message id = comment id, session = track), a play on
//! Event Hubs. The back end takes them from there at its own pace.

use std::time::Duration;

use fe2o3_amqp::Sender;
use tokio::sync::Mutex;

use super::{Carrier, Item, Plan, Sent};
use crate::http::Fault;
use crate::messaging::eventhubs::{self, Play};
use crate::messaging::servicebus::{self, ServiceBus, COMMENTS};
use crate::messaging::storage::{Storage, UploadJob, UPLOAD_JOBS};
use crate::workers::comments::CommentMessage;

/// Service Bus links and Event Hubs producers the phones share (one AMQP
/// connection each): a send waits for its disk write, so one link would carry one
/// send at a time.
const SENDERS: usize = 16;
const PRODUCERS: usize = 8;

type Slot = Mutex<Option<(ServiceBus, Sender)>>;

pub struct Lapis {
    lapis: crate::messaging::lapis::Lapis,
    storage: Storage,
    senders: Vec<Slot>,
    plays: Vec<azure_messaging_eventhubs::ProducerClient>,
    timeout: Duration,
}

/// Spreads items over the shared links.
fn hash(id: &str) -> usize {
    id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
}

impl Lapis {
    pub async fn connect(plan: &Plan) -> anyhow::Result<Lapis> {
        Self::connect_to(&plan.lapis, plan.timeout).await
    }

    /// Connects to Lapis at `lapis`; each hand-off may take up to `timeout`.
    pub async fn connect_to(lapis: &crate::messaging::lapis::Lapis, timeout: Duration) -> anyhow::Result<Lapis> {
        let storage = Storage::new(lapis)?;
        storage.ensure().await?;
        let mut plays = Vec::with_capacity(PRODUCERS);
        for _ in 0..PRODUCERS {
            plays.push(eventhubs::producer(lapis).await?);
        }
        Ok(Lapis { lapis: lapis.clone(), storage, senders: (0..SENDERS).map(|_| Mutex::new(None)).collect(), plays, timeout })
    }

    async fn send_comment(&self, slot: usize, id: &str, track: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let mut guard = self.senders[slot % SENDERS].lock().await;
        if guard.is_none() {
            let mut sb = ServiceBus::connect(&self.lapis, &[COMMENTS]).await?;
            let sender = sb.sender(COMMENTS).await?;
            *guard = Some((sb, sender));
        }
        let (_, sender) = guard.as_mut().expect("just connected");
        let sent = servicebus::send(sender, id, track, body).await;
        if sent.is_err() {
            // The link may be broken; the next try starts afresh.
            if let Some((sb, _)) = guard.take() {
                sb.close().await;
            }
        }
        sent
    }

    async fn hand_off(&self, item: &Item) -> anyhow::Result<()> {
        match item {
            Item::Upload { id, title, artist, audio } => {
                self.storage.put_audio(id, audio.to_vec()).await?;
                let job = UploadJob { upload_id: id.clone(), blob: id.clone(), title: title.clone(), artist: artist.clone() };
                self.storage.enqueue(UPLOAD_JOBS, serde_json::to_string(&job)?).await?;
            }
            Item::Comment { id, track, author, body } => {
                let message = CommentMessage { comment_id: id.clone(), track_id: track.clone(), author: author.clone(), body: body.clone() };
                self.send_comment(hash(id), id, track, serde_json::to_vec(&message)?).await?;
            }
            Item::Play { id, track } => {
                let producer = &self.plays[hash(id) % PRODUCERS];
                eventhubs::send_play(producer, &Play { play_id: id.clone(), track_id: track.clone() }).await?
            }
        }
        Ok(())
    }
}

impl Carrier for Lapis {
    async fn send(&self, item: &Item, fault: Fault) -> Sent {
        if fault == Fault::DropBefore {
            return Sent::Failed("the network dropped the connection".into());
        }
        // Service Bus sends bound themselves (and drop a link that timed out, so a
        // cancelled send never leaves it half-used); the rest is bounded here.
        let handed = match item {
            Item::Comment { .. } => Ok(self.hand_off(item).await),
            _ => tokio::time::timeout(self.timeout, self.hand_off(item)).await,
        };
        match handed {
            // Landed, but the phone never hears so: it will send again.
            Ok(Ok(())) if fault == Fault::DropAfter => Sent::Failed("the network lost the answer".into()),
            Ok(Ok(())) => Sent::Done,
            Ok(Err(e)) => Sent::Failed(format!("{e:#}")),
            Err(_) => Sent::Failed("timed out".into()),
        }
    }
}

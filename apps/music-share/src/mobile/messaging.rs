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
type Producer = Mutex<Option<azure_messaging_eventhubs::ProducerClient>>;

pub struct Lapis {
    lapis: crate::messaging::lapis::Lapis,
    storage: Storage,
    senders: Vec<Slot>,
    plays: Vec<Producer>,
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
            plays.push(Mutex::new(Some(eventhubs::producer(lapis).await?)));
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
        // A send whose connection was cut may never be answered: bounded here, so
        // the link is replaced rather than left holding up the phones that share it.
        let sent = match tokio::time::timeout(self.timeout, servicebus::send(sender, id, track, body)).await {
            Ok(sent) => sent,
            Err(_) => Err(anyhow::anyhow!("no answer from Service Bus within {:?}", self.timeout)),
        };
        if sent.is_err() {
            // The link may be broken; the next try starts afresh.
            if let Some((sb, _)) = guard.take() {
                sb.close().await;
            }
        }
        sent
    }

    /// Sends a play on one of the shared producers. The Event Hubs crate does not
    /// recover a producer whose connection was cut ("Could not ensure sender", for
    /// good), so a failed one is closed and the next send opens a new one.
    async fn send_play(&self, slot: usize, play: &Play) -> anyhow::Result<()> {
        let mut guard = self.plays[slot % PRODUCERS].lock().await;
        if guard.is_none() {
            *guard = Some(eventhubs::producer(&self.lapis).await?);
        }
        let producer = guard.as_ref().expect("just opened");
        let sent = match tokio::time::timeout(self.timeout, eventhubs::send_play(producer, play)).await {
            Ok(sent) => sent.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("no answer from Event Hubs within {:?}", self.timeout)),
        };
        if sent.is_err() {
            if let Some(p) = guard.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), p.close()).await;
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
            Item::Play { id, track } => self.send_play(hash(id), &Play { play_id: id.clone(), track_id: track.clone() }).await?,
        }
        Ok(())
    }
}

impl Carrier for Lapis {
    async fn send(&self, item: &Item, fault: Fault) -> Sent {
        if fault == Fault::DropBefore {
            return Sent::Failed("the network dropped the connection".into());
        }
        // Comments and plays go over shared links: they get a longer bound, and a
        // link that failed is replaced at its next use; an upload is bounded by the
        // phone's own timeout.
        let handed = match item {
            Item::Upload { .. } => tokio::time::timeout(self.timeout, self.hand_off(item)).await,
            _ => Ok(tokio::time::timeout(self.timeout * 5, self.hand_off(item)).await.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))),
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

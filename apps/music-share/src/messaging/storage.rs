//! Storage Queues and Blob storage through Microsoft's Rust crates
//! (`azure_storage_queue`, `azure_storage_blob` 1.1.0): the upload's claim check.
//! The audio goes to a blob; a small job naming it goes on a queue.

use azure_core::http::{RequestContent, Url};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use azure_storage_queue::models::{QueueClientReceiveMessagesOptions, QueueMessage};
use azure_storage_queue::{QueueClient, QueueServiceClient};
use serde::{Deserialize, Serialize};

use super::lapis::Lapis;

/// The queue of upload jobs, its poison queue, and the blob container of uploads.
pub const UPLOAD_JOBS: &str = "upload-jobs";
pub const UPLOAD_JOBS_POISON: &str = "upload-jobs-poison";
pub const UPLOADS: &str = "uploads";

/// One upload job: the blob holding the audio and what the user said about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadJob {
    pub upload_id: String,
    pub blob: String,
    pub title: String,
    pub artist: String,
}

/// A job taken from the queue, hidden from other workers until deleted or its
/// visibility lapses.
pub struct Taken {
    pub id: String,
    pub pop_receipt: String,
    pub dequeue_count: i64,
    pub text: String,
}

pub type StorageResult<T> = azure_core::Result<T>;

pub struct Storage {
    queues: QueueServiceClient,
    uploads: BlobContainerClient,
}

fn parse(url: String) -> StorageResult<Url> {
    Url::parse(&url).map_err(azure_core::Error::from)
}

/// Whether a storage error is the service saying that the thing already exists
/// (409), which creating it again may meet.
fn exists_already(e: &azure_core::Error) -> bool {
    e.http_status().map(u16::from) == Some(409)
}

impl Storage {
    pub fn new(lapis: &Lapis) -> StorageResult<Storage> {
        Ok(Storage {
            queues: QueueServiceClient::new(parse(lapis.queue_service_url())?, None, None)?,
            uploads: BlobContainerClient::new(parse(lapis.blob_container_url(UPLOADS))?, None, None)?,
        })
    }

    /// Makes the queues and the container if they are not there yet.
    pub async fn ensure(&self) -> StorageResult<()> {
        for q in [UPLOAD_JOBS, UPLOAD_JOBS_POISON] {
            match self.queues.queue_client(q)?.create(None).await {
                Ok(_) => {}
                Err(e) if exists_already(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match self.uploads.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if exists_already(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn queue(&self, name: &str) -> StorageResult<QueueClient> {
        self.queues.queue_client(name)
    }

    fn blob(&self, name: &str) -> BlobClient {
        self.uploads.blob_client(name)
    }

    /// Puts the audio in `uploads/<name>`; a retry overwrites it with the same bytes.
    pub async fn put_audio(&self, name: &str, audio: Vec<u8>) -> StorageResult<()> {
        self.blob(name).upload(RequestContent::from(audio), None).await?;
        Ok(())
    }

    pub async fn get_audio(&self, name: &str) -> StorageResult<Vec<u8>> {
        let got = self.blob(name).download(None).await?;
        Ok(got.body.collect().await?.to_vec())
    }

    pub async fn delete_audio(&self, name: &str) -> StorageResult<()> {
        match self.blob(name).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn enqueue(&self, queue: &str, text: String) -> StorageResult<()> {
        self.queue(queue)?.send_message(QueueMessage { message_text: Some(text) }.try_into()?, None).await?;
        Ok(())
    }

    /// Up to `count` messages, each hidden for `hide_secs`.
    pub async fn take(&self, queue: &str, count: i32, hide_secs: i32) -> StorageResult<Vec<Taken>> {
        let options = QueueClientReceiveMessagesOptions { number_of_messages: Some(count), visibility_timeout: Some(hide_secs), ..Default::default() };
        let items = self.queue(queue)?.receive_messages(Some(options)).await?.into_model()?.items.unwrap_or_default();
        Ok(items
            .into_iter()
            .filter_map(|m| Some(Taken { id: m.message_id?, pop_receipt: m.pop_receipt?, dequeue_count: m.dequeue_count.unwrap_or(1), text: m.message_text.unwrap_or_default() }))
            .collect())
    }

    pub async fn delete(&self, queue: &str, taken: &Taken) -> StorageResult<()> {
        self.queue(queue)?.delete_message(&taken.id, &taken.pop_receipt, None).await?;
        Ok(())
    }

    /// The texts of up to `count` messages at the front of `queue`, left in place.
    pub async fn peek(&self, queue: &str, count: i32) -> StorageResult<Vec<String>> {
        let options = azure_storage_queue::models::QueueClientPeekMessagesOptions { number_of_messages: Some(count), ..Default::default() };
        let items = self.queue(queue)?.peek_messages(Some(options)).await?.into_model()?.items.unwrap_or_default();
        Ok(items.into_iter().filter_map(|m| m.message_text).collect())
    }

    /// The queue's approximate length (for the demo's backlog chart).
    pub async fn depth(&self, queue: &str) -> StorageResult<i64> {
        use azure_storage_queue::models::QueueClientGetPropertiesResultHeaders as _;
        Ok(self.queue(queue)?.get_properties(None).await?.approximate_messages_count()?.unwrap_or(0))
    }
}

//! One function per Storage Queue operation: read parameters, call the core, encode.

use hyper::StatusCode;
use lapis_core::queue::{Created, PutOptions, QueueService};
use lapis_core::time_fmt::rfc1123;

use super::ops::QueueOp;
use super::xml;
use crate::server::HttpResponse;
use crate::storage::listing::ListEcho;
use crate::storage::response::{Reply, ResponseContext};
use crate::storage::{StorageError, StorageRequest};

pub async fn run(service: &QueueService, op: QueueOp, req: &StorageRequest, ctx: &ResponseContext) -> Result<HttpResponse, StorageError> {
    let account = req.account.as_str();
    let queue = || req.segments.first().map(String::as_str).unwrap_or("");
    let message_id = || req.segments.get(2).map(String::as_str).unwrap_or("");
    let reply = match op {
        QueueOp::ListQueues => {
            let echo = ListEcho::from_request(req)?;
            let page = service.list_queues(account, echo.prefix.unwrap_or(""), echo.marker, echo.max_results)?;
            Reply::status(StatusCode::OK).xml(xml::queue_list(&page, &echo))
        }
        QueueOp::GetServiceProperties => Reply::status(StatusCode::OK).xml(xml::service_properties(&service.service_properties(account))),
        QueueOp::SetServiceProperties => {
            let update = xml::parse_service_properties(req.body_text()?)?;
            service.set_service_properties(account, update).await?;
            Reply::status(StatusCode::ACCEPTED)
        }
        QueueOp::GetServiceStats => {
            if !req.secondary {
                return Err(StorageError::invalid_query_parameter("comp", "stats", "Service stats are only served by the secondary endpoint (<account>-secondary)."));
            }
            let now = lapis_core::Clock::now_ms(&lapis_core::SystemClock);
            Reply::status(StatusCode::OK).xml(xml::service_stats(now))
        }
        QueueOp::CreateQueue => match service.create_queue(account, queue(), req.metadata()).await? {
            Created::New => Reply::status(StatusCode::CREATED),
            Created::AlreadyExisted => Reply::status(StatusCode::NO_CONTENT),
        },
        QueueOp::DeleteQueue => {
            service.delete_queue(account, queue()).await?;
            Reply::status(StatusCode::NO_CONTENT)
        }
        QueueOp::GetMetadata => {
            let (metadata, count) = service.queue_metadata(account, queue())?;
            Reply::status(StatusCode::OK).header("x-ms-approximate-messages-count", count.to_string()).metadata(req, &metadata)
        }
        QueueOp::SetMetadata => {
            service.set_queue_metadata(account, queue(), req.metadata()).await?;
            Reply::status(StatusCode::NO_CONTENT)
        }
        QueueOp::GetAcl => Reply::status(StatusCode::OK).xml(xml::signed_identifiers(&service.queue_acl(account, queue())?)),
        QueueOp::SetAcl => {
            let acl = xml::parse_signed_identifiers(req.body_text()?)?;
            service.set_queue_acl(account, queue(), acl).await?;
            Reply::status(StatusCode::NO_CONTENT)
        }
        QueueOp::PutMessage => {
            let text = xml::parse_message_text(req.body_text()?)?
                .ok_or_else(|| StorageError::invalid_xml("Put Message needs a <QueueMessage> body"))?;
            let options = PutOptions { visibility_timeout: req.int_param("visibilitytimeout")?, ttl: req.int_param("messagettl")? };
            let receipt = service.put_message(account, queue(), text, options).await?;
            Reply::status(StatusCode::CREATED).xml(xml::put_receipt(&receipt))
        }
        QueueOp::GetMessages => {
            let list = service.get_messages(account, queue(), req.int_param("numofmessages")?, req.int_param("visibilitytimeout")?).await?;
            Reply::status(StatusCode::OK).xml(xml::messages(&list))
        }
        QueueOp::PeekMessages => {
            let list = service.peek_messages(account, queue(), req.int_param("numofmessages")?).await?;
            Reply::status(StatusCode::OK).xml(xml::messages(&list))
        }
        QueueOp::ClearMessages => {
            service.clear_messages(account, queue()).await?;
            Reply::status(StatusCode::NO_CONTENT)
        }
        QueueOp::DeleteMessage => {
            let receipt = req.param("popreceipt").ok_or_else(|| missing_parameter("popreceipt"))?;
            service.delete_message(account, queue(), message_id(), receipt).await?;
            Reply::status(StatusCode::NO_CONTENT)
        }
        QueueOp::UpdateMessage => {
            let receipt = req.param("popreceipt").ok_or_else(|| missing_parameter("popreceipt"))?;
            let text = xml::parse_message_text(req.body_text()?)?;
            let vt = Some(req.int_param("visibilitytimeout")?.ok_or_else(|| missing_parameter("visibilitytimeout"))?);
            let answer = service.update_message(account, queue(), message_id(), receipt, vt, text).await?;
            Reply::status(StatusCode::NO_CONTENT)
                .header("x-ms-popreceipt", answer.pop_receipt)
                .header("x-ms-time-next-visible", rfc1123(answer.next_visible))
        }
    };
    Ok(reply.finish(ctx))
}

fn missing_parameter(name: &str) -> StorageError {
    StorageError::new(StatusCode::BAD_REQUEST, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified.")
        .with("QueryParameterName", name)
}

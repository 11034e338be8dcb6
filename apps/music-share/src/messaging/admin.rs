//! Lapis's admin API, for what the demo sets up and watches: the Event Grid
//! subscriptions of the two handlers, and the backlog of each service (messages
//! waiting in the comments queue, events not yet delivered to a handler, the newest
//! sequence number of each partition of the plays hub).

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::lapis::{sas_token, Lapis};
use crate::http::{request, Fault, Outcome};

async fn call(lapis: &Lapis, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let (token, _) = sas_token(&format!("http://{}{path}", lapis.http_addr()), 600);
    let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.unwrap_or_default();
    let headers = [("authorization", token), ("content-type", "application/json".to_string())];
    match request(&lapis.http_addr(), method, path, &headers, &body, Duration::from_secs(30), Fault::None).await {
        Outcome::Answered { status, body } if (200..300).contains(&status) => Ok(serde_json::from_slice(&body).unwrap_or(Value::Null)),
        Outcome::Answered { status, body } => bail!("{method} {path}: {status} {}", String::from_utf8_lossy(&body)),
        Outcome::NoAnswer(why) => bail!("{method} {path}: {why}"),
    }
}

/// Subscribes the webhook at `url` to the topic's events of `event_type`, with
/// retries for as long as the demo may keep a handler down.
pub async fn subscribe_webhook(lapis: &Lapis, topic: &str, name: &str, url: &str, event_type: &str) -> anyhow::Result<()> {
    let body = json!({
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url, "maxEventsPerBatch": 10}},
        "filter": {"includedEventTypes": [event_type]},
        "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
    });
    call(lapis, "PUT", &format!("/admin/eventgrid/topics/{topic}/subscriptions/{name}"), Some(body)).await.map(|_| ())
}

/// (active, dead-lettered) messages of a Service Bus queue.
pub async fn queue_counts(lapis: &Lapis, queue: &str) -> anyhow::Result<(i64, i64)> {
    let v = call(lapis, "GET", &format!("/admin/servicebus/queues/{queue}"), None).await?;
    Ok((v["ActiveMessageCount"].as_i64().unwrap_or(0), v["DeadLetterMessageCount"].as_i64().unwrap_or(0)))
}

/// Events a subscription has matched and not yet delivered, dead-lettered or dropped.
pub async fn undelivered(lapis: &Lapis, topic: &str, subscription: &str) -> anyhow::Result<i64> {
    let v = call(lapis, "GET", &format!("/admin/eventgrid/topics/{topic}/subscriptions/{subscription}"), None).await?;
    let m = v.get("deliveryMetrics").or_else(|| v.pointer("/properties/deliveryMetrics")).context("the subscription shows no deliveryMetrics")?;
    let n = |k: &str| m[k].as_i64().unwrap_or(0);
    Ok(n("matchedEvents") - n("deliveredEvents") - n("deadLetteredEvents") - n("droppedEvents"))
}

/// The newest sequence number of each partition of a hub (-1 when empty).
pub async fn last_sequences(lapis: &Lapis, hub: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let v = call(lapis, "GET", &format!("/admin/eventhubs/hubs/{hub}"), None).await?;
    let parts = v["Partitions"].as_array().context("the hub shows no partitions")?;
    Ok(parts
        .iter()
        .map(|p| {
            let last = if p["IsEmpty"].as_bool().unwrap_or(false) { -1 } else { p["LastEnqueuedSequenceNumber"].as_i64().unwrap_or(-1) };
            (p["PartitionId"].as_str().unwrap_or_default().to_string(), last)
        })
        .collect())
}

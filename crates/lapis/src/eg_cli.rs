//! `lapis eg …`: manage the Event Grid topics (custom and namespace) and event
//! subscriptions of a running server through its admin API.

use hyper::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::admin_client::Call;
use serde_json::{json, Map, Value};

use crate::cli::{EgArgs, EgCommand, SubscriptionAction, SubscriptionFlags, TopicAction, TopicSchema};

const TOPICS: &str = "/admin/eventgrid/topics";

fn item(name: &str) -> String {
    format!("{TOPICS}/{}", utf8_percent_encode(name, NON_ALPHANUMERIC))
}

fn schema_name(schema: TopicSchema) -> &'static str {
    match schema {
        TopicSchema::Eventgrid => "EventGridSchema",
        TopicSchema::Cloudevents => "CloudEventSchemaV1_0",
    }
}

/// The subscription's properties as the admin API (and Azure's management API) names them.
fn subscription_body(f: &SubscriptionFlags) -> anyhow::Result<Value> {
    let destination = match (&f.webhook, &f.storage_queue, &f.servicebus_queue, &f.servicebus_topic, &f.event_hub) {
        _ if f.pull => {
            let mut p = Map::new();
            if let Some(s) = f.lock_seconds {
                p.insert("receiveLockDurationInSeconds".into(), json!(s));
            }
            if let Some(n) = f.max_delivery_count {
                p.insert("maxDeliveryCount".into(), json!(n));
            }
            if let Some(t) = &f.queue_event_ttl {
                p.insert("eventTimeToLive".into(), json!(t));
            }
            json!({"endpointType": "Queue", "properties": p})
        }
        (Some(url), ..) => {
            let mut p = Map::new();
            p.insert("endpointUrl".into(), json!(url));
            if let Some(n) = f.max_events_per_batch {
                p.insert("maxEventsPerBatch".into(), json!(n));
            }
            if let Some(kb) = f.preferred_batch_kb {
                p.insert("preferredBatchSizeInKilobytes".into(), json!(kb));
            }
            json!({"endpointType": "WebHook", "properties": p})
        }
        (_, Some(q), ..) => match f.queue_message_ttl {
            Some(ttl) => json!({"endpointType": "StorageQueue", "properties": {"queueName": q, "queueMessageTimeToLiveInSeconds": ttl}}),
            None => json!({"endpointType": "StorageQueue", "properties": {"queueName": q}}),
        },
        (_, _, Some(q), ..) => json!({"endpointType": "ServiceBusQueue", "properties": {"queueName": q}}),
        (_, _, _, Some(t), _) => json!({"endpointType": "ServiceBusTopic", "properties": {"topicName": t}}),
        (_, _, _, _, Some(h)) => json!({"endpointType": "EventHub", "properties": {"eventHubName": h}}),
        _ => anyhow::bail!("give a destination: --webhook, --storage-queue, --servicebus-queue, --servicebus-topic, --event-hub or --pull"),
    };
    let advanced = f.advanced_filters.iter().map(|a| serde_json::from_str::<Value>(a).map_err(|e| anyhow::anyhow!("--advanced-filter {a:?}: {e}"))).collect::<anyhow::Result<Vec<_>>>()?;
    let mut filter = json!({"isSubjectCaseSensitive": f.subject_case_sensitive, "advancedFilters": advanced, "enableAdvancedFilteringOnArrays": f.filter_arrays});
    if let Some(b) = &f.subject_begins_with {
        filter["subjectBeginsWith"] = json!(b);
    }
    if let Some(e) = &f.subject_ends_with {
        filter["subjectEndsWith"] = json!(e);
    }
    if !f.included_event_types.is_empty() {
        filter["includedEventTypes"] = json!(f.included_event_types);
    }
    let mut retry = Map::new();
    if let Some(n) = f.max_delivery_attempts {
        retry.insert("maxDeliveryAttempts".into(), json!(n));
    }
    if let Some(m) = f.event_ttl_minutes {
        retry.insert("eventTimeToLiveInMinutes".into(), json!(m));
    }
    let mut body = json!({"destination": destination, "filter": filter, "retryPolicy": retry});
    if let Some(schema) = f.delivery_schema {
        body["eventDeliverySchema"] = json!(schema_name(schema));
    }
    if let Some(c) = &f.dead_letter_container {
        body["deadLetterContainer"] = json!(c);
    }
    Ok(body)
}

fn subscription_call(topic: &str, action: SubscriptionAction) -> anyhow::Result<Call> {
    let collection = format!("{}/subscriptions", item(topic));
    let one = |name: &str| format!("{collection}/{}", utf8_percent_encode(name, NON_ALPHANUMERIC));
    Ok(match action {
        SubscriptionAction::List => Call { method: Method::GET, path: collection.clone(), body: None, condition: None },
        SubscriptionAction::Show { name } => Call { method: Method::GET, path: one(&name), body: None, condition: None },
        SubscriptionAction::Delete { name } => Call { method: Method::DELETE, path: one(&name), body: None, condition: None },
        SubscriptionAction::Create(f) => Call { method: Method::PUT, path: one(&f.name), body: Some(serde_json::to_vec(&subscription_body(&f)?)?), condition: None },
    })
}

fn topic_call(action: TopicAction) -> anyhow::Result<Call> {
    Ok(match action {
        TopicAction::List => Call { method: Method::GET, path: TOPICS.to_string(), body: None, condition: None },
        TopicAction::Show { name } => Call { method: Method::GET, path: item(&name), body: None, condition: None },
        TopicAction::Delete { name } => Call { method: Method::DELETE, path: item(&name), body: None, condition: None },
        TopicAction::Create { name, schema, namespace } => {
            let body = match namespace {
                true => serde_json::to_vec(&json!({ "Kind": "Namespace" }))?,
                false => serde_json::to_vec(&json!({ "InputSchema": schema_name(schema) }))?,
            };
            Call { method: Method::PUT, path: item(&name), body: Some(body), condition: None }
        }
    })
}

pub fn run(args: EgArgs) -> anyhow::Result<()> {
    let call = match args.command.clone() {
        EgCommand::Topic { action } => topic_call(action)?,
        EgCommand::Subscription { topic, action } => subscription_call(&topic, action)?,
    };
    crate::admin_client::perform(&args.connection, call)
}

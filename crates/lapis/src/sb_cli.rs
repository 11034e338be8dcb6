//! `lapis sb …`: manage Service Bus entities of a running server through its admin
//! API, signing each request with a shared access signature token.

use anyhow::{bail, Context};
use hyper::Method;
use lapis_core::broker::QueueProperties;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::admin_client::Call;
use crate::cli::{EntityAction, EntityFlags, RuleAction, SbArgs, SbCommand};

fn entity_call(collection: &str, action: EntityAction) -> anyhow::Result<Call> {
    let item = |name: &str| format!("{collection}/{}", utf8_percent_encode(name, NON_ALPHANUMERIC));
    let body = |flags: &EntityFlags| serde_json::to_vec(&properties(flags));
    Ok(match action {
        EntityAction::List => Call { method: Method::GET, path: collection.to_string(), body: None, condition: None },
        EntityAction::Show { name } => Call { method: Method::GET, path: item(&name), body: None, condition: None },
        EntityAction::Delete { name } => Call { method: Method::DELETE, path: item(&name), body: None, condition: None },
        EntityAction::Create(f) => Call { method: Method::PUT, path: item(&f.name), body: Some(body(&f)?), condition: Some("if-none-match") },
        EntityAction::Update(f) => Call { method: Method::PUT, path: item(&f.name), body: Some(body(&f)?), condition: Some("if-match") },
    })
}

const CORRELATION_FIELDS: [&str; 8] = ["CorrelationId", "MessageId", "To", "ReplyTo", "Label", "SessionId", "ReplyToSessionId", "ContentType"];

fn rule_call(collection: &str, action: RuleAction) -> anyhow::Result<Call> {
    Ok(match action {
        RuleAction::List => Call { method: Method::GET, path: collection.to_string(), body: None, condition: None },
        RuleAction::Remove { name } => Call { method: Method::DELETE, path: format!("{collection}/{name}"), body: None, condition: None },
        RuleAction::Add { name, sql, correlation, action } => {
            let mut rule = serde_json::Map::new();
            match (sql, correlation.is_empty()) {
                (Some(expr), _) => {
                    rule.insert("FilterType".into(), "Sql".into());
                    rule.insert("SqlFilter".into(), serde_json::json!({ "SqlExpression": expr }));
                }
                (None, false) => {
                    let mut filter = serde_json::Map::new();
                    let mut app = serde_json::Map::new();
                    for pair in &correlation {
                        let (k, v) = pair.split_once('=').with_context(|| format!("--correlation {pair:?} is not KEY=VALUE"))?;
                        match CORRELATION_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(k)) {
                            Some(field) => filter.insert(field.to_string(), v.into()),
                            None => app.insert(k.to_string(), v.into()),
                        };
                    }
                    if !app.is_empty() {
                        filter.insert("Properties".into(), app.into());
                    }
                    rule.insert("FilterType".into(), "Correlation".into());
                    rule.insert("CorrelationFilter".into(), filter.into());
                }
                (None, true) => bail!("a rule needs --sql or at least one --correlation"),
            }
            if let Some(expr) = action {
                rule.insert("Action".into(), serde_json::json!({ "SqlExpression": expr }));
            }
            let body = serde_json::to_vec(&serde_json::Value::Object(rule))?;
            Call { method: Method::PUT, path: format!("{collection}/{name}"), body: Some(body), condition: None }
        }
    })
}

pub fn run(args: SbArgs) -> anyhow::Result<()> {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let call = match args.command.clone() {
        SbCommand::Queue { action } => entity_call("/admin/servicebus/queues", action)?,
        SbCommand::Topic { action } => entity_call("/admin/servicebus/topics", action)?,
        SbCommand::Subscription { topic, action } => entity_call(&format!("/admin/servicebus/topics/{}/subscriptions", enc(&topic)), action)?,
        SbCommand::Rule { topic, subscription, action } => {
            rule_call(&format!("/admin/servicebus/topics/{}/subscriptions/{}/rules", enc(&topic), enc(&subscription)), action)?
        }
    };
    crate::admin_client::perform(&args.connection, call)
}

fn properties(f: &EntityFlags) -> QueueProperties {
    QueueProperties {
        lock_duration: f.lock_duration.clone(),
        max_delivery_count: f.max_delivery_count,
        default_message_time_to_live: f.default_message_ttl.clone(),
        dead_lettering_on_message_expiration: f.dead_letter_on_expiration,
        requires_session: f.requires_session,
        requires_duplicate_detection: f.duplicate_detection_window.as_ref().map(|_| true),
        duplicate_detection_history_time_window: f.duplicate_detection_window.clone(),
        max_size_in_megabytes: f.max_size_mb,
        max_message_size_in_kilobytes: f.max_message_kb,
        forward_to: f.forward_to.clone(),
        forward_dead_lettered_messages_to: f.forward_dead_lettered_to.clone(),
    }
}

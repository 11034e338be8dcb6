//! `lapis eg …`: manage the Event Grid topics of a running server through its admin API.

use hyper::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::admin_client::Call;
use crate::cli::{EgArgs, EgCommand, TopicAction, TopicSchema};

const TOPICS: &str = "/admin/eventgrid/topics";

fn item(name: &str) -> String {
    format!("{TOPICS}/{}", utf8_percent_encode(name, NON_ALPHANUMERIC))
}

fn topic_call(action: TopicAction) -> anyhow::Result<Call> {
    Ok(match action {
        TopicAction::List => Call { method: Method::GET, path: TOPICS.to_string(), body: None, condition: None },
        TopicAction::Show { name } => Call { method: Method::GET, path: item(&name), body: None, condition: None },
        TopicAction::Delete { name } => Call { method: Method::DELETE, path: item(&name), body: None, condition: None },
        TopicAction::Create { name, schema } => {
            let schema = match schema {
                TopicSchema::Eventgrid => "EventGridSchema",
                TopicSchema::Cloudevents => "CloudEventSchemaV1_0",
            };
            let body = serde_json::to_vec(&serde_json::json!({ "InputSchema": schema }))?;
            Call { method: Method::PUT, path: item(&name), body: Some(body), condition: None }
        }
    })
}

pub fn run(args: EgArgs) -> anyhow::Result<()> {
    let call = match args.command.clone() {
        EgCommand::Topic { action } => topic_call(action)?,
    };
    crate::admin_client::perform(&args.connection, call)
}

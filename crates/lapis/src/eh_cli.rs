//! `lapis eh …`: manage the event hubs of a running server through its admin API.

use hyper::Method;
use lapis_core::stream::{GroupDecl, HubProperties};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::admin_client::Call;
use crate::cli::{EhArgs, EhCommand, GroupAction, HubAction, HubFlags};

const HUBS: &str = "/admin/eventhubs/hubs";

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn properties(f: &HubFlags) -> HubProperties {
    HubProperties {
        partition_count: f.partitions,
        retention_time_in_hours: f.retention_hours,
        max_partition_size_in_megabytes: f.max_partition_mb,
        consumer_groups: (!f.consumer_groups.is_empty()).then(|| f.consumer_groups.iter().map(|g| GroupDecl { name: g.clone() }).collect()),
    }
}

fn get(path: String) -> Call {
    Call { method: Method::GET, path, body: None, condition: None }
}

fn hub_call(action: HubAction) -> anyhow::Result<Call> {
    let put = |f: &HubFlags, condition| -> anyhow::Result<Call> {
        Ok(Call { method: Method::PUT, path: format!("{HUBS}/{}", enc(&f.name)), body: Some(serde_json::to_vec(&properties(f))?), condition: Some(condition) })
    };
    Ok(match action {
        HubAction::List => get(HUBS.to_string()),
        HubAction::Show { name } => get(format!("{HUBS}/{}", enc(&name))),
        HubAction::Delete { name } => Call { method: Method::DELETE, path: format!("{HUBS}/{}", enc(&name)), body: None, condition: None },
        HubAction::Create(f) => put(&f, "if-none-match")?,
        HubAction::Update(f) => put(&f, "if-match")?,
    })
}

fn group_call(hub: &str, action: GroupAction) -> Call {
    let collection = format!("{HUBS}/{}/consumergroups", enc(hub));
    match action {
        GroupAction::List => get(collection),
        GroupAction::Add { name } => Call { method: Method::PUT, path: format!("{collection}/{}", enc(&name)), body: None, condition: None },
        GroupAction::Delete { name } => Call { method: Method::DELETE, path: format!("{collection}/{}", enc(&name)), body: None, condition: None },
    }
}

pub fn run(args: EhArgs) -> anyhow::Result<()> {
    let call = match args.command.clone() {
        EhCommand::Hub { action } => hub_call(action)?,
        EhCommand::Group { hub, action } => group_call(&hub, action),
    };
    crate::admin_client::perform(&args.connection, call)
}

//! The Lapis server of the shared test support (`../rust-support/lapis_server.rs`),
//! with what the Service Bus tests add: queue counts from the admin API and a
//! Service Bus emulator `Config.json`.

#[path = "../../rust-support/lapis_server.rs"]
mod shared;

pub use shared::{bounded, lapis_bin, Server};

impl Server {
    /// The admin API's view of a queue (`ActiveMessageCount`, `DeadLetterMessageCount`, …).
    pub fn queue_info(&self, queue: &str) -> serde_json::Value {
        let path = format!("/admin/servicebus/queues/{queue}");
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let token = crate::sas::token_valid_for(&url, 3600);
        let (status, body) = shared::http(self.http_port, "GET", &path, &[("Authorization", &token)]).expect("admin API answers");
        assert_eq!(status, 200, "admin GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("admin GET {path}: {e}: {body}"))
    }

    /// `ActiveMessageCount` of a queue.
    pub fn active_count(&self, queue: &str) -> u64 {
        self.queue_info(queue)["ActiveMessageCount"].as_u64().expect("ActiveMessageCount")
    }
}

/// An emulator `Config.json` with these queues, each `(name, properties)`.
pub fn config(queues: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let queues: Vec<serde_json::Value> = queues.iter().map(|(name, props)| serde_json::json!({ "Name": name, "Properties": props })).collect();
    serde_json::json!({
        "UserConfig": {
            "Namespaces": [{ "Name": "sbemulatorns", "Queues": queues, "Topics": [] }]
        }
    })
}

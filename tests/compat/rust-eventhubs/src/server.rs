//! The Lapis server of the shared test support (`../rust-support/lapis_server.rs`),
//! with what the Event Hubs tests add: the emulator-style connection string and an
//! Event Hubs emulator `Config.json`.

#[path = "../../rust-support/lapis_server.rs"]
mod shared;

pub use shared::{bounded, lapis_bin, Server};

impl Server {
    /// The emulator-style connection string for `hub`, signed with `key`.
    pub fn connection_string(&self, hub: &str, key: &str) -> String {
        format!(
            "Endpoint=sb://localhost:{};SharedAccessKeyName={};SharedAccessKey={key};UseDevelopmentEmulator=true;EntityPath={hub}",
            self.amqp_port,
            crate::KEY_NAME
        )
    }
}

/// The Event Hubs emulator's `Config.json` declaring `hubs` (each an `Entities[]` item).
pub fn config(hubs: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "UserConfig": {
            "NamespaceConfig": [{ "Type": "EventHub", "Name": "emulatorNs1", "Entities": hubs }],
            "LoggingConfig": { "Type": "File" }
        }
    })
}

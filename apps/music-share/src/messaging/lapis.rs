//! Where Lapis is and how the app signs in to it: the ports of its four services and
//! the shared access signatures each client library takes — an account SAS in the
//! storage URLs (the Rust storage crates have no Shared Key credential) and a
//! Service Bus / Event Hubs SAS token for AMQP's claims-based security.
//!
//! The simulator signs with the development keys Lapis accepts on loopback. A real
//! app would hand its phones narrower, short-lived tokens from its API at sign-in;
//! the calls that use them are the same.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The development storage account Lapis serves by default.
pub const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The Service Bus / Event Hubs emulator key Lapis accepts on loopback.
pub const SAS_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const SAS_KEY: &str = "SAS_KEY_VALUE";
/// The key of the app's Event Grid topic, declared in the config file the demo
/// gives Lapis (Event Grid keys are 44 base64 characters).
pub const TOPIC_KEY: &str = "bXVzaWMtc2hhcmUtdHJhY2tzLXRvcGljLWtleS0wMDE=";
const SAS_VERSION: &str = "2021-12-02";

/// Lapis's address and ports.
#[derive(Debug, Clone, clap::Args)]
pub struct Lapis {
    #[arg(long = "lapis-host", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 10001)]
    pub queue_port: u16,
    #[arg(long, default_value_t = 10000)]
    pub blob_port: u16,
    #[arg(long, default_value_t = 5672)]
    pub amqp_port: u16,
    /// Event Grid and the admin API.
    #[arg(long, default_value_t = 5300)]
    pub http_port: u16,
}

fn hmac_b64(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Percent-encodes all but the unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn iso(t: time::OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).expect("a UTC time formats")
}

impl Lapis {
    /// An account SAS for `services` (`q`, `b`) with every permission, valid a day.
    fn account_sas(&self, services: &str) -> String {
        let now = time::OffsetDateTime::now_utc();
        let (st, se) = (iso(now - time::Duration::minutes(5)), iso(now + time::Duration::days(1)));
        let sp = "rwdlacup";
        let srt = "sco";
        let to_sign = format!("{ACCOUNT}\n{sp}\n{services}\n{srt}\n{st}\n{se}\n\n\n{SAS_VERSION}\n\n");
        let key = B64.decode(ACCOUNT_KEY).expect("the development key is base64");
        let sig = hmac_b64(&key, &to_sign);
        format!("sv={SAS_VERSION}&ss={services}&srt={srt}&sp={sp}&st={}&se={}&sig={}", encode(&st), encode(&se), encode(&sig))
    }

    /// `http://host:port/devstoreaccount1?<sas>`: what the storage crates take.
    pub fn queue_service_url(&self) -> String {
        format!("http://{}:{}/{ACCOUNT}?{}", self.host, self.queue_port, self.account_sas("q"))
    }

    pub fn blob_container_url(&self, container: &str) -> String {
        format!("http://{}:{}/{ACCOUNT}/{container}?{}", self.host, self.blob_port, self.account_sas("b"))
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://{}:{}", self.host, self.amqp_port)
    }

    pub fn topic_url(&self, topic: &str) -> String {
        format!("http://{}:{}/topics/{topic}/api/events?api-version=2018-01-01", self.host, self.http_port)
    }

    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.host, self.http_port)
    }
}

/// `SharedAccessSignature sr=…&sig=…&se=…&skn=…` for `resource`, valid for `secs`.
pub fn sas_token(resource: &str, secs: u64) -> (String, u64) {
    let expiry = unix_now() + secs;
    let sr = encode(resource);
    let sig = encode(&hmac_b64(SAS_KEY.as_bytes(), &format!("{sr}\n{expiry}")));
    (format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={SAS_KEY_NAME}"), expiry)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_signs_the_encoded_resource_and_expiry() {
        let (t, expiry) = super::sas_token("sb://localhost/comments", 60);
        assert!(t.starts_with("SharedAccessSignature sr=sb%3A%2F%2Flocalhost%2Fcomments&sig="), "{t}");
        assert!(t.ends_with(&format!("&se={expiry}&skn=RootManageSharedAccessKey")), "{t}");
    }
}

//! Service Bus shared access signatures, as the Azure SDKs make them:
//!
//! `SharedAccessSignature sr=<enc resource>&sig=<enc base64 HMAC-SHA256>&se=<expiry>&skn=<key name>`
//!
//! where the HMAC key is the ASCII of the key (not base64-decoded) and the signed
//! string is `<enc resource>\n<expiry unix seconds>`. `enc` is percent-encoding of
//! everything but `A-Z a-z 0-9 - _ . ~` (Python's `quote(s, safe='')`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// The Service Bus emulator's well-known key, accepted by Lapis on loopback.
pub const DEV_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const DEV_KEY: &str = "SAS_KEY_VALUE";

const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn token(resource: &str, key_name: &str, key: &str, expires_at_secs: u64) -> String {
    let sr = utf8_percent_encode(resource, ENCODE).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{sr}\n{expires_at_secs}").as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    let sig = utf8_percent_encode(&sig, ENCODE);
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expires_at_secs}&skn={key_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_token_made_by_python_hmac_and_quote() {
        // python3: sr = quote('sb://127.0.0.1:5672/q1', safe=''); sig = b64(hmac(b'SAS_KEY_VALUE',
        // f'{sr}\n2000000000', sha256)); quote(sig, safe='')
        let want = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5672%2Fq1\
                    &sig=K2qln1bxuGxid3gJhuzHhCqKJrRR1PZGHtAICZasRFY%3D&se=2000000000&skn=RootManageSharedAccessKey";
        assert_eq!(token("sb://127.0.0.1:5672/q1", DEV_KEY_NAME, DEV_KEY, 2_000_000_000), want);
    }
}

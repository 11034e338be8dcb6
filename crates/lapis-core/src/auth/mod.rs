//! Who may do what: storage accounts and their keys, HMAC signatures, and the rules of
//! shared access signatures. Adapters build the string to sign from their wire format;
//! everything about keys, permissions and validity windows is decided here.

mod accounts;
pub mod sas;
pub mod eventgrid_sas;
pub mod sas_token;

pub use accounts::{Accounts, AccountsError, DEV_ACCOUNT, DEV_ACCOUNT_KEY};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Base64 HMAC-SHA256 of `string_to_sign` under `key`, as every Azure storage
/// signature is computed.
pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Whether `signature` matches `string_to_sign` under any of `keys`, compared in
/// constant time.
pub fn verify_any(keys: &[Vec<u8>], string_to_sign: &str, signature: &str) -> bool {
    let Ok(provided) = B64.decode(signature.trim()) else { return false };
    keys.iter().any(|key| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&provided).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vector() {
        let key = B64.decode(DEV_ACCOUNT_KEY).unwrap();
        let sts = format!(
            "PUT{}x-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/myqueue",
            "\n".repeat(12)
        );
        assert_eq!(sign(&key, &sts), "QaK4Z408bHZfUvHk41AJJd2460j1kCiZaZsw1LbWZf8=");
        assert!(verify_any(&[b"other".to_vec(), key], &sts, "QaK4Z408bHZfUvHk41AJJd2460j1kCiZaZsw1LbWZf8="));
    }
}

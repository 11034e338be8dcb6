//! The storage accounts a server knows, with their keys.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// The well-known development account every storage emulator accepts.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (public; only ever accepted on loopback, see the binary).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountsError {
    #[error("account spec {0:?} is not NAME:BASE64KEY")]
    BadSpec(String),
    #[error("account name {0:?} must be 3-24 lowercase letters and digits")]
    BadName(String),
    #[error("the key of account {0:?} is not valid base64")]
    BadKey(String),
}

/// Accounts by name; each has one or two keys (key rotation).
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    keys: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Accounts {
    /// Only the development account.
    pub fn with_dev_account() -> Self {
        let mut a = Accounts::default();
        a.insert(DEV_ACCOUNT, DEV_ACCOUNT_KEY).expect("the well-known key is valid");
        a
    }

    /// Adds an account from `NAME:BASE64KEY`; a second spec for the same name adds a
    /// second key.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), AccountsError> {
        let (name, key) = spec.split_once(':').ok_or_else(|| AccountsError::BadSpec(spec.to_string()))?;
        self.insert(name, key)
    }

    fn insert(&mut self, name: &str, key_b64: &str) -> Result<(), AccountsError> {
        let valid = (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(AccountsError::BadName(name.to_string()));
        }
        let key = B64.decode(key_b64.trim()).map_err(|_| AccountsError::BadKey(name.to_string()))?;
        self.keys.entry(name.to_string()).or_default().push(key);
        Ok(())
    }

    pub fn keys(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.keys.get(name).map(|k| k.as_slice())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(|s| s.as_str())
    }

    /// Whether any account other than the development one is configured.
    pub fn has_custom(&self) -> bool {
        self.keys.keys().any(|n| n != DEV_ACCOUNT)
    }

    /// Removes the development account (used when serving beyond loopback).
    pub fn without_dev_account(mut self) -> Self {
        self.keys.remove(DEV_ACCOUNT);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let mut a = Accounts::with_dev_account();
        a.add_spec("acct2:a2V5").unwrap();
        assert_eq!(a.keys("acct2").unwrap(), &[b"key".to_vec()]);
        assert!(a.has_custom());
        assert_eq!(a.add_spec("nokey"), Err(AccountsError::BadSpec("nokey".into())));
        assert_eq!(a.add_spec("UPPER:a2V5"), Err(AccountsError::BadName("UPPER".into())));
        assert_eq!(a.add_spec("acct3:!!"), Err(AccountsError::BadKey("acct3".into())));
    }
}

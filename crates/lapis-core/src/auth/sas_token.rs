//! Service Bus / Event Hubs shared access signature tokens:
//! `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded signature>&se=<unix seconds>&skn=<key name>`,
//! signed with HMAC-SHA256 over `<sr as sent>\n<se>` using the key's text (not
//! base64-decoded). Used by CBS put-token and by the admin API.

use std::collections::BTreeMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use super::{sign, verify_any};
use crate::clock::Millis;

/// The development key pair every Service Bus emulator accepts (loopback only).
pub const DEV_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const DEV_KEY: &str = "SAS_KEY_VALUE";

/// Named keys (`skn` → key text).
#[derive(Debug, Clone, Default)]
pub struct SasKeys {
    keys: BTreeMap<String, String>,
}

impl SasKeys {
    pub fn with_dev_key() -> Self {
        let mut k = SasKeys::default();
        k.insert(DEV_KEY_NAME, DEV_KEY);
        k
    }

    pub fn insert(&mut self, name: &str, key: &str) {
        self.keys.insert(name.to_string(), key.to_string());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(String::as_str)
    }

    pub fn has_custom(&self) -> bool {
        self.keys.iter().any(|(n, k)| n != DEV_KEY_NAME || k != DEV_KEY)
    }

    pub fn without_dev_key(mut self) -> Self {
        if self.get(DEV_KEY_NAME) == Some(DEV_KEY) {
            self.keys.remove(DEV_KEY_NAME);
        }
        self
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The decoded resource URI, e.g. `sb://localhost/queue1`.
    pub resource: String,
    pub expires_at: Millis,
    pub key_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a SharedAccessSignature")]
    NotSas,
    #[error("the token lacks its {0} field")]
    Missing(&'static str),
    #[error("the token's expiry is not a number")]
    BadExpiry,
    #[error("the token expired")]
    Expired,
    #[error("the token names an unknown key {0:?}")]
    UnknownKey(String),
    #[error("the token's signature does not match")]
    BadSignature,
}

/// Builds a token for `resource` valid until `expires_at_secs`.
pub fn generate(resource: &str, key_name: &str, key: &str, expires_at_secs: i64) -> String {
    let sr = utf8_percent_encode(resource, NON_ALPHANUMERIC).to_string();
    let sig = sign(key.as_bytes(), &format!("{sr}\n{expires_at_secs}"));
    let sig = utf8_percent_encode(&sig, NON_ALPHANUMERIC);
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expires_at_secs}&skn={key_name}")
}

/// Verifies `token` against `keys` at `now`.
pub fn verify(token: &str, keys: &SasKeys, now: Millis) -> Result<TokenClaims, TokenError> {
    let body = token.trim().strip_prefix("SharedAccessSignature ").ok_or(TokenError::NotSas)?;
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for pair in body.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            fields.insert(k, v);
        }
    }
    let raw_sr = *fields.get("sr").ok_or(TokenError::Missing("sr"))?;
    let raw_sig = *fields.get("sig").ok_or(TokenError::Missing("sig"))?;
    let se = *fields.get("se").ok_or(TokenError::Missing("se"))?;
    let skn = *fields.get("skn").ok_or(TokenError::Missing("skn"))?;
    let expires_at = se.parse::<i64>().map_err(|_| TokenError::BadExpiry)?.saturating_mul(1000);
    let key = keys.get(skn).ok_or_else(|| TokenError::UnknownKey(skn.to_string()))?;
    let signature = percent_decode_str(raw_sig).decode_utf8_lossy();
    // Clients sign the resource exactly as they put it in `sr`; encodings differ
    // (Python quote_plus, .NET Uri.EscapeDataString), so the signed text is the raw one.
    if !verify_any(&[key.as_bytes().to_vec()], &format!("{raw_sr}\n{se}"), &signature) {
        return Err(TokenError::BadSignature);
    }
    if expires_at <= now {
        return Err(TokenError::Expired);
    }
    Ok(TokenClaims { resource: percent_decode_str(raw_sr).decode_utf8_lossy().into_owned(), expires_at, key_name: skn.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_verify_and_tampering_fails() {
        let keys = SasKeys::with_dev_key();
        let token = generate("sb://localhost/queue1", DEV_KEY_NAME, DEV_KEY, 2_000_000_000);
        let claims = verify(&token, &keys, 1_000_000_000_000).unwrap();
        assert_eq!(claims.resource, "sb://localhost/queue1");
        assert_eq!(claims.expires_at, 2_000_000_000_000);
        assert_eq!(verify(&token, &keys, 2_000_000_000_000), Err(TokenError::Expired));
        let tampered = token.replace("queue1", "queue2");
        assert_eq!(verify(&tampered, &keys, 0), Err(TokenError::BadSignature));
        let other = generate("sb://localhost/", "other", "k", 2_000_000_000);
        assert_eq!(verify(&other, &keys, 0), Err(TokenError::UnknownKey("other".into())));
        assert_eq!(verify("Bearer x", &keys, 0), Err(TokenError::NotSas));
    }

    #[test]
    fn python_style_quote_plus_encoding_verifies() {
        // Python signs quote_plus(uri): ':' and '/' escaped, as here.
        let sr = "sb%3A%2F%2Flocalhost%2Fqueue1";
        let sig = sign(DEV_KEY.as_bytes(), &format!("{sr}\n2000000000"));
        let token = format!(
            "SharedAccessSignature sr={sr}&sig={}&se=2000000000&skn={DEV_KEY_NAME}",
            utf8_percent_encode(&sig, NON_ALPHANUMERIC)
        );
        assert!(verify(&token, &SasKeys::with_dev_key(), 0).is_ok());
    }
}

//! Shared Key signing for the Azure Storage Queue REST protocol.
//!
//! StringToSign = VERB \n Content-Encoding \n Content-Language \n Content-Length
//! \n Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
//! If-None-Match \n If-Unmodified-Since \n Range \n CanonicalizedHeaders
//! CanonicalizedResource. Content-Length is "" when 0. CanonicalizedResource is
//! "/" + account + the URL path as sent (so path-style URLs carry the account
//! twice), then "\nname:decoded-value" per query parameter, names lowercased and
//! sorted.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The well-known emulator account and its key (the default credentials).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone)]
pub struct Signer {
    account: String,
    mac: HmacSha256,
}

impl Signer {
    pub fn new(account: &str, key_b64: &str) -> Result<Self, String> {
        let key = B64
            .decode(key_b64)
            .map_err(|e| format!("account key is not base64: {e}"))?;
        let mac = HmacSha256::new_from_slice(&key).map_err(|e| e.to_string())?;
        Ok(Signer { account: account.to_string(), mac })
    }

    /// Build the StringToSign.
    ///
    /// * `content_length`: body length; 0 is signed as the empty string.
    /// * `ms_headers`: every `x-ms-*` header sent (name, value); any order.
    /// * `path`: the URL path exactly as sent, e.g. `/devstoreaccount1/q/messages`.
    /// * `query`: query parameters as (name, decoded value).
    pub fn string_to_sign(
        &self,
        verb: &str,
        content_length: usize,
        content_type: &str,
        ms_headers: &[(&str, &str)],
        path: &str,
        query: &[(&str, &str)],
    ) -> String {
        let mut s = String::with_capacity(256);
        s.push_str(verb);
        s.push('\n');
        s.push('\n'); // Content-Encoding
        s.push('\n'); // Content-Language
        if content_length > 0 {
            s.push_str(&content_length.to_string());
        }
        s.push('\n');
        s.push('\n'); // Content-MD5
        s.push_str(content_type);
        s.push('\n');
        // Date, If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range
        s.push_str("\n\n\n\n\n\n");

        let mut hs: Vec<(String, &str)> = ms_headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), *v))
            .filter(|(n, _)| n.starts_with("x-ms-"))
            .collect();
        hs.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, v) in hs {
            s.push_str(&n);
            s.push(':');
            s.push_str(v.trim_start());
            s.push('\n');
        }

        s.push('/');
        s.push_str(&self.account);
        s.push_str(path);
        let mut qs: Vec<(String, &str)> =
            query.iter().map(|(n, v)| (n.to_ascii_lowercase(), *v)).collect();
        qs.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, v) in qs {
            s.push('\n');
            s.push_str(&n);
            s.push(':');
            s.push_str(v);
        }
        s
    }

    pub fn signature(&self, string_to_sign: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// The full `Authorization` header value.
    pub fn authorization(&self, string_to_sign: &str) -> String {
        format!("SharedKey {}:{}", self.account, self.signature(string_to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_signer() -> Signer {
        Signer::new(DEV_ACCOUNT, DEV_KEY).unwrap()
    }

    /// Test vector of the wire reference, §2.1 (create queue, path-style URL).
    #[test]
    fn reference_vector_create_queue() {
        let s = dev_signer();
        let sts = s.string_to_sign(
            "PUT",
            0,
            "",
            &[
                ("x-ms-version", "2021-12-02"),
                ("x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            "/devstoreaccount1/myqueue",
            &[],
        );
        let expected = format!(
            "PUT{}x-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/myqueue",
            "\n".repeat(12)
        );
        assert_eq!(sts, expected);
        assert_eq!(s.signature(&sts), "QaK4Z408bHZfUvHk41AJJd2460j1kCiZaZsw1LbWZf8=");
        assert_eq!(
            s.authorization(&sts),
            "SharedKey devstoreaccount1:QaK4Z408bHZfUvHk41AJJd2460j1kCiZaZsw1LbWZf8="
        );
    }

    #[test]
    fn query_parameters_sorted_lowercased_decoded() {
        let s = dev_signer();
        let sts = s.string_to_sign(
            "DELETE",
            0,
            "",
            &[],
            "/devstoreaccount1/q/messages/abc",
            &[("popreceipt", "AQ+/=="), ("Timeout", "30")],
        );
        assert!(sts.ends_with(
            "/devstoreaccount1/devstoreaccount1/q/messages/abc\npopreceipt:AQ+/==\ntimeout:30"
        ));
    }

    #[test]
    fn content_length_signed_when_nonzero() {
        let s = dev_signer();
        let sts = s.string_to_sign("POST", 1061, "application/xml", &[], "/a/q/messages", &[]);
        assert!(sts.starts_with("POST\n\n\n1061\n\napplication/xml\n"));
    }
}

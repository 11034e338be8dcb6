//! Authenticating storage requests: Shared Key and Shared Key Lite (string to sign
//! built from the HTTP request here, verified by the core), then account SAS and
//! service SAS from the query string.

use lapis_core::auth::sas::{self, BlobTarget, PolicyFields, SasNeeds, SasParams, SasRequest};
use lapis_core::auth::{verify_any, Accounts};
use lapis_core::clock::Millis;
use lapis_core::time_fmt;

use super::error::StorageError;
use super::request::StorageRequest;

/// How far a Shared Key request's date may be from the server's clock.
const MAX_CLOCK_SKEW_MS: Millis = 15 * 60 * 1000;

/// The SAS scope of the resource a request addresses.
pub enum SasScope<'a> {
    /// Only account SAS apply (service-level operations).
    AccountOnly,
    /// A queue: its SAS may name one of its stored access policies.
    Queue { name: &'a str, policy: &'a dyn Fn(&str) -> Option<PolicyFields> },
    /// A blob container, or a blob in it.
    Blob(BlobTarget<'a>),
}

fn header_or_empty<'a>(req: &'a StorageRequest, name: &str) -> &'a str {
    req.header(name).unwrap_or("")
}

/// `x-ms-*` headers, lowercased and sorted, as `name:value\n`.
fn canonicalized_headers(req: &StorageRequest) -> String {
    let mut names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("x-ms-")).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let values: Vec<&str> = req.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::trim).collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

fn canonicalized_resource(req: &StorageRequest, account_in_path: &str) -> String {
    let mut out = format!("/{account_in_path}{}", req.raw_path);
    for (name, values) in &req.query {
        out.push('\n');
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

fn shared_key_string(req: &StorageRequest, account_in_path: &str, date: &str) -> String {
    let content_length = match header_or_empty(req, "content-length") {
        "0" => "",
        other => other,
    };
    let fields = [
        req.method.as_str(),
        header_or_empty(req, "content-encoding"),
        header_or_empty(req, "content-language"),
        content_length,
        header_or_empty(req, "content-md5"),
        header_or_empty(req, "content-type"),
        date,
        header_or_empty(req, "if-modified-since"),
        header_or_empty(req, "if-match"),
        header_or_empty(req, "if-none-match"),
        header_or_empty(req, "if-unmodified-since"),
        header_or_empty(req, "range"),
    ];
    format!("{}\n{}{}", fields.join("\n"), canonicalized_headers(req), canonicalized_resource(req, account_in_path))
}

fn shared_key_lite_string(req: &StorageRequest, account_in_path: &str, date: &str) -> String {
    let mut resource = format!("/{account_in_path}{}", req.raw_path);
    if let Some(comp) = req.param("comp") {
        resource.push_str("?comp=");
        resource.push_str(comp);
    }
    format!(
        "{}\n{}\n{}\n{date}\n{}{resource}",
        req.method.as_str(),
        header_or_empty(req, "content-md5"),
        header_or_empty(req, "content-type"),
        canonicalized_headers(req),
    )
}

fn check_request_date(req: &StorageRequest, now: Millis) -> Result<(), StorageError> {
    let Some(text) = req.header("x-ms-date").or_else(|| req.header("date")) else {
        return Err(StorageError::authentication_failed("Request date header not specified."));
    };
    let Some(date) = time_fmt::parse_rfc1123(text) else {
        return Err(StorageError::authentication_failed(format!("The date header {text:?} is not a valid RFC 1123 date.")));
    };
    if (date - now).abs() > MAX_CLOCK_SKEW_MS {
        return Err(StorageError::authentication_failed(format!("Request date header {text:?} is too far from the server's time.")));
    }
    Ok(())
}

fn authenticate_shared_key(req: &StorageRequest, accounts: &Accounts, authorization: &str, now: Millis) -> Result<(), StorageError> {
    let (scheme, credential) = authorization.split_once(' ').unwrap_or((authorization, ""));
    let lite = match scheme {
        "SharedKey" => false,
        "SharedKeyLite" => true,
        "Bearer" => return Err(StorageError::authentication_failed("Authentication scheme Bearer is not allowed with HTTP.")),
        other => return Err(StorageError::authentication_failed(format!("Authentication scheme {other} is not supported."))),
    };
    let (account, signature) = credential
        .trim()
        .split_once(':')
        .ok_or_else(|| StorageError::authentication_failed("The Authorization header is not account:signature."))?;
    if account != req.account {
        return Err(StorageError::authentication_failed(format!("The account {account:?} in the Authorization header is not the account addressed.")));
    }
    let keys = accounts.keys(account).ok_or_else(|| StorageError::authentication_failed(format!("No account named {account:?}.")))?;
    check_request_date(req, now)?;
    let primary = req.account.clone();
    let secondary = format!("{}-secondary", req.account);
    let path_accounts: &[&str] = if req.secondary { &[&secondary, &primary] } else { &[&primary] };
    // Clients sign `Date` as sent, but those that also send `x-ms-date` usually sign an
    // empty `Date`; both are accepted.
    let dates: &[&str] = match req.header("date") {
        Some(d) => &[d, ""],
        None => &[""],
    };
    let mut last = String::new();
    for path_account in path_accounts {
        for date in dates {
            let sts = if lite { shared_key_lite_string(req, path_account, date) } else { shared_key_string(req, path_account, date) };
            if verify_any(keys, &sts, signature) {
                return Ok(());
            }
            last = sts;
        }
    }
    Err(StorageError::authentication_failed(format!(
        "The MAC signature found in the HTTP request '{signature}' is not the same as any computed signature. Server used following string to sign: '{last}'."
    )))
}

/// Authenticates `req` for an operation that needs `needs` from a SAS.
pub fn authenticate(req: &StorageRequest, accounts: &Accounts, needs: SasNeeds, scope: SasScope<'_>, now: Millis) -> Result<(), StorageError> {
    if let Some(authorization) = req.header("authorization") {
        return authenticate_shared_key(req, accounts, authorization, now);
    }
    let get = |name: &str| req.param(name).map(str::to_string);
    let Some(params) = SasParams::from_query(get) else {
        return Err(StorageError::authentication_failed("No Authorization header and no shared access signature."));
    };
    let keys = accounts
        .keys(&req.account)
        .ok_or_else(|| StorageError::authentication_failed(format!("No account named {:?}.", req.account)))?;
    // Lapis serves plain HTTP; a SAS restricted to HTTPS is refused as Azure would.
    let sas_request = SasRequest { account: &req.account, keys, needs, now, is_https: false };
    if params.is_account_sas() {
        return Ok(sas::check_account_sas(&params, sas_request)?);
    }
    match scope {
        SasScope::AccountOnly => Err(StorageError::from(sas::SasError::PermissionMismatch)),
        SasScope::Queue { name, policy } => {
            let stored = params.si.as_deref().and_then(policy);
            Ok(sas::check_queue_sas(&params, sas_request, name, stored.as_ref())?)
        }
        SasScope::Blob(target) => Ok(sas::check_blob_sas(&params, sas_request, target)?),
    }
}

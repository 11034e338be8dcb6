//! Shared access signatures: which fields they carry, the strings they sign, and
//! whether one grants a given operation now.
//!
//! Account SAS (`ss`/`srt` present) grant across an account. Service SAS are scoped
//! to one queue, or to one blob container (`sr=c`) or blob (`sr=b`); a queue SAS may
//! take its window and permissions from a stored access policy (`si`).

use crate::clock::Millis;
use crate::time_fmt::parse_iso8601;

use super::verify_any;

/// The SAS fields of a request's query string. Values are URL-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SasParams {
    pub sv: Option<String>,
    pub ss: Option<String>,
    pub srt: Option<String>,
    pub sp: Option<String>,
    pub st: Option<String>,
    pub se: Option<String>,
    pub sip: Option<String>,
    pub spr: Option<String>,
    pub ses: Option<String>,
    pub si: Option<String>,
    /// Blob service SAS: the signed resource, `c` (container) or `b` (blob).
    pub sr: Option<String>,
    /// Blob service SAS: response header overrides (Cache-Control,
    /// Content-Disposition, Content-Encoding, Content-Language, Content-Type).
    pub rscc: Option<String>,
    pub rscd: Option<String>,
    pub rsce: Option<String>,
    pub rscl: Option<String>,
    pub rsct: Option<String>,
    pub sig: String,
}

impl SasParams {
    /// Reads the SAS fields through `get`; `None` when there is no signature at all.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Option<SasParams> {
        Some(SasParams {
            sig: get("sig")?,
            sv: get("sv"),
            ss: get("ss"),
            srt: get("srt"),
            sp: get("sp"),
            st: get("st"),
            se: get("se"),
            sip: get("sip"),
            spr: get("spr"),
            ses: get("ses"),
            si: get("si"),
            sr: get("sr"),
            rscc: get("rscc"),
            rscd: get("rscd"),
            rsce: get("rsce"),
            rscl: get("rscl"),
            rsct: get("rsct"),
        })
    }

    pub fn is_account_sas(&self) -> bool {
        self.ss.is_some() || self.srt.is_some()
    }
}

/// The level of the storage hierarchy an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Service,
    Container,
    Object,
}

impl ResourceType {
    fn code(self) -> char {
        match self {
            ResourceType::Service => 's',
            ResourceType::Container => 'c',
            ResourceType::Object => 'o',
        }
    }
}

/// What an operation needs from a SAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SasNeeds {
    /// The service letter in `ss` (`q` for queues, `b` for blobs).
    pub service: char,
    pub resource_type: ResourceType,
    /// Any one of these account-SAS permission letters suffices.
    pub account_permissions: &'static str,
    /// The service-SAS permission letter; `None` if a service SAS can never do it.
    pub service_permission: Option<char>,
}

/// Why a SAS was refused. Each maps to one Azure error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("{0}")]
    AuthenticationFailed(String),
    #[error("This request is not authorized to perform this operation using this permission.")]
    PermissionMismatch,
    #[error("This request is not authorized to perform this operation using this resource type.")]
    ResourceTypeMismatch,
    #[error("This request is not authorized to perform this operation using this service.")]
    ServiceMismatch,
    #[error("This request is not authorized to perform this operation using this protocol.")]
    ProtocolMismatch,
}

/// The validity window and permissions of a stored access policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub start: Option<String>,
    pub expiry: Option<String>,
    pub permission: Option<String>,
}

fn field(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn check_window(start: Option<&str>, expiry: Option<&str>, now: Millis) -> Result<(), SasError> {
    let expiry = expiry.ok_or_else(|| SasError::AuthenticationFailed("Signed expiry time is required.".into()))?;
    let se = parse_iso8601(expiry)
        .ok_or_else(|| SasError::AuthenticationFailed(format!("Signed expiry time [{expiry}] is not a valid ISO 8601 time.")))?;
    if se <= now {
        return Err(SasError::AuthenticationFailed(format!("Signed expiry time [{expiry}] has to be after current time.")));
    }
    if let Some(start) = start.filter(|s| !s.is_empty()) {
        let st = parse_iso8601(start)
            .ok_or_else(|| SasError::AuthenticationFailed(format!("Signed start time [{start}] is not a valid ISO 8601 time.")))?;
        if st > now {
            return Err(SasError::AuthenticationFailed(format!("Signed start time [{start}] is in the future.")));
        }
    }
    Ok(())
}

fn check_protocol(spr: &Option<String>, is_https: bool) -> Result<(), SasError> {
    match spr.as_deref() {
        Some("https") if !is_https => Err(SasError::ProtocolMismatch),
        None | Some("https") | Some("https,http") | Some("http,https") => Ok(()),
        Some(other) => Err(SasError::AuthenticationFailed(format!("Signed protocol [{other}] is not valid."))),
    }
}

fn bad_signature(sts: &str) -> SasError {
    SasError::AuthenticationFailed(format!(
        "Signature did not match. String to sign used was {}",
        sts.replace('\n', "\\n")
    ))
}

/// The request a SAS is checked for: whose keys sign it, what it needs, and when and
/// how it arrived.
#[derive(Debug, Clone, Copy)]
pub struct SasRequest<'a> {
    pub account: &'a str,
    pub keys: &'a [Vec<u8>],
    pub needs: SasNeeds,
    pub now: Millis,
    pub is_https: bool,
}

/// Checks an account SAS.
pub fn check_account_sas(sas: &SasParams, req: SasRequest<'_>) -> Result<(), SasError> {
    let SasRequest { account, keys, needs, now, is_https } = req;
    let sv = field(&sas.sv);
    let mut sts = format!(
        "{account}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{sv}\n",
        field(&sas.sp),
        field(&sas.ss),
        field(&sas.srt),
        field(&sas.st),
        field(&sas.se),
        field(&sas.sip),
        field(&sas.spr),
    );
    if sv >= "2020-12-06" {
        sts.push_str(field(&sas.ses));
        sts.push('\n');
    }
    if !verify_any(keys, &sts, &sas.sig) {
        return Err(bad_signature(&sts));
    }
    check_window(sas.st.as_deref(), sas.se.as_deref(), now)?;
    check_protocol(&sas.spr, is_https)?;
    if !field(&sas.ss).contains(needs.service) {
        return Err(SasError::ServiceMismatch);
    }
    if !field(&sas.srt).contains(needs.resource_type.code()) {
        return Err(SasError::ResourceTypeMismatch);
    }
    if !field(&sas.sp).chars().any(|c| needs.account_permissions.contains(c)) {
        return Err(SasError::PermissionMismatch);
    }
    Ok(())
}

/// Checks a queue SAS for `queue`. `policy` is the stored access policy named by
/// `si`, looked up by the caller (`None` when `si` names none).
pub fn check_queue_sas(sas: &SasParams, req: SasRequest<'_>, queue: &str, policy: Option<&PolicyFields>) -> Result<(), SasError> {
    let sts = format!(
        "{}\n{}\n{}\n/queue/{}/{queue}\n{}\n{}\n{}\n{}",
        field(&sas.sp),
        field(&sas.st),
        field(&sas.se),
        req.account,
        field(&sas.si),
        field(&sas.sip),
        field(&sas.spr),
        field(&sas.sv),
    );
    check_service_sas(sas, req, &sts, policy)
}

/// What a blob service SAS is checked against: the container, and the blob when the
/// operation addresses one.
#[derive(Debug, Clone, Copy)]
pub struct BlobTarget<'a> {
    pub container: &'a str,
    pub blob: Option<&'a str>,
}

/// Checks a blob service SAS (`sr=c` for a container and its blobs, `sr=b` for one
/// blob) in the string-to-sign layout of its `sv`. Containers have no stored access
/// policies here, so `si` never resolves.
pub fn check_blob_sas(sas: &SasParams, req: SasRequest<'_>, target: BlobTarget<'_>) -> Result<(), SasError> {
    let resource = match (field(&sas.sr), target.blob) {
        ("c", _) => format!("/blob/{}/{}", req.account, target.container),
        ("b", Some(blob)) => format!("/blob/{}/{}/{blob}", req.account, target.container),
        ("b", None) => return Err(SasError::ResourceTypeMismatch),
        (other, _) => return Err(SasError::AuthenticationFailed(format!("Signed resource [{other}] is not supported."))),
    };
    let sv = field(&sas.sv);
    let mut parts = vec![field(&sas.sp), field(&sas.st), field(&sas.se), &resource, field(&sas.si), field(&sas.sip), field(&sas.spr), sv];
    if sv >= "2018-11-09" {
        // The signed resource, then the snapshot time (no snapshots are served).
        parts.extend([field(&sas.sr), ""]);
    }
    if sv >= "2020-12-06" {
        parts.push(field(&sas.ses));
    }
    parts.extend([field(&sas.rscc), field(&sas.rscd), field(&sas.rsce), field(&sas.rscl), field(&sas.rsct)]);
    check_service_sas(sas, req, &parts.join("\n"), None)
}

/// What every service SAS checks once its string to sign is built: the signature, the
/// stored policy it names, the validity window, the protocol and the permission.
fn check_service_sas(sas: &SasParams, req: SasRequest<'_>, sts: &str, policy: Option<&PolicyFields>) -> Result<(), SasError> {
    if !verify_any(req.keys, sts, &sas.sig) {
        return Err(bad_signature(sts));
    }
    let (start, expiry, permission) = match (&sas.si, policy) {
        (Some(id), None) => {
            return Err(SasError::AuthenticationFailed(format!("The stored access policy [{id}] does not exist.")));
        }
        (Some(_), Some(p)) => {
            let merged = |own: &Option<String>, stored: &Option<String>, what: &str| match (own, stored) {
                (Some(_), Some(_)) => Err(SasError::AuthenticationFailed(format!(
                    "The signed {what} is given both in the SAS and in the stored access policy."
                ))),
                (Some(v), None) | (None, Some(v)) => Ok(Some(v.clone())),
                (None, None) => Ok(None),
            };
            (merged(&sas.st, &p.start, "start")?, merged(&sas.se, &p.expiry, "expiry")?, merged(&sas.sp, &p.permission, "permission")?)
        }
        (None, _) => (sas.st.clone(), sas.se.clone(), sas.sp.clone()),
    };
    check_window(start.as_deref(), expiry.as_deref(), req.now)?;
    check_protocol(&sas.spr, req.is_https)?;
    match req.needs.service_permission {
        Some(p) if permission.as_deref().unwrap_or("").contains(p) => Ok(()),
        _ => Err(SasError::PermissionMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sign;

    const NOW: Millis = 1_704_067_200_000; // 2024-01-01T00:00:00Z
    const NEEDS_PUT: SasNeeds = SasNeeds {
        service: 'q',
        resource_type: ResourceType::Object,
        account_permissions: "a",
        service_permission: Some('a'),
    };

    fn account_sas(sp: &str, se: &str) -> SasParams {
        let mut sas = SasParams {
            sv: Some("2021-12-02".into()),
            ss: Some("q".into()),
            srt: Some("sco".into()),
            sp: Some(sp.into()),
            se: Some(se.into()),
            spr: Some("https,http".into()),
            ..Default::default()
        };
        let sts = format!("acct\n{sp}\nq\nsco\n\n{se}\n\nhttps,http\n2021-12-02\n\n");
        sas.sig = sign(b"key", &sts);
        sas
    }

    fn request(keys: &[Vec<u8>]) -> SasRequest<'_> {
        SasRequest { account: "acct", keys, needs: NEEDS_PUT, now: NOW, is_https: false }
    }

    #[test]
    fn account_sas_grants_and_refuses() {
        let keys = vec![b"key".to_vec()];
        assert_eq!(check_account_sas(&account_sas("ra", "2024-01-02T00:00:00Z"), request(&keys)), Ok(()));
        assert_eq!(
            check_account_sas(&account_sas("r", "2024-01-02T00:00:00Z"), request(&keys)),
            Err(SasError::PermissionMismatch)
        );
        assert!(matches!(
            check_account_sas(&account_sas("a", "2023-12-31T00:00:00Z"), request(&keys)),
            Err(SasError::AuthenticationFailed(_))
        ));
        assert!(matches!(
            check_account_sas(&account_sas("a", "2024-01-02T00:00:00Z"), request(&[b"other".to_vec()])),
            Err(SasError::AuthenticationFailed(_))
        ));
    }

    #[test]
    fn queue_sas_takes_fields_from_a_stored_policy() {
        let keys = vec![b"key".to_vec()];
        let mut sas = SasParams { sv: Some("2021-12-02".into()), si: Some("p1".into()), ..Default::default() };
        sas.sig = sign(b"key", "\n\n\n/queue/acct/q1\np1\n\n\n2021-12-02");
        let policy = PolicyFields { expiry: Some("2024-01-02T00:00:00Z".into()), permission: Some("a".into()), start: None };
        assert_eq!(check_queue_sas(&sas, request(&keys), "q1", Some(&policy)), Ok(()));
        assert!(matches!(
            check_queue_sas(&sas, request(&keys), "q1", None),
            Err(SasError::AuthenticationFailed(_))
        ));
        assert!(check_queue_sas(&sas, request(&keys), "q2", Some(&policy)).is_err());
    }

    fn blob_sas(sr: &str, resource: &str, sv: &str, sp: &str) -> SasParams {
        let mut sas = SasParams {
            sv: Some(sv.into()),
            sr: Some(sr.into()),
            sp: Some(sp.into()),
            se: Some("2024-01-02T00:00:00Z".into()),
            rsct: Some("text/plain".into()),
            ..Default::default()
        };
        let sts = if sv >= "2020-12-06" {
            format!("{sp}\n\n2024-01-02T00:00:00Z\n{resource}\n\n\n\n{sv}\n{sr}\n\n\n\n\n\n\ntext/plain")
        } else {
            format!("{sp}\n\n2024-01-02T00:00:00Z\n{resource}\n\n\n\n{sv}\n\n\n\n\ntext/plain")
        };
        sas.sig = sign(b"key", &sts);
        sas
    }

    #[test]
    fn blob_sas_is_scoped_to_its_container_or_blob() {
        let keys = vec![b"key".to_vec()];
        let read = SasNeeds { service: 'b', resource_type: ResourceType::Object, account_permissions: "r", service_permission: Some('r') };
        let req = SasRequest { account: "acct", keys: &keys, needs: read, now: NOW, is_https: false };
        let blob = BlobTarget { container: "c1", blob: Some("dir/b") };
        let container_sas = blob_sas("c", "/blob/acct/c1", "2026-02-06", "rl");
        assert_eq!(check_blob_sas(&container_sas, req, blob), Ok(()));
        assert_eq!(check_blob_sas(&container_sas, req, BlobTarget { container: "c1", blob: None }), Ok(()));
        assert!(matches!(check_blob_sas(&container_sas, req, BlobTarget { container: "c2", ..blob }), Err(SasError::AuthenticationFailed(_))));
        let blob_only = blob_sas("b", "/blob/acct/c1/dir/b", "2026-02-06", "r");
        assert_eq!(check_blob_sas(&blob_only, req, blob), Ok(()));
        assert!(check_blob_sas(&blob_only, req, BlobTarget { blob: Some("dir/other"), ..blob }).is_err());
        assert_eq!(check_blob_sas(&blob_only, req, BlobTarget { container: "c1", blob: None }), Err(SasError::ResourceTypeMismatch));
        let old = blob_sas("c", "/blob/acct/c1", "2015-04-05", "r");
        assert_eq!(check_blob_sas(&old, req, blob), Ok(()));
        let write = SasRequest { needs: SasNeeds { service_permission: Some('w'), ..read }, ..req };
        assert_eq!(check_blob_sas(&container_sas, write, blob), Err(SasError::PermissionMismatch));
    }
}

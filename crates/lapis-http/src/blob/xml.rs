//! The Blob XML documents: List Containers and List Blobs, element for element as
//! Azure writes them.

use lapis_core::blob::{BlobInfo, BlobPage, ContainerPage, Listed};
use lapis_core::time_fmt::rfc1123;

use crate::storage::listing::{self, ListEcho};
use crate::xml::{self, element};

/// An element that is written empty (`<Name />`) when there is no value, as Azure
/// does for unset blob properties.
fn optional(s: &mut String, name: &str, value: Option<&str>) {
    match value {
        Some(v) => element(s, name, v),
        None => {
            s.push('<');
            s.push_str(name);
            s.push_str(" />");
        }
    }
}

pub fn container_list(page: &ContainerPage, echo: &ListEcho<'_>) -> String {
    let mut s = echo.open("");
    s.push_str("<Containers>");
    for c in &page.containers {
        s.push_str("<Container>");
        element(&mut s, "Name", &c.name);
        s.push_str("<Properties>");
        element(&mut s, "Last-Modified", &rfc1123(c.last_modified));
        element(&mut s, "Etag", &c.etag.quoted());
        element(&mut s, "LeaseStatus", "unlocked");
        element(&mut s, "LeaseState", "available");
        if let Some(access) = &c.public_access {
            element(&mut s, "PublicAccess", access);
        }
        element(&mut s, "HasImmutabilityPolicy", "false");
        element(&mut s, "HasLegalHold", "false");
        element(&mut s, "DefaultEncryptionScope", "$account-encryption-key");
        element(&mut s, "DenyEncryptionScopeOverride", "false");
        s.push_str("</Properties>");
        if echo.include_metadata {
            listing::metadata(&mut s, &c.metadata);
        }
        s.push_str("</Container>");
    }
    s.push_str("</Containers>");
    listing::close(&mut s, page.next_marker.as_deref());
    s
}

fn blob_properties(s: &mut String, b: &BlobInfo) {
    let p = &b.settings;
    s.push_str("<Properties>");
    element(s, "Creation-Time", &rfc1123(b.created));
    element(s, "Last-Modified", &rfc1123(b.last_modified));
    element(s, "Etag", &b.etag.bare());
    element(s, "Content-Length", &b.size.to_string());
    element(s, "Content-Type", p.content_type());
    optional(s, "Content-Encoding", p.content_encoding.as_deref());
    optional(s, "Content-Language", p.content_language.as_deref());
    optional(s, "Content-CRC64", None);
    optional(s, "Content-MD5", p.content_md5.as_deref());
    optional(s, "Cache-Control", p.cache_control.as_deref());
    optional(s, "Content-Disposition", p.content_disposition.as_deref());
    element(s, "BlobType", "BlockBlob");
    element(s, "AccessTier", "Hot");
    element(s, "AccessTierInferred", "true");
    element(s, "LeaseStatus", "unlocked");
    element(s, "LeaseState", "available");
    element(s, "ServerEncrypted", "true");
    s.push_str("</Properties>");
}

pub fn blob_list(page: &BlobPage, echo: &ListEcho<'_>, container: &str, delimiter: Option<&str>) -> String {
    let mut s = echo.open(&format!(" ContainerName=\"{}\"", xml::escape(container)));
    if let Some(d) = delimiter {
        element(&mut s, "Delimiter", d);
    }
    s.push_str("<Blobs>");
    for item in &page.items {
        match item {
            Listed::Blob(b) => {
                s.push_str("<Blob>");
                element(&mut s, "Name", &b.name);
                blob_properties(&mut s, b);
                if echo.include_metadata {
                    listing::metadata(&mut s, &b.metadata);
                }
                s.push_str("</Blob>");
            }
            Listed::Prefix(p) => {
                s.push_str("<BlobPrefix>");
                element(&mut s, "Name", p);
                s.push_str("</BlobPrefix>");
            }
        }
    }
    s.push_str("</Blobs>");
    listing::close(&mut s, page.next_marker.as_deref());
    s
}

#[cfg(test)]
mod tests {
    use lapis_core::blob::{ContentSettings, Etag};

    use super::*;

    #[test]
    fn blob_listing_is_written_as_azure_writes_it() {
        let blob = BlobInfo {
            name: "ns/hub/$default/ownership/0".into(),
            size: 0,
            settings: ContentSettings { content_md5: Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()), ..Default::default() },
            metadata: vec![("ownerid".into(), "o&1".into())],
            etag: Etag(0x8DC0A1B2C3D4E5F),
            created: 1_704_067_200_000,
            last_modified: 1_704_067_200_000,
        };
        let page = BlobPage { items: vec![Listed::Blob(blob), Listed::Prefix("ns/other/".into())], next_marker: None };
        let echo = ListEcho { endpoint: "http://127.0.0.1:10000/devstoreaccount1", prefix: Some("ns/"), marker: None, max_results: None, include_metadata: true };
        let expected = concat!(
            "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1:10000/devstoreaccount1\" ContainerName=\"ckpt\">",
            "<Prefix>ns/</Prefix><Delimiter>x</Delimiter><Blobs><Blob><Name>ns/hub/$default/ownership/0</Name><Properties>",
            "<Creation-Time>Mon, 01 Jan 2024 00:00:00 GMT</Creation-Time><Last-Modified>Mon, 01 Jan 2024 00:00:00 GMT</Last-Modified>",
            "<Etag>0x8DC0A1B2C3D4E5F</Etag><Content-Length>0</Content-Length><Content-Type>application/octet-stream</Content-Type>",
            "<Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5>",
            "<Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>",
            "<AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>",
            "<ServerEncrypted>true</ServerEncrypted></Properties><Metadata><ownerid>o&amp;1</ownerid></Metadata></Blob>",
            "<BlobPrefix><Name>ns/other/</Name></BlobPrefix></Blobs><NextMarker></NextMarker></EnumerationResults>",
        );
        assert_eq!(blob_list(&page, &echo, "ckpt", Some("x")), expected);
    }
}

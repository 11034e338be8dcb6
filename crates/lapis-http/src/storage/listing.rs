//! The `EnumerationResults` frame every storage listing shares (List Queues, List
//! Containers, List Blobs): the echo of the request's paging parameters, the next
//! marker, and metadata written as elements.

use super::error::StorageError;
use super::request::StorageRequest;
use crate::xml::{self, element};

/// The paging parameters of a listing request, echoed back in its answer.
pub struct ListEcho<'a> {
    pub endpoint: &'a str,
    pub prefix: Option<&'a str>,
    pub marker: Option<&'a str>,
    pub max_results: Option<i64>,
    pub include_metadata: bool,
}

impl<'a> ListEcho<'a> {
    pub fn from_request(req: &'a StorageRequest) -> Result<Self, StorageError> {
        Ok(ListEcho {
            endpoint: &req.endpoint,
            prefix: req.param("prefix"),
            marker: req.param("marker"),
            max_results: req.int_param("maxresults")?,
            include_metadata: req.param_lists("include", "metadata"),
        })
    }

    /// `<EnumerationResults ServiceEndpoint="…" {attributes}>` and the echoed
    /// `Prefix`, `Marker` and `MaxResults`. `attributes` must already be escaped.
    pub fn open(&self, attributes: &str) -> String {
        let mut s = format!("<EnumerationResults ServiceEndpoint=\"{}\"{attributes}>", xml::escape(self.endpoint));
        if let Some(p) = self.prefix {
            element(&mut s, "Prefix", p);
        }
        if let Some(m) = self.marker {
            element(&mut s, "Marker", m);
        }
        if let Some(n) = self.max_results {
            element(&mut s, "MaxResults", &n.to_string());
        }
        s
    }
}

/// `<NextMarker>` (empty on the last page) and the end of the document.
pub fn close(s: &mut String, next_marker: Option<&str>) {
    element(s, "NextMarker", next_marker.unwrap_or(""));
    s.push_str("</EnumerationResults>");
}

/// `<Metadata>` with one element per name, in the case it was given.
pub fn metadata(s: &mut String, metadata: &[(String, String)]) {
    s.push_str("<Metadata>");
    for (k, v) in metadata {
        element(s, k, v);
    }
    s.push_str("</Metadata>");
}

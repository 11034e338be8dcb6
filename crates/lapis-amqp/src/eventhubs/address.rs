//! What an Event Hubs link address names, once the scheme and host are gone and it is
//! lowercase (see [`crate::cbs::normalize`]): `<hub>` and `<hub>/partitions/<id>` for
//! producers, `<hub>/consumergroups/<group>/partitions/<id>` for consumers.

use lapis_core::stream::SendTarget;

/// A parsed Event Hubs address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAddress {
    /// Where producers send: the hub (any partition) or one partition.
    Producer { hub: String, partition: Option<String> },
    /// Where a consumer group reads one partition.
    Consumer { hub: String, group: String, partition: String },
}

impl HubAddress {
    pub fn hub(&self) -> &str {
        match self {
            HubAddress::Producer { hub, .. } | HubAddress::Consumer { hub, .. } => hub,
        }
    }

    /// Where a producer on this address sends by default.
    pub fn target(&self) -> SendTarget {
        match self {
            HubAddress::Producer { partition: Some(p), .. } => SendTarget::Partition(p.clone()),
            _ => SendTarget::Any,
        }
    }
}

/// The Event Hubs address `path` names, if it has an Event Hubs shape.
pub fn parse(path: &str) -> Option<HubAddress> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [hub] if !hub.is_empty() && !hub.starts_with('$') => Some(HubAddress::Producer { hub: hub.to_string(), partition: None }),
        [hub, p, id] if p.eq_ignore_ascii_case("partitions") => Some(HubAddress::Producer { hub: hub.to_string(), partition: Some(id.to_string()) }),
        [hub, cg, group, p, id] if cg.eq_ignore_ascii_case("consumergroups") && p.eq_ignore_ascii_case("partitions") => {
            Some(HubAddress::Consumer { hub: hub.to_string(), group: group.to_string(), partition: id.to_string() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_and_consumer_addresses() {
        assert_eq!(parse("plays"), Some(HubAddress::Producer { hub: "plays".into(), partition: None }));
        assert_eq!(parse("plays/partitions/3"), Some(HubAddress::Producer { hub: "plays".into(), partition: Some("3".into()) }));
        assert_eq!(
            parse("plays/consumergroups/$default/partitions/0"),
            Some(HubAddress::Consumer { hub: "plays".into(), group: "$default".into(), partition: "0".into() })
        );
        assert_eq!(parse("$management"), None);
        assert_eq!(parse("plays/subscriptions/s"), None);
        assert_eq!(parse(""), None);
    }
}

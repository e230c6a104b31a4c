//! Leases: their names, what a worker says of one, and how a report reaches the node that
//! holds the lease when it arrives at another (an HTTP worker behind a load balancer).
//!
//! A lease is `<32 hex>-<node>`: a random part (the fence) and the name of the node whose
//! [`super::WorkHub`] holds it. A report naming another node's lease travels to that node's
//! reply queue as a [`LeaseReport`] (AMQP type [`REPORTS_V1`]); the holder answers on the
//! asker's reply queue, as a task's reply, under the report's id.

use crate::messages::{MessageError, PayloadRef};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// The `type` of a report forwarded to the node holding its lease.
pub const REPORTS_V1: &str = "tasknode.reports.v1";

/// A new lease held by `node`.
pub fn new(node: &str) -> String {
    format!("{}-{node}", Uuid::new_v4().simple())
}

/// The node holding `lease`; `None` when it is not one of ours.
pub fn holder(lease: &str) -> Option<&str> {
    let (random, node) = lease.split_at_checked(32)?;
    let node = node.strip_prefix('-')?;
    let hex = random.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !node.is_empty()).then_some(node)
}

/// What a worker says of a task it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "said", rename_all = "lowercase")]
pub enum Said {
    /// Its result: inline, or in the bucket already (uploaded under the lease's own key).
    Done {
        result: PayloadRef,
    },
    Fail {
        last: bool,
        message: String,
    },
    Progress {
        percent: u8,
        note: Option<String>,
    },
    Extend {
        secs: u64,
    },
}

impl Said {
    pub fn extend(by: Duration) -> Said {
        Said::Extend { secs: by.as_secs() }
    }
}

/// A report on a lease held by another node.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseReport {
    /// Whom the answer is for (registered at the asking node's reply router).
    pub id: Uuid,
    pub lease: String,
    pub said: Said,
    /// The asking node's reply queue.
    pub reply_to: String,
}

impl LeaseReport {
    pub fn decode(body: &[u8]) -> Result<LeaseReport, MessageError> {
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_node_and_others_name_none() {
        let lease = new("node-1.eu");
        assert_eq!(holder(&lease), Some("node-1.eu"));
        assert!(protocol::work::valid_lease(&lease));
        assert_eq!(holder("0123456789abcdef"), None);
        assert_eq!(holder(&"g".repeat(40)), None);
        assert_eq!(holder(&format!("{}-", "a".repeat(32))), None);
        assert_eq!(holder("é"), None);
    }

    #[test]
    fn a_report_reads_back() {
        let report = LeaseReport {
            id: Uuid::new_v4(),
            lease: new("a"),
            said: Said::Done {
                result: PayloadRef::Inline { data: vec![0, 1] },
            },
            reply_to: "q".into(),
        };
        let back = LeaseReport::decode(&serde_json::to_vec(&report).unwrap()).unwrap();
        assert_eq!(back.said, report.said);
        assert_eq!(back.lease, report.lease);
    }
}

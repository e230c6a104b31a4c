//! Multipart uploads a node left open (it died with them): found in the journal and aborted,
//! and how many parts of one the store still keeps.

use super::{is_not_found, s3_err, Storage, StorageError};
use chrono::{DateTime, Utc};
use rusoto_s3::{ListPartsRequest, S3};

/// Uploads this old are aborted by any node (their node is gone or stuck).
const STALE_UPLOAD: chrono::Duration = chrono::Duration::days(1);

impl Storage {
    /// Abort the multipart uploads left open: by this node before it started at `booted`
    /// (it died with them open), or by any node a day ago or more. Answers how many.
    pub async fn abort_stale_uploads(&self, booted: DateTime<Utc>) -> usize {
        let Some(journal) = &self.journal else {
            return 0;
        };
        let stale = match journal.stale(booted, Utc::now() - STALE_UPLOAD).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the journal of open uploads");
                return 0;
            }
        };
        for upload in &stale {
            tracing::info!(key = %upload.key, "aborting a multipart upload left open");
            self.abort(&upload.key, &upload.upload_id).await;
        }
        stale.len()
    }

    /// How many parts of multipart upload `upload_id` of `key` the store keeps (none once
    /// it was completed or aborted).
    pub async fn stored_parts(&self, key: &str, upload_id: &str) -> Result<usize, StorageError> {
        let request = self.client.list_parts(ListPartsRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            ..Default::default()
        });
        match self.bounded("ListParts", request).await? {
            Ok(out) => Ok(out.parts.map_or(0, |p| p.len())),
            Err(e) if is_not_found(&e) || format!("{e:?}").contains("NoSuchUpload") => Ok(0),
            Err(e) => Err(s3_err(e)),
        }
    }
}

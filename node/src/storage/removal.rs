//! Removing objects no task needs any more.

use super::{s3_err, Storage, StorageError};
use rusoto_s3::{DeleteObjectRequest, S3};

impl Storage {
    /// Delete the object `key` (as written: with this node's prefix). Deleting an object that
    /// is not there succeeds (S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let request = self.client.delete_object(DeleteObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            ..Default::default()
        });
        self.bounded("DeleteObject", request)
            .await?
            .map_err(s3_err)?;
        Ok(())
    }
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

impl Storage {
    /// Up to 1,000 objects whose keys start with `name` (this node's prefix prepended), after
    /// `from` (a continuation token of the page before); and the token of the next page.
    pub async fn list_page(
        &self,
        name: &str,
        from: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), StorageError> {
        let request = self
            .client
            .list_objects_v2(rusoto_s3::ListObjectsV2Request {
                bucket: self.bucket.clone(),
                prefix: Some(self.key(name)),
                continuation_token: from,
                ..Default::default()
            });
        let out = self
            .bounded("ListObjectsV2", request)
            .await?
            .map_err(s3_err)?;
        let listed = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key?,
                    modified: o
                        .last_modified
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                })
            })
            .collect();
        let next = match out.is_truncated {
            Some(true) => out.next_continuation_token,
            _ => None,
        };
        Ok((listed, next))
    }
}

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

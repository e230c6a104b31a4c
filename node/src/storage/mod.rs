//! The S3 object store (MinIO in production), behind one type so rusoto stays in this module.
//!
//! Speaks plain S3 with a custom endpoint and path-style addressing (`/{bucket}/{key}`), which
//! is what rusoto always does, so the same code runs against MinIO, garage or s3s-fs.

use crate::config::StorageSettings;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use rusoto_core::{credential::AwsCredentials, HttpClient, Region, RusotoError};
use rusoto_credential::StaticProvider;
use rusoto_s3::util::{PreSignedRequest, PreSignedRequestOption};
use rusoto_s3::{
    AbortMultipartUploadRequest, CompleteMultipartUploadRequest, CompletedMultipartUpload,
    CompletedPart, CreateBucketRequest, CreateMultipartUploadRequest, GetObjectRequest,
    HeadBucketRequest, PutObjectRequest, S3Client, UploadPartRequest, S3,
};
use std::time::Duration;

pub use crate::db::uploads::Journal;

mod leftovers;
mod removal;
pub use removal::Listed;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object store: {0}")]
    S3(String),
    #[error("object `{0}` not found in the bucket")]
    NotFound(String),
    #[error("upload ended after {got} of {expected} bytes")]
    Incomplete { expected: u64, got: u64 },
    #[error("upload stream failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the uploader has stopped: {0}")]
    Stopped(#[from] actix::MailboxError),
    #[error("object store: no answer to {what} within {secs}s")]
    Timeout { what: &'static str, secs: u64 },
}

fn s3_err<E: std::error::Error + 'static>(e: RusotoError<E>) -> StorageError {
    match &e {
        RusotoError::Unknown(resp) => StorageError::S3(format!(
            "HTTP {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )),
        _ => StorageError::S3(e.to_string()),
    }
}

fn is_not_found<E: std::error::Error + 'static>(e: &RusotoError<E>) -> bool {
    match e {
        RusotoError::Unknown(resp) => resp.status.as_u16() == 404,
        RusotoError::Service(s) => {
            let text = s.to_string();
            text.contains("NoSuchKey") || text.contains("not exist") || text.contains("NotFound")
        }
        _ => false,
    }
}

/// A bucket on an S3 endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    client: S3Client,
    region: Region,
    credentials: AwsCredentials,
    bucket: String,
    key_prefix: String,
    part_size: usize,
    presign_secs: u64,
    /// The longest one request may take (connecting included; for a download, the wait for
    /// each next chunk).
    timeout: Duration,
    /// Where multipart uploads in progress are noted (a node's storage has one).
    journal: Option<Journal>,
}

impl Storage {
    pub fn new(settings: &StorageSettings) -> Result<Self, StorageError> {
        let region = Region::Custom {
            name: settings.region.clone(),
            endpoint: settings.endpoint.trim_end_matches('/').to_string(),
        };
        // rusoto's own client is https-only; MinIO and local stores are often plain http.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let http = HttpClient::from_connector(connector);
        let provider =
            StaticProvider::new_minimal(settings.access_key.clone(), settings.secret_key.clone());
        Ok(Storage {
            client: S3Client::new_with(http, provider, region.clone()),
            region,
            credentials: AwsCredentials::new(
                settings.access_key.clone(),
                settings.secret_key.clone(),
                None,
                None,
            ),
            bucket: settings.bucket.clone(),
            key_prefix: settings.key_prefix.clone(),
            part_size: settings.part_size,
            presign_secs: settings.presign_secs,
            timeout: Duration::from_secs(settings.timeout_secs),
            journal: None,
        })
    }

    /// Note every multipart upload in `journal` while it is open.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// `request`, given up on after the timeout.
    async fn bounded<T, E: std::error::Error + 'static>(
        &self,
        what: &'static str,
        request: impl std::future::Future<Output = Result<T, RusotoError<E>>>,
    ) -> Result<Result<T, RusotoError<E>>, StorageError> {
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| StorageError::Timeout {
                what,
                secs: self.timeout.as_secs(),
            })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The full object key for `name` (the configured prefix prepended).
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.key_prefix, name)
    }

    /// Create the bucket unless it exists. Nodes starting together race to create it: a
    /// node that loses sees an error (`BucketAlreadyOwnedByYou`, or a server error from a
    /// store that raced on it), which is fine once the bucket is there.
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self.reachable().await {
            return Ok(());
        }
        let request = self.client.create_bucket(CreateBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        });
        let Err(e) = self.bounded("CreateBucket", request).await? else {
            return Ok(());
        };
        for pause in [0, 50, 200, 500] {
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            if self.reachable().await {
                return Ok(());
            }
        }
        Err(s3_err(e))
    }

    /// Whether the bucket answers (for health checks).
    pub async fn reachable(&self) -> bool {
        let request = self.client.head_bucket(HeadBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        });
        matches!(self.bounded("HeadBucket", request).await, Ok(Ok(_)))
    }

    /// Store a small object in one request.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let request = self.client.put_object(PutObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            content_length: Some(data.len() as i64),
            body: Some(data.to_vec().into()),
            ..Default::default()
        });
        self.bounded("PutObject", request).await?.map_err(s3_err)?;
        Ok(())
    }

    /// Store a stream of unknown length, holding at most one part in memory: one PUT when it
    /// fits in a part, a multipart upload otherwise (aborted on any failure). With `expected`,
    /// a stream that ends early or runs long is refused and nothing is kept.
    pub async fn upload_stream<S>(
        &self,
        key: &str,
        mut stream: S,
        expected: Option<u64>,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        // Room for a whole part and the chunk that completes it, so the buffer never grows by
        // doubling (pages are only resident once written).
        let mut buf = BytesMut::with_capacity(self.part_size + (1 << 20));
        let mut total = 0u64;
        let mut upload: Option<(String, Vec<CompletedPart>)> = None;
        let result: Result<(), StorageError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                total += chunk.len() as u64;
                if let Some(exp) = expected {
                    if total > exp {
                        return Err(StorageError::Incomplete {
                            expected: exp,
                            got: total,
                        });
                    }
                }
                buf.extend_from_slice(&chunk);
                while buf.len() >= self.part_size {
                    let part = buf.split_to(self.part_size).freeze();
                    self.upload_part(key, &mut upload, part).await?;
                }
            }
            if let Some(exp) = expected {
                if total != exp {
                    return Err(StorageError::Incomplete {
                        expected: exp,
                        got: total,
                    });
                }
            }
            if upload.is_none() {
                self.put(key, buf.split().freeze()).await?;
            } else if !buf.is_empty() {
                let part = buf.split().freeze();
                self.upload_part(key, &mut upload, part).await?;
            }
            Ok(())
        }
        .await;

        match (result, upload) {
            (Ok(()), None) => Ok(total),
            (Ok(()), Some((upload_id, parts))) => {
                let request =
                    self.client
                        .complete_multipart_upload(CompleteMultipartUploadRequest {
                            bucket: self.bucket.clone(),
                            key: key.to_string(),
                            upload_id: upload_id.clone(),
                            multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
                            ..Default::default()
                        });
                match self.bounded("CompleteMultipartUpload", request).await {
                    Ok(Ok(_)) => {
                        self.forget(&upload_id).await;
                        Ok(total)
                    }
                    Ok(Err(e)) => {
                        self.abort(key, &upload_id).await;
                        Err(s3_err(e))
                    }
                    Err(e) => {
                        self.abort(key, &upload_id).await;
                        Err(e)
                    }
                }
            }
            (Err(e), Some((upload_id, _))) => {
                self.abort(key, &upload_id).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &mut Option<(String, Vec<CompletedPart>)>,
        part: Bytes,
    ) -> Result<(), StorageError> {
        if upload.is_none() {
            let request = self
                .client
                .create_multipart_upload(CreateMultipartUploadRequest {
                    bucket: self.bucket.clone(),
                    key: key.to_string(),
                    ..Default::default()
                });
            let created = self
                .bounded("CreateMultipartUpload", request)
                .await?
                .map_err(s3_err)?;
            let id = created.upload_id.ok_or_else(|| {
                StorageError::S3("no upload id from CreateMultipartUpload".into())
            })?;
            if let Some(journal) = &self.journal {
                if let Err(e) = journal.begin(&id, key).await {
                    tracing::warn!(key, error = %e, "multipart upload not noted in the journal");
                }
            }
            *upload = Some((id, Vec::new()));
        }
        let (upload_id, parts) = upload.as_mut().expect("set above");
        let number = parts.len() as i64 + 1;
        let len = part.len();
        let request = self.client.upload_part(UploadPartRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id: upload_id.clone(),
            part_number: number,
            content_length: Some(len as i64),
            // Streamed as it is (no copy; sent unsigned, as streamed bodies are).
            body: Some(rusoto_core::ByteStream::new_with_size(
                futures_util::stream::once(async move { Ok(part) }),
                len,
            )),
            ..Default::default()
        });
        let out = self.bounded("UploadPart", request).await?.map_err(s3_err)?;
        parts.push(CompletedPart {
            e_tag: out.e_tag,
            part_number: Some(number),
        });
        Ok(())
    }

    /// An upload is over: out of the journal.
    async fn forget(&self, upload_id: &str) {
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.end(upload_id).await {
                tracing::warn!(error = %e, "a finished upload stays in the journal");
            }
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let request = self
            .client
            .abort_multipart_upload(AbortMultipartUploadRequest {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                upload_id: upload_id.to_string(),
                ..Default::default()
            });
        match self.bounded("AbortMultipartUpload", request).await {
            Ok(Ok(_)) => self.forget(upload_id).await,
            Ok(Err(e)) if is_not_found(&e) => self.forget(upload_id).await,
            Ok(Err(e)) => tracing::warn!(key, error = %e, "could not abort multipart upload"),
            Err(e) => tracing::warn!(key, error = %e, "could not abort multipart upload"),
        }
    }

    /// Stream an object's bytes (only `range`, first to last byte inclusive, if given); also
    /// returns their number when the store says it.
    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
        ),
        StorageError,
    > {
        let request = self.client.get_object(GetObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            range: range.map(|(first, last)| format!("bytes={first}-{last}")),
            ..Default::default()
        });
        let out = self.bounded("GetObject", request).await?.map_err(|e| {
            if is_not_found(&e) {
                StorageError::NotFound(key.to_string())
            } else {
                s3_err(e)
            }
        })?;
        let size = out.content_length.map(|n| n as u64);
        let body = out
            .body
            .ok_or_else(|| StorageError::S3(format!("no body for `{key}`")))?;
        // Each next chunk must come within the timeout, or the download fails.
        let secs = self.timeout.as_secs();
        let chunks =
            tokio_stream::StreamExt::timeout(body, self.timeout).map(move |chunk| match chunk {
                Ok(chunk) => chunk.map_err(std::io::Error::other),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("object store: no bytes of the download for {secs}s"),
                )),
            });
        Ok((size, Box::pin(chunks)))
    }

    /// A whole (small) object in memory.
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let (_, mut stream) = self.get_stream(key, None).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// A URL anyone can GET the object from, valid for the configured time.
    pub fn presign_get(&self, key: &str) -> String {
        GetObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            ..Default::default()
        }
        .get_presigned_url(
            &self.region,
            &self.credentials,
            &PreSignedRequestOption {
                expires_in: Duration::from_secs(self.presign_secs),
            },
        )
    }
}

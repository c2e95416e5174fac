//! Artifacts in an S3 bucket: AWS itself, or any S3-compatible server (MinIO, moto, Ceph).
//!
//! Key decision: requests are path-style (`{endpoint}/{bucket}/{key}`), which every
//! S3-compatible server accepts without DNS for bucket subdomains, and plain HTTP is
//! allowed exactly when the configured endpoint says `http://`. Whatever the settings leave
//! unset (credentials, region) comes from AWS's usual environment (`AWS_*` variables, an
//! instance role), as any AWS tool would take it.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;

use super::{ArtifactStore, Result};
use crate::error::ArtifactError;

/// Where an S3 artifact store lives and how to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`; `None` is AWS.
    pub endpoint: Option<String>,
    /// The bucket, which must exist.
    pub bucket: String,
    /// The region (S3-compatible servers mostly accept any).
    pub region: String,
    /// The access key id; `None` takes AWS's usual sources.
    pub access_key: Option<String>,
    /// The secret access key, with `access_key`.
    pub secret_key: Option<String>,
}

impl ArtifactStore {
    /// A store in an S3 bucket. Connects lazily: a wrong endpoint or a missing bucket shows
    /// on the first `put` or `get`.
    pub fn s3(options: &S3Options) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.bucket)
            .with_region(&options.region)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(key), Some(secret)) = (&options.access_key, &options.secret_key) {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|source| ArtifactError::Settings { source })?;
        Ok(Self::from_store(Arc::new(store)))
    }
}

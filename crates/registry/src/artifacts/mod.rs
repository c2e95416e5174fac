//! Model bytes in an object store, addressed by their SHA-256 and verified on every read.
//!
//! Key decision: the key is `models/{model}/{sha256}.bin`, so the same bytes stored twice
//! are one object and a key can never point at different bytes by design; `get` re-hashes
//! what it reads and refuses anything that does not match the registry's record, so a
//! corrupted or replaced file is never deserialised into a serving model. `put` always
//! writes (atomically, in every object store), which also heals a damaged copy.
//! The store is a local directory ([`ArtifactStore::local`]) or an S3 bucket
//! ([`ArtifactStore::s3`], in [`s3`]); the same tests run against both.

#[cfg(feature = "s3")]
mod s3;
#[cfg(test)]
mod tests;

#[cfg(feature = "s3")]
pub use s3::S3Options;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::error::{ArtifactError, RegistryError};
use crate::types::{ArtifactRef, check_model_name};

/// The result of artifact operations.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Content-addressed model artifacts over any [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
}

impl ArtifactStore {
    /// A store in a local directory, created if absent.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|source| ArtifactError::Store {
            key: dir.display().to_string(),
            source,
        })?;
        Ok(Self::from_store(Arc::new(store)))
    }

    /// A store over any object store (S3 and others, configured by the caller).
    pub fn from_store(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The object store underneath (tests reach past the hash check through it).
    #[cfg(test)]
    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` for `model` and returns the reference to register.
    pub async fn put(&self, model: &str, bytes: impl Into<Bytes>) -> Result<ArtifactRef> {
        check_model_name(model).map_err(|e| match e {
            RegistryError::InvalidName { name, reason, .. } => ArtifactError::InvalidName { name, reason },
            other => ArtifactError::InvalidName {
                name: model.to_owned(),
                reason: other.to_string(),
            },
        })?;
        let bytes = bytes.into();
        let sha256 = sha256_hex(&bytes);
        let key = artifact_key(model, &sha256);
        let size = bytes.len() as u64;
        self.store
            .put(&ObjectPath::from(key.as_str()), PutPayload::from_bytes(bytes))
            .await
            .map_err(|source| ArtifactError::Store {
                key: key.clone(),
                source,
            })?;
        Ok(ArtifactRef { key, sha256, size })
    }

    /// Reads an artifact, refusing bytes whose sha256 or size differ from `artifact`.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Bytes> {
        let key = &artifact.key;
        let store_err = |source| ArtifactError::Store {
            key: key.clone(),
            source,
        };
        let path = ObjectPath::parse(key).map_err(|e| store_err(e.into()))?;
        let bytes = match self.store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound { key: key.clone() });
            }
            Err(e) => return Err(store_err(e)),
        };
        verify(artifact, &bytes)?;
        Ok(bytes)
    }
}

/// Checks bytes read against their reference.
fn verify(artifact: &ArtifactRef, bytes: &[u8]) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual != artifact.sha256 {
        return Err(ArtifactError::Corrupt {
            key: artifact.key.clone(),
            expected: artifact.sha256.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != artifact.size {
        return Err(ArtifactError::SizeMismatch {
            key: artifact.key.clone(),
            expected: artifact.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(())
}

/// The key of `model`'s artifact with this hash: `models/{model}/{sha256}.bin`.
pub fn artifact_key(model: &str, sha256: &str) -> String {
    format!("models/{model}/{sha256}.bin")
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

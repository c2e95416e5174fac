//! Model bytes in an object store, addressed by their SHA-256 and verified on every read.
//!
//! Key decision: the key is `models/{model}/{sha256}.bin`, so the same bytes stored twice
//! are one object and a key can never point at different bytes by design; `get` re-hashes
//! what it reads and refuses anything that does not match the registry's record, so a
//! corrupted or replaced file is never deserialised into a serving model. `put` always
//! writes (atomically, in every object store), which also heals a damaged copy.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_file(dir: &Path, artifact: &ArtifactRef) -> std::path::PathBuf {
        dir.join(&artifact.key)
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn bytes_round_trip_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&dir.path().join("artifacts")).unwrap();
        let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
        assert_eq!(artifact.sha256, sha256_hex(b"model bytes"));
        assert_eq!(artifact.key, format!("models/fraud/{}.bin", artifact.sha256));
        assert_eq!(artifact.size, 11);
        assert_eq!(&store.get(&artifact).await.unwrap()[..], b"model bytes");
    }

    #[tokio::test]
    async fn the_same_bytes_twice_are_one_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let a = store.put("fraud", Bytes::from_static(b"same")).await.unwrap();
        let b = store.put("fraud", Bytes::from_static(b"same")).await.unwrap();
        assert_eq!(a, b);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("models/fraud"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
    }

    #[tokio::test]
    async fn a_flipped_byte_is_refused_naming_the_key_and_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
        let file = stored_file(dir.path(), &artifact);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[3] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        let err = store.get(&artifact).await.unwrap_err();
        let ArtifactError::Corrupt {
            ref key,
            ref expected,
            ref actual,
        } = err
        else {
            panic!("expected Corrupt, got {err:?}");
        };
        assert_eq!(key, &artifact.key);
        assert_eq!(expected, &artifact.sha256);
        assert_eq!(actual, &sha256_hex(&bytes));
        let message = err.to_string();
        for part in [
            "refused",
            "sha256 does not match",
            &artifact.key,
            &artifact.sha256,
            actual,
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    #[tokio::test]
    async fn a_truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
        let file = stored_file(dir.path(), &artifact);
        std::fs::write(&file, b"model").unwrap();
        let err = store.get(&artifact).await.unwrap_err();
        assert!(matches!(err, ArtifactError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_reference_with_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let mut artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
        artifact.size += 1;
        let err = store.get(&artifact).await.unwrap_err();
        assert!(matches!(
            err,
            ArtifactError::SizeMismatch {
                expected: 12,
                actual: 11,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_missing_file_is_not_found_and_bad_models_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let artifact = store.put("fraud", b"x".to_vec()).await.unwrap();
        std::fs::remove_file(stored_file(dir.path(), &artifact)).unwrap();
        let err = store.get(&artifact).await.unwrap_err();
        assert!(
            matches!(err, ArtifactError::NotFound { ref key } if key == &artifact.key),
            "{err:?}"
        );
        let err = store.put("../etc", b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, ArtifactError::InvalidName { .. }), "{err:?}");
    }
}

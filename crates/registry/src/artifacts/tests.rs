//! The artifact cases, run against a local directory and against a real S3-compatible
//! server (a fresh bucket per case on the server at `DRIFTLINE_TEST_S3_ENDPOINT`).
//!
//! Key decision: every case tampers through the object store underneath, never through
//! files, so the same case proves hash verification on both backends.

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::*;

/// Overwrites the stored object of `artifact` with `bytes`, past the hash check.
async fn overwrite(store: &ArtifactStore, artifact: &ArtifactRef, bytes: &[u8]) {
    let path = ObjectPath::from(artifact.key.as_str());
    store
        .object_store()
        .put(&path, PutPayload::from(bytes.to_vec()))
        .await
        .unwrap();
}

/// The keys stored under `prefix`.
async fn keys_under(store: &ArtifactStore, prefix: &str) -> Vec<String> {
    let listed = store
        .object_store()
        .list_with_delimiter(Some(&ObjectPath::from(prefix)))
        .await
        .unwrap();
    listed.objects.iter().map(|o| o.location.to_string()).collect()
}

async fn bytes_round_trip_under_their_hash(store: &ArtifactStore) {
    let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
    assert_eq!(artifact.sha256, sha256_hex(b"model bytes"));
    assert_eq!(artifact.key, format!("models/fraud/{}.bin", artifact.sha256));
    assert_eq!(artifact.size, 11);
    assert_eq!(&store.get(&artifact).await.unwrap()[..], b"model bytes");
}

async fn the_same_bytes_twice_are_one_object(store: &ArtifactStore) {
    let a = store.put("fraud", Bytes::from_static(b"same")).await.unwrap();
    let b = store.put("fraud", Bytes::from_static(b"same")).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(keys_under(store, "models/fraud").await, [a.key]);
}

async fn a_flipped_byte_is_refused_naming_the_key_and_both_hashes(store: &ArtifactStore) {
    let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
    let mut bytes = b"model bytes".to_vec();
    bytes[3] ^= 0x01;
    overwrite(store, &artifact, &bytes).await;
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

async fn a_truncated_object_is_refused(store: &ArtifactStore) {
    let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
    overwrite(store, &artifact, b"model").await;
    let err = store.get(&artifact).await.unwrap_err();
    assert!(matches!(err, ArtifactError::Corrupt { .. }), "{err:?}");
}

async fn a_reference_with_the_wrong_size_is_refused(store: &ArtifactStore) {
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

async fn a_missing_object_is_not_found_and_bad_models_are_refused(store: &ArtifactStore) {
    let artifact = store.put("fraud", b"x".to_vec()).await.unwrap();
    let path = ObjectPath::from(artifact.key.as_str());
    store.object_store().delete(&path).await.unwrap();
    let err = store.get(&artifact).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::NotFound { ref key } if key == &artifact.key),
        "{err:?}"
    );
    let err = store.put("../etc", b"x".to_vec()).await.unwrap_err();
    assert!(matches!(err, ArtifactError::InvalidName { .. }), "{err:?}");
}

#[test]
fn sha256_matches_a_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// Runs each named case against a fresh local store and a fresh S3 bucket.
macro_rules! artifact_cases {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::ArtifactStore::local(&dir.path().join("artifacts")).unwrap();
                    super::$case(&store).await;
                }
            )*
        }

        #[cfg(feature = "s3")]
        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(bucket) = super::s3_server::TestBucket::create().await else {
                        return;
                    };
                    super::$case(&bucket.store).await;
                    bucket.remove().await;
                }
            )*
        }
    };
}

artifact_cases!(
    bytes_round_trip_under_their_hash,
    the_same_bytes_twice_are_one_object,
    a_flipped_byte_is_refused_naming_the_key_and_both_hashes,
    a_truncated_object_is_refused,
    a_reference_with_the_wrong_size_is_refused,
    a_missing_object_is_not_found_and_bad_models_are_refused,
);

#[tokio::test]
async fn the_local_store_keeps_one_file_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(dir.path()).unwrap();
    let artifact = store.put("fraud", b"model bytes".to_vec()).await.unwrap();
    let file = dir.path().join(&artifact.key);
    assert_eq!(std::fs::read(file).unwrap(), b"model bytes");
}

#[cfg(feature = "s3")]
mod s3_server {
    //! A fresh bucket on the S3-compatible test server, created and removed over plain
    //! HTTP (the test server accepts unsigned bucket calls; object calls go through the
    //! store under test, signed).

    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use object_store::ObjectStoreExt;

    use crate::artifacts::{ArtifactStore, S3Options};
    use crate::testenv;

    /// The server when `DRIFTLINE_TEST_S3_ENDPOINT` is unset (moto_server's default port).
    const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5000";

    pub struct TestBucket {
        pub store: ArtifactStore,
        endpoint: String,
        name: String,
    }

    impl TestBucket {
        /// A new bucket and a store on it; `None` (after saying why) when the server is
        /// unreachable and backends are not required.
        pub async fn create() -> Option<TestBucket> {
            let endpoint =
                std::env::var("DRIFTLINE_TEST_S3_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
            let name = testenv::unique_name("driftline-test").replace('_', "-");
            if let Err(e) = http(&endpoint, "PUT", &name) {
                return testenv::unavailable("the S3 server", &endpoint, e);
            }
            let options = S3Options {
                endpoint: Some(endpoint.clone()),
                bucket: name.clone(),
                region: "us-east-1".into(),
                access_key: Some("driftline-test".into()),
                secret_key: Some("driftline-test".into()),
            };
            let store = ArtifactStore::s3(&options).unwrap();
            Some(TestBucket {
                store,
                endpoint,
                name,
            })
        }

        /// Deletes every object under `models/`, then the bucket.
        pub async fn remove(self) {
            let store = self.store.object_store();
            let mut prefixes = vec![object_store::path::Path::from("models")];
            while let Some(prefix) = prefixes.pop() {
                let listed = store.list_with_delimiter(Some(&prefix)).await.unwrap();
                for object in listed.objects {
                    store.delete(&object.location).await.unwrap();
                }
                prefixes.extend(listed.common_prefixes);
            }
            http(&self.endpoint, "DELETE", &self.name).unwrap();
        }
    }

    /// Sends `METHOD /bucket` and checks for a 2xx answer.
    fn http(endpoint: &str, method: &str, bucket: &str) -> Result<(), String> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("{endpoint} is not an http:// URL"))?
            .trim_end_matches('/');
        let address = std::net::ToSocketAddrs::to_socket_addrs(authority)
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let mut stream =
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let request = format!(
            "{method} /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let status = response.lines().next().unwrap_or_default();
        if status.split(' ').nth(1).is_some_and(|code| code.starts_with('2')) {
            Ok(())
        } else {
            Err(format!("{method} /{bucket} answered {status:?}"))
        }
    }
}

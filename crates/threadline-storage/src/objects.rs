//! Where span blocks go: a local directory, or an S3-compatible bucket named by an `s3://`
//! URL (with the `s3` feature), behind the one `object_store` interface.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::StoreError;
use crate::block::BlockError;

fn invalid(message: String) -> StoreError {
    StoreError::Config { message }
}

/// Opens the block store for `url`: `file:///abs/dir` or an `s3://bucket[/prefix]` URL.
/// `options` are the object store's settings for that scheme (for S3: `aws_endpoint`,
/// `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, ...); S3
/// settings also come from the usual `AWS_*` environment variables.
pub fn open(url: &str, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if let Some(path) = url.strip_prefix("file://") {
        return local(Path::new(path));
    }
    if url.starts_with("s3://") {
        return s3(url, options);
    }
    Err(invalid(format!("storage.blocks_url {url:?}: the scheme must be file:// or s3://")))
}

/// A local directory (created if missing).
pub fn local(dir: &Path) -> Result<Arc<dyn ObjectStore>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|source| {
        StoreError::Block(BlockError::Store { path: dir.display().to_string(), source })
    })?;
    Ok(Arc::new(store))
}

#[cfg(feature = "s3")]
fn s3(url: &str, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>, StoreError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::prefix::PrefixStore;

    let mut builder = AmazonS3Builder::from_env().with_url(url);
    for (key, value) in options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .map_err(|_| invalid(format!("storage.blocks_options: unknown S3 option {key:?}")))?;
        builder = builder.with_config(key, value);
    }
    let store = builder.build().map_err(|e| invalid(format!("storage.blocks_url {url:?}: {e}")))?;
    // Everything under the URL's path, as a directory would be.
    let prefix = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, prefix)| prefix.trim_matches('/'))
        .unwrap_or("");
    if prefix.is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}

#[cfg(not(feature = "s3"))]
fn s3(url: &str, _options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Err(invalid(format!(
        "storage.blocks_url {url:?}: this build has no S3 support (build with the s3 feature)"
    )))
}

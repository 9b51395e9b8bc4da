//! The data directory: created on open and locked for the life of the server, so two
//! processes never write the same directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// An open, exclusively locked data directory. The lock is released on drop.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
            context: format!("creating data directory {}", path.display()),
            source,
        })?;
        let lock_path = path.join("LOCK");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(
                |source| StoreError::Io {
                    context: format!("opening {}", lock_path.display()),
                    source,
                },
            )?;
        match lock.try_lock() {
            Ok(()) => Ok(Self { path: path.to_owned(), _lock: lock }),
            Err(TryLockError::WouldBlock) => {
                Err(StoreError::Locked { path: path.display().to_string() })
            }
            Err(TryLockError::Error(source)) => {
                Err(StoreError::Io { context: format!("locking {}", lock_path.display()), source })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("threadline-datadir-{}", std::process::id()));
        let first = DataDir::open(&dir).unwrap();
        let second = DataDir::open(&dir).unwrap_err();
        assert!(matches!(second, StoreError::Locked { .. }), "{second}");
        drop(first);
        DataDir::open(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

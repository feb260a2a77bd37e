//! The results store: `<root>/<test>/<UTC timestamp>-s<seed>/` per run, never overwritten,
//! with `<root>/latest` pointing at the newest.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A directory of stored runs.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a fresh directory for a run of `test` with `seed`, stamped with `when`.
    /// A run started in the same second with the same seed gets a `-2`, `-3`, ... suffix
    /// rather than overwriting the earlier one.
    pub fn create_run(&self, test: &str, seed: u64, when: SystemTime) -> io::Result<PathBuf> {
        let stamp = utc_stamp(when);
        let parent = self.root.join(test);
        std::fs::create_dir_all(&parent)?;
        for attempt in 1u32.. {
            let name = match attempt {
                1 => format!("{stamp}-s{seed}"),
                n => format!("{stamp}-s{seed}-{n}"),
            };
            let dir = parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("u32 suffixes run out only after four billion runs in one second")
    }

    /// Points `<root>/latest` at `run` (a relative link, so the store can be moved).
    pub fn point_latest(&self, run: &Path) -> io::Result<()> {
        let target = run.strip_prefix(&self.root).unwrap_or(run);
        let latest = self.root.join("latest");
        let staging = self.root.join(unique_staging(".latest"));
        let _ = std::fs::remove_file(&staging);
        std::os::unix::fs::symlink(target, &staging)?;
        // rename over the old link is atomic: a reader never sees `latest` missing.
        std::fs::rename(&staging, &latest)
    }
}

/// A staging file name no other writer uses at the same time (parallel runs of a sweep
/// share the store): `<prefix>.<pid>.<counter>.tmp`.
pub(crate) fn unique_staging(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}.{}.{n}.tmp", std::process::id())
}

/// `YYYYMMDDTHHMMSSZ`, sortable and free of characters awkward in file names.
pub fn utc_stamp(when: SystemTime) -> String {
    humantime::format_rfc3339_seconds(when)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_utc_and_compact() {
        let when = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_stamp(when), "20261118T110640Z");
    }

    #[test]
    fn runs_are_never_overwritten_and_latest_follows_the_newest() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        let when = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let first = store.create_run("t", 7, when).unwrap();
        let second = store.create_run("t", 7, when).unwrap();
        assert_ne!(first, second);
        assert!(second.to_string_lossy().ends_with("-s7-2"));
        store.point_latest(&first).unwrap();
        store.point_latest(&second).unwrap();
        let latest = std::fs::canonicalize(root.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&second).unwrap());
    }
}

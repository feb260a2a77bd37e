//! The disk seam: everything the broker knows about files.
//!
//! The operations are the ones whose crash semantics matter: append, fsync, truncate,
//! directory sync, rename and list. [`StdDisk`] is the real implementation; the harness
//! supplies a simulated disk that forgets whatever was not fsynced when a host crashes.
//! Calls are synchronous: they are short, and the simulated disk is synchronous too.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file opened for appending records.
pub trait AppendFile: Send {
    /// Appends all of `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;

    /// Cuts the file to `len` bytes; later appends continue from there.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// How the broker reaches its storage.
pub trait Disk: Send + Sync + 'static {
    /// Creates `dir` and any missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Reads a whole file; `Ok(None)` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;

    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;

    /// Makes the entries of directory `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Lists the entries of `dir`, sorted by name so that callers stay deterministic.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
}

/// Real files through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdDisk;

struct StdFile(std::fs::File);

impl AppendFile for StdFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Disk for StdDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries = std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }
}

/// Raised once when the node's storage fails; the node then stops serving.
///
/// After a failed write or fsync nothing is known about what reached the platter (Linux may
/// even drop the dirty pages and report success to the next fsync), so carrying on would
/// risk acknowledging data that is gone. Like Kafka's log-directory failure handling and
/// PostgreSQL after "fsyncgate", the node fail-stops and recovers from what its log holds.
#[derive(Debug, Default)]
pub struct Halt {
    reason: std::sync::Mutex<Option<String>>,
    raised: tokio::sync::Notify,
}

impl Halt {
    /// Records the first failure and wakes whoever waits on [`Halt::raised`].
    pub fn raise(&self, reason: String) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::error!(%reason, "storage failed: this node stops");
            *slot = Some(reason);
            self.raised.notify_waiters();
            self.raised.notify_one();
        }
    }

    /// The failure, once raised.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves with the failure once it has been raised.
    pub async fn raised(&self) -> String {
        loop {
            if let Some(reason) = self.reason() {
                return reason;
            }
            self.raised.notified().await;
        }
    }
}

/// A disk whose every write-side failure raises the node's [`Halt`]; after the first
/// failure every further write is refused, so nothing written later can be fsynced on top
/// of a write whose fate is unknown.
pub struct FailStopDisk {
    inner: std::sync::Arc<dyn Disk>,
    halt: std::sync::Arc<Halt>,
}

impl FailStopDisk {
    /// Wraps `inner`, raising `halt` on failure.
    pub fn new(inner: std::sync::Arc<dyn Disk>, halt: std::sync::Arc<Halt>) -> Self {
        Self { inner, halt }
    }
}

fn guarded<T>(halt: &Halt, what: &str, path: &Path, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    if let Some(reason) = halt.reason() {
        return Err(io::Error::other(format!("storage has failed earlier: {reason}")));
    }
    op().inspect_err(|e| halt.raise(format!("{what} {}: {e}", path.display())))
}

struct FailStopFile {
    inner: Box<dyn AppendFile>,
    path: PathBuf,
    halt: std::sync::Arc<Halt>,
}

impl AppendFile for FailStopFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        guarded(&self.halt, "append to", &self.path, || self.inner.append(bytes))
    }

    fn sync(&mut self) -> io::Result<()> {
        guarded(&self.halt, "fsync", &self.path, || self.inner.sync())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        guarded(&self.halt, "truncate", &self.path, || self.inner.truncate(len))
    }
}

impl Disk for FailStopDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        guarded(&self.halt, "create", dir, || self.inner.create_dir_all(dir))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.inner.read(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let inner = guarded(&self.halt, "open", path, || self.inner.open_append(path))?;
        Ok(Box::new(FailStopFile {
            inner,
            path: path.to_path_buf(),
            halt: std::sync::Arc::clone(&self.halt),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        guarded(&self.halt, "fsync directory", dir, || self.inner.sync_dir(dir))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        guarded(&self.halt, "rename", from, || self.inner.rename(from, to))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }
}

//! The simulated implementations of the broker's seams: turmoil's network and its
//! `unstable-fs` disk, which forgets every write that was not fsynced when a host crashes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::nemesis::truncated_len;
use broker::{AppendFile, BoxFuture, BoxStream, Disk, Listener, Network, Spawner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::fs::shim::std::fs as simfs;

/// turmoil's simulated TCP, counting the writes (the segments) every stream makes.
#[derive(Debug, Default, Clone)]
pub struct SimNetwork {
    writes: Arc<AtomicU64>,
}

impl SimNetwork {
    /// Writes made so far by the streams of this network and of its clones.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// A stream that counts its writes.
struct Counted<S> {
    inner: S,
    writes: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = result {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct SimListener(turmoil::net::TcpListener, Arc<AtomicU64>);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            let stream = Counted {
                inner: stream,
                writes: Arc::clone(&self.1),
            };
            Ok((Box::new(stream) as BoxStream, peer.to_string()))
        })
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl Network for SimNetwork {
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(SimListener(listener, Arc::clone(&self.writes))) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            let stream = Counted {
                inner: stream,
                writes: Arc::clone(&self.writes),
            };
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// The damage the nemesis has ordered for one host's disk, shared by the nemesis and the
/// host's [`SimDisk`].
#[derive(Debug)]
pub struct DiskFaultState {
    /// Tear the next append: write part of it durably, then fail.
    pub torn_next_append: bool,
    /// Fail writes, fsyncs and reads with this probability.
    pub eio: Option<f64>,
    /// Flip one byte of the next non-empty file read.
    pub corrupt_next_read: bool,
    /// Cut the next non-empty file read to this share of its length, on the disk itself.
    pub truncate_next_read: Option<f64>,
    /// Empty the whole disk when the node next starts (a disk replacement).
    pub wipe_at_start: bool,
    rng: ChaCha8Rng,
}

/// A handle on one host's disk faults.
#[derive(Debug, Clone)]
pub struct DiskFaults(Arc<Mutex<DiskFaultState>>);

impl DiskFaults {
    /// No faults yet; `seed` drives which operations fail and which byte flips.
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(DiskFaultState {
            torn_next_append: false,
            eio: None,
            corrupt_next_read: false,
            truncate_next_read: None,
            wipe_at_start: false,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })))
    }

    /// Changes the faults in force.
    pub fn update(&self, f: impl FnOnce(&mut DiskFaultState)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DiskFaultState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An injected EIO, if this operation draws one.
    fn eio(&self, what: &str, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        let eio = state.eio;
        match eio {
            Some(p) if state.rng.random_bool(p) => {
                tracing::warn!(path = %path.display(), "disk fault: {what} fails with EIO");
                Err(io::Error::other(format!("injected EIO on {what}")))
            }
            _ => Ok(()),
        }
    }
}

/// turmoil's per-host simulated disk, with the faults the nemesis injects.
#[derive(Debug, Clone)]
pub struct SimDisk {
    faults: DiskFaults,
    /// Everything the node keeps lives under here: what a wipe removes.
    root: PathBuf,
}

impl SimDisk {
    /// A disk subject to `faults`, holding the node's files under `root`.
    pub fn new(faults: DiskFaults, root: PathBuf) -> Self {
        Self { faults, root }
    }

    /// Carries out a wipe the nemesis ordered, at the first use of the disk after the
    /// node starts (it runs on the node's own host, whose file system this is).
    fn wipe_if_ordered(&self) -> io::Result<()> {
        if !std::mem::take(&mut self.faults.state().wipe_at_start) {
            return Ok(());
        }
        tracing::warn!(root = %self.root.display(), "disk fault: the disk was replaced; every file is gone");
        match simfs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

struct SimFile {
    file: simfs::File,
    path: PathBuf,
    faults: DiskFaults,
}

impl AppendFile for SimFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.faults.eio("append", &self.path)?;
        let torn = std::mem::take(&mut self.faults.state().torn_next_append);
        if torn && !bytes.is_empty() {
            // Make the first half durable, as a write interrupted mid-way by a power cut
            // can leave it, and report the failure.
            let kept = bytes.len().div_ceil(2);
            self.file.write_all(&bytes[..kept])?;
            self.file.sync_all()?;
            tracing::warn!(path = %self.path.display(), kept, of = bytes.len(), "disk fault: torn write");
            return Err(io::Error::other("injected torn write"));
        }
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.faults.eio("fsync", &self.path)?;
        self.file.sync_all()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.faults.eio("truncate", &self.path)?;
        self.file.set_len(len)
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.wipe_if_ordered()?;
        simfs::create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.wipe_if_ordered()?;
        self.faults.eio("read", path)?;
        let mut bytes = match simfs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut state = self.faults.state();
        if state.corrupt_next_read && !bytes.is_empty() {
            state.corrupt_next_read = false;
            let at = state.rng.random_range(0..bytes.len());
            let bit = state.rng.random_range(0..8);
            bytes[at] ^= 1 << bit;
            tracing::warn!(path = %path.display(), offset = at, bit, "disk fault: corrupted a byte read back");
        }
        if let Some(keep) = state.truncate_next_read.filter(|_| !bytes.is_empty()) {
            state.truncate_next_read = None;
            let len = truncated_len(bytes.len() as u64, keep);
            // The file itself loses its tail, as it would on a real disk: a later restart
            // reads the same short file.
            simfs::OpenOptions::new().write(true).open(path)?.set_len(len)?;
            tracing::warn!(path = %path.display(), from = bytes.len(), to = len, "disk fault: truncated a file read back");
            bytes.truncate(len as usize);
        }
        Ok(Some(bytes))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.wipe_if_ordered()?;
        self.faults.eio("open", path)?;
        let file = simfs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(SimFile {
            file,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.wipe_if_ordered()?;
        self.faults.eio("fsync directory", dir)?;
        simfs::sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.wipe_if_ordered()?;
        self.faults.eio("rename", from)?;
        simfs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.wipe_if_ordered()?;
        let mut entries = simfs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }
}

/// Spawns onto the host's own task list, which a crash drops in spawn order: tokio's
/// shared task list is ordered by a process-wide id, so two simulations in one process
/// would otherwise drop a crashed host's sockets in different orders.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalSpawner;

impl Spawner for LocalSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::task::spawn_local(task);
    }
}

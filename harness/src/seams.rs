//! The simulated implementations of the broker's seams: turmoil's network and its
//! `unstable-fs` disk, which forgets every write that was not fsynced when a host crashes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use broker::{AppendFile, BoxFuture, BoxStream, Disk, Listener, Network, Spawner};
use turmoil::fs::shim::std::fs as simfs;

/// turmoil's simulated TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimNetwork;

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
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
            Ok(Box::new(SimListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// turmoil's per-host simulated disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimDisk;

struct SimFile(simfs::File);

impl AppendFile for SimFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        simfs::create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match simfs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = simfs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(SimFile(file)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        simfs::sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        simfs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
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

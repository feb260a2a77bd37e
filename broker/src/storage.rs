//! The append-only record log that makes broker state durable (queues in `single` mode,
//! Raft's term, vote and entries in `quorum` mode).
//!
//! Each record is `[payload length: u32 LE][crc32 of payload: u32 LE][payload: JSON]`.
//! On start the log is replayed from the beginning; the first record that is cut short,
//! fails its checksum or does not decode ends the trusted prefix, and everything after it
//! is cut off: a torn or corrupt tail is never trusted, and never allowed to hide records
//! appended after recovery.

use std::path::{Path, PathBuf};

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::FsyncPolicy;
use crate::disk::{AppendFile, Disk};

/// Header bytes in front of every record.
const HEADER_BYTES: usize = 8;

/// The upper bound on one record's payload; anything larger is corruption.
pub const RECORD_BYTES_MAX: usize = 2 << 20;

/// The name of the single-node queue log inside the data directory.
pub const LOG_FILE_NAME: &str = "queues.log";

/// One durable fact about a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Record {
    /// A message was published at position `seq` of `queue`.
    Publish {
        /// Queue name.
        queue: String,
        /// Position in the queue; contiguous from 0 per queue.
        seq: u64,
        /// Message body.
        body: Vec<u8>,
    },
    /// The message at `seq` of `queue` was acknowledged and is gone.
    Ack {
        /// Queue name.
        queue: String,
        /// Position of the acknowledged message.
        seq: u64,
    },
    /// Every message of `queue` was dropped (a mirrored leader demoted, or about to install
    /// a promoted mirror's copy).
    Purge {
        /// Queue name.
        queue: String,
    },
    /// The latest leadership of `queue` this node knows of (mirrored mode).
    Leadership {
        /// Queue name.
        queue: String,
        /// Leadership epoch.
        epoch: u64,
        /// The leader's node id.
        leader: u64,
    },
}

/// Why the replay stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TailDamage {
    /// The file ends inside a record (a write was cut short by a crash).
    Torn,
    /// A record's checksum does not match its bytes.
    ChecksumMismatch,
    /// The length field is impossible (over [`RECORD_BYTES_MAX`]).
    BadLength,
    /// The checksum matches but the payload is not a record.
    Undecodable,
}

/// What replaying a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay<R = Record> {
    /// The records of the trusted prefix, in order.
    pub records: Vec<R>,
    /// Length in bytes of the trusted prefix.
    pub valid_bytes: u64,
    /// Why replay stopped early, if it did.
    pub damage: Option<TailDamage>,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record could not be encoded (too large).
    #[error("record of {len} bytes exceeds the limit of {RECORD_BYTES_MAX}")]
    RecordTooLarge {
        /// Payload length.
        len: usize,
    },
}

/// Encodes one record with its header.
pub fn encode_record<R: Serialize>(record: &R) -> Result<Vec<u8>, StorageError> {
    // Records are plain data (strings, integers, byte vectors): serialising cannot fail.
    let payload = serde_json::to_vec(record).expect("records always serialise");
    if payload.len() > RECORD_BYTES_MAX {
        return Err(StorageError::RecordTooLarge { len: payload.len() });
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Decodes the trusted prefix of a log file's bytes.
pub fn decode_records<R: DeserializeOwned>(bytes: &[u8]) -> Replay<R> {
    let mut records = Vec::new();
    let mut at = 0usize;
    let damage = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < HEADER_BYTES {
            break Some(TailDamage::Torn);
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > RECORD_BYTES_MAX {
            break Some(TailDamage::BadLength);
        }
        let Some(payload) = rest.get(HEADER_BYTES..HEADER_BYTES + len) else {
            break Some(TailDamage::Torn);
        };
        if crc32fast::hash(payload) != crc {
            break Some(TailDamage::ChecksumMismatch);
        }
        match serde_json::from_slice::<R>(payload) {
            Ok(record) => records.push(record),
            Err(_) => break Some(TailDamage::Undecodable),
        }
        at += HEADER_BYTES + len;
    };
    Replay {
        records,
        valid_bytes: at as u64,
        damage,
    }
}

/// The single-node queue log.
pub type QueueLog = RecordLog<Record>;

/// An open log of records of type `R`: appends them and fsyncs as the policy says.
pub struct RecordLog<R> {
    file: Box<dyn AppendFile>,
    path: PathBuf,
    fsync: FsyncPolicy,
    /// When the file was last fsynced (tokio time: simulated under the harness).
    synced_at: tokio::time::Instant,
    /// Whether bytes were appended since the last fsync (or, under
    /// [`FsyncPolicy::Never`], ever): what a crash could still take away.
    unsynced: bool,
    records: PhantomData<fn(R)>,
}

impl<R> std::fmt::Debug for RecordLog<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueLog")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish()
    }
}

impl QueueLog {
    /// Opens the single-node queue log in `dir` (see [`RecordLog::open_file`]).
    pub fn open(disk: &dyn Disk, dir: &Path, fsync: FsyncPolicy) -> Result<(Self, Replay), StorageError> {
        Self::open_file(disk, dir, LOG_FILE_NAME, fsync)
    }
}

impl<R: Serialize + DeserializeOwned> RecordLog<R> {
    /// Opens (creating if needed) `dir/file_name`, replays it and cuts off a damaged tail.
    pub fn open_file(
        disk: &dyn Disk,
        dir: &Path,
        file_name: &str,
        fsync: FsyncPolicy,
    ) -> Result<(Self, Replay<R>), StorageError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { op, path, source }
        };
        disk.create_dir_all(dir).map_err(io("create_dir_all", dir))?;
        let path = dir.join(file_name);
        let bytes = disk.read(&path).map_err(io("read", &path))?.unwrap_or_default();
        let replay: Replay<R> = decode_records(&bytes);
        let mut file = disk.open_append(&path).map_err(io("open", &path))?;
        if replay.valid_bytes < bytes.len() as u64 {
            file.truncate(replay.valid_bytes).map_err(io("truncate", &path))?;
        }
        if fsync != FsyncPolicy::Never {
            // A synced file whose directory entry is not synced vanishes in a crash, so
            // make the whole chain of directories durable, root first.
            file.sync().map_err(io("fsync", &path))?;
            let mut chain: Vec<&Path> = path.ancestors().skip(1).collect();
            chain.reverse();
            for ancestor in chain.into_iter().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(ancestor).map_err(io("sync_dir", ancestor))?;
            }
        }
        let log = Self {
            file,
            path,
            fsync,
            synced_at: tokio::time::Instant::now(),
            // Without an fsync at open, what was replayed may be only in the page cache.
            unsynced: fsync == FsyncPolicy::Never && !bytes.is_empty(),
            records: PhantomData,
        };
        Ok((log, replay))
    }

    /// Appends one record; under [`FsyncPolicy::Always`] it is durable when this returns,
    /// under [`FsyncPolicy::Interval`] once the interval since the last fsync has passed.
    pub fn append(&mut self, record: &R) -> Result<(), StorageError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends records with a single fsync at the end (a group commit).
    pub fn append_all(&mut self, records: &[R]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend(encode_record(record)?);
        }
        self.file.append(&bytes).map_err(|source| StorageError::Io {
            op: "append",
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = true;
        let due = match self.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Never => false,
            FsyncPolicy::Interval(ms) => self.synced_at.elapsed() >= std::time::Duration::from_millis(ms),
        };
        if due {
            self.synced_at = tokio::time::Instant::now();
            self.file.sync().map_err(|source| StorageError::Io {
                op: "fsync",
                path: self.path.clone(),
                source,
            })?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// True when everything appended so far has been fsynced: a crash now loses nothing.
    /// (What the inspection seam reports as durable is read from here, so it is the fsync
    /// calls themselves, not the policy, that make a record count.)
    pub fn is_synced(&self) -> bool {
        !self.unsynced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::StdDisk;

    fn publish(seq: u64) -> Record {
        Record::Publish {
            queue: "q".into(),
            seq,
            body: format!("{seq}").into_bytes(),
        }
    }

    fn log_of(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(|r| encode_record(r).unwrap()).collect()
    }

    #[test]
    fn a_clean_log_replays_every_record() {
        let records = vec![
            publish(0),
            publish(1),
            Record::Ack {
                queue: "q".into(),
                seq: 0,
            },
        ];
        let bytes = log_of(&records);
        let replay: Replay = decode_records(&bytes);
        assert_eq!(replay.records, records);
        assert_eq!(replay.valid_bytes, bytes.len() as u64);
        assert_eq!(replay.damage, None);
    }

    #[test]
    fn a_torn_tail_is_cut_at_every_possible_length() {
        let whole = log_of(&[publish(0), publish(1)]);
        let first_len = encode_record(&publish(0)).unwrap().len();
        for cut in first_len + 1..whole.len() {
            let replay: Replay = decode_records(&whole[..cut]);
            assert_eq!(replay.records, vec![publish(0)], "cut at {cut}");
            assert_eq!(replay.valid_bytes, first_len as u64);
            assert_eq!(replay.damage, Some(TailDamage::Torn));
        }
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_the_damaged_record() {
        let mut bytes = log_of(&[publish(0), publish(1), publish(2)]);
        let second = encode_record(&publish(0)).unwrap().len();
        let last = bytes.len() - 1;
        bytes[second + HEADER_BYTES + 2] ^= 0x10;
        let replay: Replay = decode_records(&bytes);
        assert_eq!(replay.records, vec![publish(0)]);
        assert_eq!(replay.damage, Some(TailDamage::ChecksumMismatch));
        assert!(replay.valid_bytes < last as u64);
    }

    #[test]
    fn an_impossible_length_is_damage_not_an_allocation() {
        let mut bytes = log_of(&[publish(0)]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let replay: Replay = decode_records(&bytes);
        assert_eq!(replay.records.len(), 1);
        assert_eq!(replay.damage, Some(TailDamage::BadLength));
    }

    #[test]
    fn a_checksummed_non_record_is_undecodable() {
        let payload = b"not json";
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        assert_eq!(
            decode_records::<Record>(&bytes).damage,
            Some(TailDamage::Undecodable)
        );
    }

    #[test]
    fn reopening_cuts_the_damaged_tail_so_new_records_follow_the_good_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE_NAME);
        let mut bytes = log_of(&[publish(0), publish(1)]);
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, &bytes).unwrap();

        let (mut log, replay) = QueueLog::open(&StdDisk, dir.path(), FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, vec![publish(0)]);
        log.append(&publish(1)).unwrap();
        drop(log);

        let (_, replay) = QueueLog::open(&StdDisk, dir.path(), FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, vec![publish(0), publish(1)]);
        assert_eq!(replay.damage, None);
    }
}

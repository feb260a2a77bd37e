//! tumult's reference message broker.
//!
//! A small broker with the high-availability designs of RabbitMQ and Kafka. It is ordinary
//! software: it reaches the network, the disk and randomness only through the seams in
//! [`Network`], [`Disk`], [`Spawner`] and [`Entropy`] (bundled as [`Seams`]), so the
//! same code runs for real ([`Seams::real`]) and inside tumult's deterministic simulation.
//!
//! ```no_run
//! use broker::{Broker, BrokerConfig, Seams};
//!
//! # async fn run() -> Result<(), broker::BrokerError> {
//! let config = BrokerConfig::single("127.0.0.1:7000", "/tmp/tumult-data");
//! let broker = Broker::new(config, Seams::real(7));
//! broker.serve().await
//! # }
//! ```
//!
//! ## Modes
//! `single`: one node serving durable queues: publish with confirm, get, ack. A publish is
//! confirmed after its record is appended to the log and, under `fsync always`, fsynced.

mod classic;
mod client;
mod cluster_client;
mod codec;
mod config;
mod disk;
mod entropy;
mod inspect;
pub mod kafka;
mod knobs;
pub mod mirrored;
mod net;
mod protocol;
mod queue;
pub mod quorum;
pub mod raft;
mod seams;
mod server;
mod storage;

pub use client::{Client, ClientError, Delivery};
pub use cluster_client::ClusterClient;
pub use codec::{read_frame, write_frame, CodecError, FRAME_BYTES_MAX_DEFAULT};
pub use config::{parse_peers, BrokerConfig, FsyncPolicy, Limits, Mode};
pub use disk::{AppendFile, Disk, FailStopDisk, Halt, StdDisk};
pub use entropy::{fnv64, Entropy, SeededEntropy};
pub use inspect::{Inspector, KafkaEvent, QueueEvent, RaftEvent, Unobserved};
pub use knobs::KnobArgs;
pub use net::{BoxFuture, BoxStream, Listener, Network, Stream, TokioNetwork};
pub use protocol::{ErrorCode, Request, RequestFrame, Response, ResponseFrame, UNKNOWN_REQUEST_ID};
pub use seams::{Seams, Spawner, TokioSpawner};
pub use server::{Broker, BrokerError, RunningBroker};
pub use storage::{decode_records, encode_record, Record, Replay, StorageError, TailDamage};

//! Mirrored mode's knobs and the messages nodes exchange.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a new or rejoining mirror gets the messages already in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// It does not (RabbitMQ's default): it receives only new messages, and counts as
    /// synchronised only once every older message has been consumed.
    Manual,
    /// The leader sends it the whole queue when it joins.
    Automatic,
}

/// What a node does when it cannot see a majority of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionHandling {
    /// Keep serving on both sides (unsafe: two leaders; the side that loses on heal
    /// discards what it confirmed).
    Ignore,
    /// Nodes in a minority stop serving until they see a majority again (safe).
    PauseMinority,
    /// Keep serving on both sides, and on heal restart the losing side automatically
    /// (unsafe in the same way as ignore; here both heal automatically).
    Autoheal,
}

/// The mirrored-mode knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSettings {
    /// Mirrors besides the leader; `None` mirrors to every node.
    pub mirrors: Option<usize>,
    /// How joining mirrors are filled.
    pub sync: SyncMode,
    /// Whether a mirror that lacks messages may be promoted (unsafe).
    pub promote_unsynced: bool,
    /// Behaviour without a majority.
    pub partition_handling: PartitionHandling,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        Self {
            mirrors: None,
            sync: SyncMode::Manual,
            promote_unsynced: false,
            partition_handling: PartitionHandling::PauseMinority,
        }
    }
}

macro_rules! named {
    ($ty:ty, $what:literal, $($variant:path => $name:literal),+) => {
        impl $ty {
            /// The name used on command lines.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($variant),)+
                    other => Err(format!(concat!("unknown ", $what, " '{}' (expected ", $($name, " "),+, ")"), other)),
                }
            }
        }
    };
}

named!(SyncMode, "sync mode", SyncMode::Manual => "manual", SyncMode::Automatic => "automatic");
named!(PartitionHandling, "partition handling",
    PartitionHandling::Ignore => "ignore",
    PartitionHandling::PauseMinority => "pause-minority",
    PartitionHandling::Autoheal => "autoheal");

/// `--mirrors`: `all`, or a count of mirrors besides the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCount(pub Option<usize>);

impl FromStr for MirrorCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(MirrorCount(None)),
            n => n
                .parse()
                .map(|n| MirrorCount(Some(n)))
                .map_err(|_| format!("--mirrors takes 'all' or a number, not '{n}'")),
        }
    }
}

impl fmt::Display for MirrorCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("all"),
            Some(n) => write!(f, "{n}"),
        }
    }
}

/// One mirror in a queue's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node holding it.
    pub node: u64,
    /// Identifies this membership; a mirror seeing a new token starts from empty.
    pub token: u64,
    /// The first seq it received; it lacks everything older.
    pub join_seq: u64,
    /// Whether it holds every message of the queue.
    pub synced: bool,
}

/// Who leads a queue and who mirrors it, oldest mirror first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Leadership epoch: each promotion increments it.
    pub epoch: u64,
    /// The leader's node id.
    pub leader: u64,
    /// The mirrors, oldest first.
    pub members: Vec<Member>,
    /// The leader says it no longer holds this leadership's queue: its disk was replaced.
    /// It will not lead this epoch again, so a synchronised mirror may take over at once.
    #[serde(default)]
    pub abdicated: bool,
}

impl View {
    /// Whether this view's leadership supersedes `other`'s: a later epoch, or in the same
    /// epoch (two concurrent promotions) the lower leader id.
    pub fn beats(&self, other: &View) -> bool {
        (self.epoch, std::cmp::Reverse(self.leader)) > (other.epoch, std::cmp::Reverse(other.leader))
    }
}

/// A change a leader replicates to a mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum MirrorOp {
    /// A message was published at `seq`.
    Publish {
        /// Its seq.
        seq: u64,
        /// Its body.
        body: Vec<u8>,
    },
    /// The message at `seq` was acknowledged.
    Remove {
        /// Its seq.
        seq: u64,
    },
    /// The whole queue (automatic synchronisation).
    Snapshot {
        /// Every message, by seq.
        messages: Vec<(u64, Vec<u8>)>,
    },
    /// A new mirror starts empty here (manual synchronisation).
    Join,
}

/// Messages between mirrored-mode nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MirrorMessage {
    /// Liveness, with how long ago the sender last heard from each other node.
    Ping {
        /// `(node, milliseconds since the sender last heard it)`; partial partitions show
        /// up here.
        #[serde(default)]
        heard: Vec<(u64, u64)>,
    },
    /// From a mirror to its leader: "I hold no copy under the token you replicate to;
    /// add me again" (it restarted, or dropped its copy resuming from a pause).
    Rejoin {
        /// Queue name.
        queue: String,
    },
    /// The sender's knowledge of a queue's leadership.
    View {
        /// Queue name.
        queue: String,
        /// The view.
        view: View,
    },
    /// Changes from the leader of `epoch` to the mirror holding `token`.
    Replicate {
        /// Queue name.
        queue: String,
        /// The sender's leadership epoch.
        epoch: u64,
        /// The membership the changes are for.
        token: u64,
        /// The changes, in order.
        ops: Vec<MirrorOp>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_epochs_win_and_ties_go_to_the_lower_id() {
        let view = |epoch, leader| View {
            epoch,
            leader,
            members: vec![],
            abdicated: false,
        };
        assert!(view(2, 3).beats(&view(1, 1)));
        assert!(view(2, 1).beats(&view(2, 3)));
        assert!(!view(2, 3).beats(&view(2, 3)));
    }

    #[test]
    fn knobs_parse_and_print_back() {
        assert_eq!(
            "pause-minority".parse::<PartitionHandling>(),
            Ok(PartitionHandling::PauseMinority)
        );
        assert_eq!(PartitionHandling::Autoheal.to_string(), "autoheal");
        assert!("sometimes".parse::<SyncMode>().unwrap_err().contains("manual"));
        assert_eq!("all".parse(), Ok(MirrorCount(None)));
        assert_eq!("1".parse(), Ok(MirrorCount(Some(1))));
        assert_eq!(MirrorCount(Some(2)).to_string(), "2");
        assert!("x".parse::<MirrorCount>().is_err());
    }
}

//! The messages mirrored-mode nodes exchange, and the views they agree on. (The mode's
//! knobs live in `config`, so that the configuration depends on no mode's internals.)

use serde::{Deserialize, Serialize};

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
}

//! The randomness seam: the broker never draws from an unseeded source, so that a simulated
//! run replays exactly from its seed. Real deployments seed from the clock or the OS.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A source of random numbers for the broker (incarnation ids, and later election timeouts).
pub trait Entropy: Send {
    /// The next uniformly distributed 64-bit value.
    fn next_u64(&mut self) -> u64;
}

/// A portable, seeded generator: the same seed gives the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct SeededEntropy(ChaCha8Rng);

impl SeededEntropy {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }
}

impl Entropy for SeededEntropy {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// 64-bit FNV-1a: a hash that is the same in every process and on every run (std's hasher
/// is randomly keyed per process), for placing queues and naming histories.
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The node a queue lives on (classic mode) or is first led from (mirrored mode): a stable
/// hash of its name over the sorted member list, so every node computes the same one.
pub(crate) fn home_node(queue: &str, members: &[u64]) -> u64 {
    members[(fnv64(queue.as_bytes()) % members.len() as u64) as usize]
}

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

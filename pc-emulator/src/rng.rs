//! The seeded random stream behind datasets, mutations and probabilistic faults.
//!
//! SplitMix64 rather than `rand`'s `StdRng`: `StdRng` may change algorithm between releases,
//! which would silently change every dataset, and ChaCha is slow in unoptimised test builds.
//! SplitMix64 is fixed, tiny and fast, and its statistical quality is ample for test data.

use rand::RngCore;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 finaliser: a good 64-bit mixing function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic stream from a 64-bit seed.
#[derive(Debug, Clone)]
pub(crate) struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(mix(seed.wrapping_add(GOLDEN)))
    }

    /// A stream for one purpose (`salt`) and one item, independent of every other.
    pub fn for_item(seed: u64, salt: u64, item: u64) -> SeededRng {
        SeededRng::new(seed ^ mix(salt ^ mix(item.wrapping_add(GOLDEN))))
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

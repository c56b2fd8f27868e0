//! [`Rng`]: the one seeded random generator of the tests, simulations and
//! fuzz targets. splitmix64: a seed gives the same numbers on every machine
//! and build, and the generator is a `u64` that clones for free.

use crate::types::Channel;

/// splitmix64 behind a seed. Deterministic: two generators made from one
/// seed give the same numbers.
///
/// ```
/// use omnistock::model::Rng;
/// let mut rng = Rng::new(7);
/// let roll = rng.below(6);
/// assert!(roll < 6);
/// assert_eq!(Rng::new(7).below(6), roll);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed` (any value, 0 included).
    #[inline]
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6f6d_6e69_7374_6f63)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below((hi - lo).saturating_add(1))
    }

    /// True with `p` percent odds.
    #[inline]
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Uniform index into a slice of `len`; 0 when `len` is 0.
    #[inline]
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform quantity in `lo..=hi`.
    #[inline]
    pub fn qty(&mut self, lo: u32, hi: u32) -> u32 {
        self.range(u64::from(lo), u64::from(hi)) as u32
    }

    /// Either channel, with even odds.
    #[inline]
    pub fn channel(&mut self) -> Channel {
        if self.below(2) == 0 {
            Channel::Online
        } else {
            Channel::InStore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_numbers_and_ranges_hold() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut seen = [false; 5];
        for _ in 0..1_000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let r = a.range(3, 7);
            b.range(3, 7);
            assert!((3..=7).contains(&r));
            seen[(r - 3) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every value of 3..=7 drawn");
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_eq!(Rng::new(0).below(0), 0);
        assert_eq!(Rng::new(0).range(5, 5), 5);
        // The whole range: no overflow.
        Rng::new(9).range(0, u64::MAX);
    }
}

//! The benchmarks' random numbers: the same sequence in every process and every setup, so
//! that every contestant runs the same workload.

/// A xorshift generator: identical sequences in every process.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Puts `v` in a random order (Fisher-Yates), the same for the same seed.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.next_u64() as usize % (i + 1);
            v.swap(i, j);
        }
    }
    /// A size between `lo` and `hi`, log-uniform (small sizes as common as large ones per
    /// doubling).
    pub fn log_size(&mut self, lo: usize, hi: usize) -> usize {
        let bits = (hi as f64 / lo as f64).log2();
        let f = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (lo as f64 * 2f64.powf(f * bits)) as usize
    }
}

//! The heap under test, built the way real programs build theirs: millions of small objects
//! (90% of 16-256 B, 9% up to 4 KiB, 1% up to 64 KiB), a large buffer (1-8 MiB) per 64 MiB of
//! heap, and churn (an object replaced every 16 allocations).

use crate::rng::Rng;

/// The heap under test.
pub struct Heap {
    /// The live objects (the large buffers among them).
    pub objects: Vec<Box<[u8]>>,
    /// Bytes in the objects.
    pub bytes: usize,
}

/// Builds about `bytes` of live heap.
pub fn build_heap(bytes: usize) -> Heap {
    let mut r = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut objects: Vec<Box<[u8]>> = Vec::new();
    let mut total = 0usize;
    let mut next_large = 64 << 20;
    while total < bytes {
        let x = r.next_u64();
        let n = if total >= next_large {
            next_large += 64 << 20;
            (1 << 20) + (x >> 8) as usize % (7 << 20)
        } else {
            match x % 100 {
                0..=89 => 16 + (x >> 8) as usize % 241,
                90..=98 => 257 + (x >> 8) as usize % 3840,
                _ => 4097 + (x >> 8) as usize % 61_440,
            }
        };
        objects.push(vec![x as u8; n].into_boxed_slice());
        total += n;
        if x % 16 == 0 && objects.len() > 16 {
            let i = (x >> 24) as usize % objects.len();
            let m = objects[i].len().min(256);
            total = total - objects[i].len() + m;
            objects[i] = vec![1u8; m].into_boxed_slice();
        }
    }
    objects.shrink_to_fit();
    Heap { objects, bytes: total }
}

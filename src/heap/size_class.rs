//! Size classes: multiples of 16 up to 128 bytes, then eight classes per doubling up to 32 KiB
//! (at most 12.5% rounding: the many mid-sized objects of an interpreter's heap, whose rounding
//! is memory a forked child copies when it frees them), then four per doubling up to 256 KiB
//! (at most 25%: fewer classes, of slabs that hold few blocks each), computed without a
//! loop (the fast path reads the classes of
//! sizes up to 1 KiB from a 65-byte table built from the same formula at compile time).
//!
//! Every class size is a multiple of 16, so every block is 16-aligned (glibc's
//! `MALLOC_ALIGNMENT`). For an alignment `a > 16`, rounding the size up to a multiple of `a`
//! lands on a class whose size is a multiple of `a` (proved in the tests), and slabs start on
//! 64 KiB boundaries, so every block of that class is `a`-aligned for `a <= 64 KiB`.

use crate::units::PAGE_SIZE;

/// Sizes up to `1 << FINE_UNTIL_LOG2` (32 KiB) have eight classes per doubling past 128 bytes.
const FINE_UNTIL_LOG2: usize = 15;
/// The first class of four per doubling (past 32 KiB).
const FIRST_COARSE: usize = 8 + (FINE_UNTIL_LOG2 - 7) * 8;

/// Number of size classes.
pub const NCLASS: usize = 84;
/// Largest size served from slabs; larger requests get spans of their own.
pub const SMALL_MAX: usize = 256 << 10;
/// Largest block size served from slabs in the small phase (`pageheap::small_phase`); larger
/// requests get spans of their own there, so that what a small process frees of them is one
/// pool the page heap reuses for any size and gives back, as glibc's heap is: slabs of those
/// classes, each its class's own, held the pages of blocks freed long before (PostgreSQL, a
/// backend idle after a sort: 2.3 of its 2.9 MiB of private heap in slabs of 16-256 KiB
/// blocks, most with one block or none in use). Half a 64 KiB page: a span rounds a block up to
/// whole pages, at most doubling it from here on, while smaller blocks pack better in slabs.
/// Measured, 20 PostgreSQL backends idle after a sort (PSS, MB; glibc 64) against the peak RSS
/// of `hugeheap bench alloc`'s mixed workload (8 B - 32 KiB, MiB; 24 before): from 8 KiB 45.5
/// and 33, from 16 KiB 48.8 and 25, from 32 KiB 50.1 and 24, from 64 KiB 53.5 and 24.
pub const SMALL_PHASE_SLAB_MAX: usize = 32 << 10;
/// Largest alignment slabs can honour (their start is 64 KiB aligned).
pub const SMALL_ALIGN_MAX: usize = PAGE_SIZE;

/// The first shared class (`heap::central`): blocks past 4 KiB. Their slabs hold 16 blocks or
/// fewer, so a slab each thread kept of each such class sat half empty in every thread that
/// used the class (docs/benchmarks.md, "A multi-thread trace, and its memory").
pub const SHARED_FROM: usize = class_by_formula(4096) + 1;
/// Number of shared classes.
pub const NSHARED: usize = NCLASS - SHARED_FROM;

/// Whether class `c` is shared: its slabs are the process's, not a thread's.
#[inline(always)]
pub const fn is_shared(c: usize) -> bool {
    c >= SHARED_FROM
}

/// Sizes up to this many bytes find their class in [`SMALL_CLASS`], one load.
pub const TABLE_MAX: usize = 1024;

/// The class of every size up to [`TABLE_MAX`], by [`granule`]: the fast path's class
/// in one load from one cache line and a half, where the computation takes a dozen instructions
/// past 128 bytes (docs/benchmarks.md, "Figures behind the code").
static SMALL_CLASS: [u8; GRANULES] = {
    let mut t = [0u8; GRANULES];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_by_formula(i * 16) as u8;
        i += 1;
    }
    t
};

/// Granules of request sizes (16 bytes each, see [`granule`]) up to [`TABLE_MAX`]: the class
/// table and a thread heap's direct table have one entry per granule.
pub const GRANULES: usize = TABLE_MAX / 16 + 1;

/// The granule of a request of `size` bytes: `(size + 15) / 16`, below [`GRANULES`] for sizes
/// up to [`TABLE_MAX`].
#[inline(always)]
pub const fn granule(size: usize) -> usize {
    (size + 15) >> 4
}

/// The granules whose sizes fall in class `c` (empty for classes past [`TABLE_MAX`]): the
/// entries of a thread heap's direct table that name `c`'s current slab.
pub const fn granules_of(c: usize) -> core::ops::Range<usize> {
    let lo = if c == 0 { 0 } else { class_size(c - 1) / 16 + 1 };
    let hi = class_size(c) / 16 + 1;
    if lo >= GRANULES {
        GRANULES..GRANULES
    } else if hi > GRANULES {
        lo..GRANULES
    } else {
        lo..hi
    }
}

/// The class of a request of `size` bytes (`size <= SMALL_MAX`; 0 is class 0).
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    if size <= TABLE_MAX {
        // In bounds: the index is at most TABLE_MAX / 16, the table's last slot.
        SMALL_CLASS[granule(size)] as usize
    } else {
        class_by_formula(size)
    }
}

/// [`class_of`] computed, without the table.
#[inline]
const fn class_by_formula(size: usize) -> usize {
    if size <= 128 {
        size.saturating_sub(1) >> 4
    } else {
        let s = size - 1;
        let k = (usize::BITS - 1 - s.leading_zeros()) as usize; // floor(log2(s)) >= 7
        if k < FINE_UNTIL_LOG2 {
            8 + (k - 7) * 8 + ((s >> (k - 3)) & 7)
        } else {
            FIRST_COARSE + (k - FINE_UNTIL_LOG2) * 4 + ((s >> (k - 2)) & 3)
        }
    }
}

/// The block size of class `c`.
#[inline]
pub const fn class_size(c: usize) -> usize {
    if c < 8 {
        (c + 1) * 16
    } else if c < FIRST_COARSE {
        let k = (c - 8) / 8 + 7;
        let j = (c - 8) % 8;
        (9 + j) << (k - 3)
    } else {
        let k = (c - FIRST_COARSE) / 4 + FINE_UNTIL_LOG2;
        let j = (c - FIRST_COARSE) % 4;
        (5 + j) << (k - 2)
    }
}

/// Bytes of a slab of class `c`: one 64 KiB page for classes of up to 4 KiB (16 blocks or
/// more); for larger ones, the fewest 64 KiB pages that hold at least 4 blocks with at most an
/// eighth of the slab left over past the last whole block (at most 1 MiB: the largest classes,
/// up to 256 KiB, get 4 blocks). The fewer blocks a slab holds, the less memory sits in slabs
/// part empty (four threads keeping a few dozen objects each of 16-64 KiB held slabs of 16
/// such blocks, most of them free: docs/benchmarks.md, "A multi-thread trace, and its
/// memory"); the classes past 4 KiB are also shared between threads (`heap::central`).
#[inline]
pub const fn slab_bytes(c: usize) -> usize {
    let size = class_size(c);
    let mut bytes = PAGE_SIZE;
    while bytes < 16 * PAGE_SIZE && (bytes / size < 4 || (bytes % size) * 8 > bytes) {
        bytes += PAGE_SIZE;
    }
    bytes
}

/// The block size a request of `size` bytes aligned to `align` gets from a slab, or `None` if
/// it must go to a span of its own.
#[inline]
pub const fn small_size_for(size: usize, align: usize) -> Option<usize> {
    if align <= 16 {
        if size <= SMALL_MAX { Some(size) } else { None }
    } else if align <= SMALL_ALIGN_MAX && size <= SMALL_MAX {
        let s = if size < align { align } else { (size + align - 1) & !(align - 1) };
        if s <= SMALL_MAX { Some(s) } else { None }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_sizes_tightly() {
        assert_eq!(class_size(NCLASS - 1), SMALL_MAX);
        assert_eq!(class_of(SMALL_MAX), NCLASS - 1);
        let mut prev = 0;
        for c in 0..NCLASS {
            let s = class_size(c);
            assert!(s > prev && s % 16 == 0, "class {c} size {s}");
            assert_eq!(class_of(s), c, "size {s}");
            assert_eq!(class_by_formula(s), c, "size {s}");
            assert_eq!(class_of(prev + 1), c, "size {}", prev + 1);
            // At most 12.5% rounding past 128 bytes, 25% past 32 KiB.
            if s > 128 {
                let per = if prev < 32 << 10 { 8 } else { 4 };
                assert!((s - (prev + 1)) * per <= prev + 1, "class {c}");
            }
            prev = s;
        }
        assert_eq!(class_of(0), 0);
    }

    /// The shared classes are exactly those past 4 KiB, all past the direct table's sizes (a
    /// shared class's `current` entry is a thread's cache, never a granule's).
    #[test]
    fn the_shared_classes_are_those_past_4_kib() {
        assert_eq!(class_size(SHARED_FROM - 1), 4096);
        assert!(class_size(SHARED_FROM) > 4096 && !is_shared(SHARED_FROM - 1) && is_shared(SHARED_FROM));
        assert!(granules_of(SHARED_FROM).is_empty() && SHARED_FROM + NSHARED == NCLASS);
    }

    #[test]
    fn granules_partition_the_direct_table() {
        let mut next = 0;
        for c in 0..NCLASS {
            let g = granules_of(c);
            assert_eq!(g.start, next.min(GRANULES), "class {c}");
            for i in g.clone() {
                assert_eq!(class_of(i * 16), c, "granule {i}");
                assert_eq!(class_of((i * 16).saturating_sub(15).max(1)), c, "granule {i}");
            }
            next = g.end.max(next);
        }
        assert_eq!(next, GRANULES);
    }

    #[test]
    fn every_size_fits_its_class() {
        // Under Miri, which is slow, a sample (the classes' bounds are checked above).
        for size in (1..=SMALL_MAX).step_by(if cfg!(miri) { 509 } else { 1 }) {
            let c = class_of(size);
            assert!(class_size(c) >= size);
            assert!(c == 0 || class_size(c - 1) < size);
        }
    }

    #[test]
    fn aligned_requests_land_on_aligned_classes() {
        let mut align = 32;
        while align <= SMALL_ALIGN_MAX {
            // A sparser sample under Miri, which is slow.
            for size in (1..=SMALL_MAX).step_by(if cfg!(miri) { 509 } else { 7 }) {
                if let Some(s) = small_size_for(size, align) {
                    let cs = class_size(class_of(s));
                    assert_eq!(cs % align, 0, "size {size} align {align} class size {cs}");
                    assert!(cs >= size);
                }
            }
            align *= 2;
        }
    }

    #[test]
    fn slabs_hold_enough_blocks() {
        for c in 0..NCLASS {
            let b = slab_bytes(c);
            let size = class_size(c);
            assert!(b % PAGE_SIZE == 0 && (PAGE_SIZE..=16 * PAGE_SIZE).contains(&b));
            assert!(b / size >= 4, "class {c}");
            assert!((b % size) * 8 <= b, "class {c}: {} of {b} left over", b % size);
            assert!(size > 4096 || b == PAGE_SIZE, "class {c}: small classes fit one page");
            // The fewest pages: one page less would break one of the rules.
            let less = b - PAGE_SIZE;
            assert!(less == 0 || less / size < 4 || (less % size) * 8 > less, "class {c}: {b} is not the fewest");
        }
    }
}

//! Catching heap misuse where it is cheap: every block on a slab's free list carries a mark in
//! its second word, a per-process secret mixed with its address, written when the block is
//! freed and cleared when it is handed out. Allocation checks the mark of the block it takes
//! (it reads the block's first word anyway): a block on the list without it was freed twice
//! (handed out once already, and the list led to it again) or written after it was freed, and
//! that aborts before the list's next link, perhaps the program's data, is followed. A free
//! reads nothing of the block, so that a block long out of the cache costs no wait; it aborts
//! on the cheap cases it sees: a block freed twice in a row (it heads its slab's list), a slab
//! with no block out, a pointer that is not the start of a block. A free from another thread
//! reads nothing either: its block is checked when its owner takes it back, as the owner's
//! own frees are. See docs/design.md (Failure modes) for what is and is not caught.

use crate::os::fatal_misuse;
use crate::span::{Block, Span};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The secret behind free marks, set once at start-up from the kernel's random bytes.
static FREE_KEY: AtomicUsize = AtomicUsize::new(0x5bd1_e995_2f6c_a3a7);

/// Sets the secret behind free marks (start-up, before any block is freed).
pub fn set_free_key(k: usize) {
    FREE_KEY.store(k | 1, Ordering::Relaxed);
}

/// The mark a block carries in its second word while it is on its slab's free list: a
/// secret mixed with the block's address, so a program's data matches it only by chance.
#[inline(always)]
pub fn free_mark(b: *mut Block) -> usize {
    FREE_KEY.load(Ordering::Relaxed) ^ b as usize
}

/// `p` as a block of `span`, which every free of a slab's block goes through: aborts with a
/// message unless `p` is the start of a block, checked with one multiply and one compare (see
/// `Span::div`).
///
/// # Safety
/// `span` must be a live slab whose pages hold `p`.
#[inline(always)]
pub unsafe fn block_at(p: *mut u8, span: *mut Span) -> *mut Block {
    // SAFETY: span is a live slab (caller), whose start, divisor and bound do not change
    // while it has live blocks; p lies in its pages.
    let is_start = unsafe {
        debug_assert!((*span).is_slab() && p as usize >= (*span).start);
        let off = (p as usize - (*span).start) as u64;
        off.wrapping_mul((*span).div) < (*span).starts_below
    };
    if !is_start {
        not_block_start(p);
    }
    p.cast()
}

/// Aborts: `p` lies in a slab but is not the start of a block.
#[cold]
#[inline(never)]
fn not_block_start(p: *mut u8) -> ! {
    fatal_misuse("free(): invalid pointer (not the start of a block)", p as usize)
}

/// The `div` and `starts_below` of a slab of `capacity` blocks of `block_size` bytes (see
/// `Span::div`): a multiple of the block size below `capacity` blocks gives `offset * div`
/// below `starts_below`, every other offset below 2^32 at least `div` (itself at least
/// `starts_below`).
pub const fn block_check(block_size: u32, capacity: u32) -> (u64, u64) {
    debug_assert!(block_size >= 2 && capacity >= 1);
    let div = u64::MAX / block_size as u64 + 1;
    let e = div.wrapping_mul(block_size as u64);
    if e == 0 { (div, div) } else { (div, capacity as u64 * e) }
}

/// Aborts: `b` was freed twice in a row (it heads its slab's free list).
#[cold]
#[inline(never)]
pub fn double_free(b: *mut Block) -> ! {
    fatal_misuse("free(): double free detected", b as usize)
}

/// Aborts: `b` was freed to a slab with no block out, so it is already free.
#[cold]
#[inline(never)]
pub fn double_free_none_out(b: *mut Block) -> ! {
    fatal_misuse("free(): double free detected (no block of its slab is in use)", b as usize)
}

/// Aborts: `b`, on its slab's free list, has lost its free mark, so it was handed out already
/// (freed twice) or written after it was freed.
#[cold]
#[inline(never)]
pub fn free_block_damaged(b: *mut Block) -> ! {
    fatal_misuse("malloc(): a free block was freed twice or written after free", b as usize)
}

#[cfg(test)]
mod tests {
    use super::block_check;
    use crate::heap::size_class::{NCLASS, class_size, slab_bytes};

    /// Every offset of every class's slab (under Miri, which is slow: the start of some 32
    /// blocks spread over the slab and of the last, the bytes beside each and its middle):
    /// accepted exactly at the start of a block.
    #[test]
    fn block_check_accepts_exactly_block_starts() {
        for c in 0..NCLASS {
            let (bs, bytes) = (class_size(c) as u64, slab_bytes(c) as u64);
            let capacity = bytes / bs;
            let (div, below) = block_check(bs as u32, capacity as u32);
            assert!(below <= div, "class {c}");
            let check = |off: u64| {
                let start = off % bs == 0 && off / bs < capacity;
                assert_eq!(off.wrapping_mul(div) < below, start, "class {c} ({bs} B), offset {off}");
            };
            if cfg!(miri) {
                for k in (0..=capacity).step_by((capacity as usize / 32).max(1)).chain([capacity - 1, capacity]) {
                    [k * bs, k * bs + 1, k * bs + bs / 2, (k * bs).wrapping_sub(1)]
                        .into_iter()
                        .filter(|&o| o < bytes)
                        .for_each(check);
                }
            } else {
                (0..bytes).for_each(check);
            }
            // A power-of-two block size must divide its slab (the bound does not stop a block
            // past the last one).
            if bs.is_power_of_two() {
                assert_eq!(bytes % bs, 0, "class {c}");
            }
        }
    }
}

//! Catching heap misuse where it is cheap: every block on a slab's free list carries a mark in
//! its second word, a per-process secret mixed with its address, cleared when the block is
//! handed out. A free that finds the mark (or a slab with no block out) walks the slab's free
//! list and aborts if the block is there; a mark that is only a coincidence of the program's
//! data costs one walk and nothing else. A pointer that is not the start of a block aborts
//! too. See docs/design.md (Failure modes) for what is and is not caught.

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

/// Aborts unless `p` is the start of a block of `span`: one multiply and one compare (see
/// `Span::div`).
///
/// # Safety
/// `span` must be a live slab whose pages hold `p`.
#[inline(always)]
pub unsafe fn check_block_start(p: *mut u8, span: *mut Span) {
    // SAFETY: span is a live slab (caller), whose start, divisor and bound do not change
    // while it has live blocks; p lies in its pages.
    unsafe {
        debug_assert!((*span).is_slab() && p as usize >= (*span).start);
        let off = (p as usize - (*span).start) as u64;
        if off.wrapping_mul((*span).div) >= (*span).starts_below {
            fatal_misuse("free(): invalid pointer (not the start of a block)", p as usize);
        }
    }
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

/// Aborts if `b` is already free: no block of the slab is out, or `b` is on its free list.
/// Returns when the mark was a coincidence of the program's data.
///
/// # Safety
/// `span` must be a slab of this thread's heap and `b` one of its blocks; the free list is
/// this thread's and ends in null.
#[cold]
#[inline(never)]
pub unsafe fn check_double_free(span: *mut Span, b: *mut Block) {
    // SAFETY: span is a live slab (caller).
    debug_assert!(unsafe { (*span).is_slab() });
    // SAFETY: caller's contract.
    unsafe {
        if (*span).used() == 0 {
            fatal_misuse("free(): double free detected (no block of its slab is in use)", b as usize);
        }
        let mut f = (*span).free;
        while !f.is_null() {
            if f == b {
                fatal_misuse("free(): double free detected", b as usize);
            }
            f = (*f).next;
        }
    }
}

/// Aborts if `b`, a live block of another thread's slab about to be freed from this thread,
/// carries its free mark: it is already free. The mark is read volatile: in a double free the
/// owner may be writing it meanwhile (a live block's mark is 0, written before it was handed
/// out).
///
/// # Safety
/// `b` must point to a block of a live slab (at least 16 bytes).
#[inline(always)]
pub unsafe fn check_remote_free(b: *mut Block) {
    debug_assert!(!b.is_null());
    // SAFETY: caller's contract.
    if unsafe { core::ptr::read_volatile(&raw const (*b).mark) } == free_mark(b) {
        fatal_misuse("free(): double free detected (the block is already free)", b as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::block_check;
    use crate::heap::size_class::{NCLASS, class_size, slab_bytes};

    /// Every offset of every class's slab: accepted exactly at the start of a block.
    #[test]
    fn block_check_accepts_exactly_block_starts() {
        for c in 0..NCLASS {
            let (bs, bytes) = (class_size(c) as u64, slab_bytes(c) as u64);
            let capacity = bytes / bs;
            let (div, below) = block_check(bs as u32, capacity as u32);
            assert!(below <= div, "class {c}");
            for off in 0..bytes {
                let start = off % bs == 0 && off / bs < capacity;
                assert_eq!(off.wrapping_mul(div) < below, start, "class {c} ({bs} B), offset {off}");
            }
            // A power-of-two block size must divide its slab (the bound does not stop a block
            // past the last one).
            if bs.is_power_of_two() {
                assert_eq!(bytes % bs, 0, "class {c}");
            }
        }
    }
}

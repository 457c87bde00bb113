#![allow(dead_code)] // each example uses part of it
//! The allocator switch of the examples: one binary, the system allocator or hugeheap chosen
//! at the first allocation from `FORKBENCH_ALLOC` (`system`, or anything else for hugeheap),
//! so a benchmark can re-execute itself once per contestant.

use hugeheap::HugeAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// Chooses the allocator once, from `FORKBENCH_ALLOC` (read through libc, without allocating).
pub struct Switch;

/// The allocator in use: 0 not chosen yet, [`SYSTEM`], or 2 (hugeheap).
pub static CHOICE: AtomicU8 = AtomicU8::new(0);
/// `CHOICE` value of the system allocator.
pub const SYSTEM: u8 = 1;
static HUGE: HugeAlloc = HugeAlloc::new();

impl Switch {
    #[inline]
    fn huge(&self) -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let sys = hugeheap::os::env_var(b"FORKBENCH_ALLOC") == Some(b"system");
                CHOICE.store(if sys { 1 } else { 2 }, Ordering::Relaxed);
                !sys
            }
        }
    }
}

// SAFETY: forwards every call to one allocator, chosen before the first allocation and never
// changed, so each block is freed by the allocator that made it.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { if self.huge() { HUGE.alloc(l) } else { System.alloc(l) } }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { if self.huge() { HUGE.dealloc(p, l) } else { System.dealloc(p, l) } }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { if self.huge() { HUGE.alloc_zeroed(l) } else { System.alloc_zeroed(l) } }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { if self.huge() { HUGE.realloc(p, l, n) } else { System.realloc(p, l, n) } }
    }
}

#[global_allocator]
static A: Switch = Switch;

//! One global allocator for every contestant: the system allocator (glibc), jemalloc, mimalloc
//! or hugeheap, chosen once, before the first allocation, from `HUGEHEAP_BENCH_ALLOC`
//! (`system` when unset). A benchmark then re-executes its own binary once per contestant,
//! so the only difference between two runs is the allocator and its environment.
//!
//! The variable is read by scanning `environ` (no allocation: this runs inside the first
//! `malloc`). The choice is never changed afterwards, so every block is freed by the
//! allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The allocators a process can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Which {
    /// glibc's malloc (through `std::alloc::System`).
    System = 1,
    /// jemalloc (tikv-jemallocator).
    Jemalloc = 2,
    /// mimalloc (the `mimalloc` crate).
    Mimalloc = 3,
    /// hugeheap.
    Hugeheap = 4,
}

impl Which {
    /// The value of `HUGEHEAP_BENCH_ALLOC` that selects it.
    pub const fn env_value(self) -> &'static str {
        match self {
            Which::System => "system",
            Which::Jemalloc => "jemalloc",
            Which::Mimalloc => "mimalloc",
            Which::Hugeheap => "hugeheap",
        }
    }
}

/// The environment variable that selects the allocator.
pub const ALLOC_VAR: &str = "HUGEHEAP_BENCH_ALLOC";

static CHOICE: AtomicU8 = AtomicU8::new(0);
static HUGE: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new();
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this process runs on.
#[inline]
pub fn which() -> Which {
    match CHOICE.load(Ordering::Relaxed) {
        2 => Which::Jemalloc,
        3 => Which::Mimalloc,
        4 => Which::Hugeheap,
        1 => Which::System,
        _ => choose(),
    }
}

#[cold]
fn choose() -> Which {
    let w = match hugeheap::internal::env_var(ALLOC_VAR.as_bytes()) {
        Some(b"jemalloc") => Which::Jemalloc,
        Some(b"mimalloc") => Which::Mimalloc,
        Some(b"hugeheap") => Which::Hugeheap,
        _ => Which::System,
    };
    CHOICE.store(w as u8, Ordering::Relaxed);
    w
}

/// The switching allocator; declare it as the `#[global_allocator]` of a binary.
pub struct Switch;

macro_rules! forward {
    ($self:ident, $call:ident ( $($arg:expr),* )) => {
        match which() {
            Which::System => System.$call($($arg),*),
            Which::Jemalloc => JE.$call($($arg),*),
            Which::Mimalloc => MI.$call($($arg),*),
            Which::Hugeheap => HUGE.$call($($arg),*),
        }
    };
}

// SAFETY: every call is forwarded to one allocator, fixed before the first allocation, so
// each method's contract is that allocator's, and blocks always return to their maker.
unsafe impl GlobalAlloc for Switch {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { forward!(self, alloc(l)) }
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { forward!(self, dealloc(p, l)) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { forward!(self, alloc_zeroed(l)) }
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { forward!(self, realloc(p, l, n)) }
    }
}

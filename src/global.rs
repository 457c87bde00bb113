//! `HugeAlloc`: the `GlobalAlloc` front door. Dispatch only; the work is in `alloc.rs`.

use crate::alloc;
use crate::options::{Config, PageChain};
use core::alloc::{GlobalAlloc, Layout};

/// The allocator. `#[global_allocator] static A: HugeAlloc = HugeAlloc::new();` is all a Rust
/// program adds. The `const` builders set defaults in code; `HUGEHEAP_*` variables override
/// them at run time. There is one heap per process: the first `HugeAlloc` to allocate starts
/// it with its settings.
#[derive(Clone, Copy, Debug)]
pub struct HugeAlloc {
    config: Config,
}

impl HugeAlloc {
    /// The allocator with the defaults of the option table.
    pub const fn new() -> Self {
        HugeAlloc { config: Config::DEFAULT }
    }

    /// Sets the page-kind fallback chain (`HUGEHEAP_PAGES` overrides it).
    pub const fn pages(mut self, chain: PageChain) -> Self {
        self.config.pages = chain;
        self
    }

    /// Caps the committed heap at `bytes` (0: no cap; `HUGEHEAP_MAX_HEAP` overrides it).
    pub const fn max_heap(mut self, bytes: usize) -> Self {
        self.config.max_heap = bytes;
        self
    }

    /// Free bytes kept backed before whole free huge pages go back to the OS
    /// (`HUGEHEAP_RETAIN` overrides it).
    pub const fn retain(mut self, bytes: usize) -> Self {
        self.config.retain = bytes;
        self
    }

    /// Milliseconds a whole free huge page beyond `retain` stays backed before it goes back to
    /// the OS (`HUGEHEAP_DECAY` overrides it).
    pub const fn decay_ms(mut self, ms: u32) -> Self {
        self.config.decay_ms = ms;
        self
    }

    /// Percent of the hugetlb pages the process holds that must stay free in the pool, for
    /// copy-on-write after fork (`HUGEHEAP_COW_RESERVE` overrides it; 0: use the whole pool).
    pub const fn cow_reserve(mut self, percent: u32) -> Self {
        self.config.cow_reserve = percent;
        self
    }

    /// Prints the start-up line and the exit stats on stderr (`HUGEHEAP_VERBOSE` overrides it).
    pub const fn verbose(mut self, on: bool) -> Self {
        self.config.verbose = on;
        self
    }

    /// The settings in code (before the environment is applied).
    pub const fn config(&self) -> &Config {
        &self.config
    }
}

impl Default for HugeAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method returns null or memory satisfying the layout (see alloc.rs), never
// unwinds, and `dealloc`/`realloc` accept exactly what this allocator handed out.
unsafe impl GlobalAlloc for HugeAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: Layout guarantees a power-of-two alignment.
        unsafe { alloc::alloc(&self.config, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a live allocation of this allocator.
        unsafe { alloc::free(ptr) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        unsafe { alloc::alloc_zeroed(&self.config, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live allocation made with `layout`.
        unsafe { alloc::realloc(&self.config, ptr, layout.size(), new_size, layout.align()) }
    }
}

//! `HugeAlloc`: the `GlobalAlloc` front door. Dispatch only; the work is in `alloc.rs`.

use super::alloc;
use crate::options::{Config, PageChain};
use core::alloc::{GlobalAlloc, Layout};

/// The allocator: every heap byte in the largest page the machine offers, so that `fork()`
/// copies few page-table entries.
///
/// `#[global_allocator] static A: HugeAlloc = HugeAlloc::new();` is all a Rust program adds.
/// The `const` builders set defaults in code; the `HUGEHEAP_*` environment variables override
/// them at run time (see the README's table). There is one heap per process: the first
/// `HugeAlloc` to allocate starts it with its settings.
///
/// ```rust,standalone_crate
/// use hugeheap::{HugeAlloc, PageChain, PageKind};
///
/// #[global_allocator]
/// static A: HugeAlloc = HugeAlloc::new()
///     .pages(PageChain::of(&[PageKind::Mib2, PageKind::Thp])) // no 1 GiB pages
///     .max_heap(8 << 30) // null (ENOMEM) past 8 GiB
///     .retain(16 << 20); // keep at most 16 MiB of free huge pages backed
///
/// let v: Vec<u64> = (0..1_000_000).collect();
/// assert_eq!(v[999_999], 999_999);
/// assert!(hugeheap::stats().committed >= 8_000_000);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct HugeAlloc {
    config: Config,
}

impl HugeAlloc {
    /// The allocator with the defaults of the option table: page kinds `auto`, no cap, 8 MiB
    /// retained, 1 s decay, copy-on-write reserve 100%, quiet.
    ///
    /// ```rust,standalone_crate
    /// #[global_allocator]
    /// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new();
    ///
    /// let b = Box::new([7u8; 100]);
    /// assert_eq!(b[99], 7);
    /// ```
    pub const fn new() -> Self {
        HugeAlloc { config: Config::DEFAULT }
    }

    /// Sets the page-kind fallback chain (`HUGEHEAP_PAGES` overrides it). Plain 4 KiB pages
    /// end every chain, listed or not: the heap never fails for want of huge pages.
    ///
    /// ```rust,standalone_crate
    /// use hugeheap::{HugeAlloc, PageChain, PageKind};
    ///
    /// // THP only: no hugetlb pool is touched, whatever the machine has reserved.
    /// #[global_allocator]
    /// static A: HugeAlloc = HugeAlloc::new().pages(PageChain::of(&[PageKind::Thp]));
    ///
    /// let v = vec![1u8; 4 << 20];
    /// assert_eq!(hugeheap::stats().hugetlb(), 0);
    /// # drop(v);
    /// ```
    pub const fn pages(mut self, chain: PageChain) -> Self {
        self.config.pages = chain;
        self
    }

    /// Caps the committed heap at `bytes` (0: no cap; `HUGEHEAP_MAX_HEAP` overrides it). Past
    /// the cap, allocation returns null (`GlobalAlloc`) or NULL with `ENOMEM` (C), and
    /// hugeheap says so once on stderr.
    ///
    /// ```rust,standalone_crate
    /// #[global_allocator]
    /// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new().max_heap(64 << 20);
    ///
    /// let mut big: Vec<u8> = Vec::new();
    /// assert!(big.try_reserve_exact(200 << 20).is_err(), "past the 64 MiB cap");
    /// let small = vec![0u8; 1 << 20]; // the program goes on
    /// # drop(small);
    /// ```
    pub const fn max_heap(mut self, bytes: usize) -> Self {
        self.config.max_heap = bytes;
        self
    }

    /// Free bytes kept backed before whole free huge pages go back to the OS
    /// (`HUGEHEAP_RETAIN` overrides it).
    ///
    /// ```rust,standalone_crate
    /// use hugeheap::{HugeAlloc, PageChain, PageKind};
    ///
    /// // THP: hugetlb pages, when a pool gives them, stay with the process whatever `retain`.
    /// #[global_allocator]
    /// static A: HugeAlloc = HugeAlloc::new().pages(PageChain::of(&[PageKind::Thp])).retain(0).decay_ms(0);
    ///
    /// drop(vec![1u8; 64 << 20]);
    /// drop(vec![1u8; 2 << 20]); // the next use of the heap gives the free pages back
    /// assert!(hugeheap::stats().released_total >= 32 << 20);
    /// ```
    pub const fn retain(mut self, bytes: usize) -> Self {
        self.config.retain = bytes;
        self
    }

    /// Milliseconds a whole free huge page beyond `retain` stays backed before it goes back to
    /// the OS (`HUGEHEAP_DECAY` overrides it), so that a buffer freed and allocated again is
    /// not faulted in again.
    ///
    /// ```rust,standalone_crate
    /// use hugeheap::{HugeAlloc, PageChain, PageKind};
    ///
    /// #[global_allocator]
    /// static A: HugeAlloc = HugeAlloc::new().pages(PageChain::of(&[PageKind::Thp])).retain(0).decay_ms(60_000);
    ///
    /// drop(vec![1u8; 64 << 20]);
    /// drop(vec![1u8; 2 << 20]);
    /// assert_eq!(hugeheap::stats().released_total, 0, "kept for a minute");
    /// ```
    pub const fn decay_ms(mut self, ms: u32) -> Self {
        self.config.decay_ms = ms;
        self
    }

    /// Percent of the hugetlb pages the process holds that must stay free in the pool, for
    /// copy-on-write after fork (`HUGEHEAP_COW_RESERVE` overrides it; 0: use the whole pool).
    /// See docs/tuning.md for the trade-off.
    ///
    /// ```rust,standalone_crate
    /// // A program that never forks without exec may use the whole pool.
    /// #[global_allocator]
    /// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new().cow_reserve(0);
    /// # let v = vec![0u8; 10]; drop(v);
    /// ```
    pub const fn cow_reserve(mut self, percent: u32) -> Self {
        self.config.cow_reserve = percent;
        self
    }

    /// Prints the start-up line and the exit stats on stderr (`HUGEHEAP_VERBOSE` overrides
    /// it).
    ///
    /// ```rust,standalone_crate
    /// #[global_allocator]
    /// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new().verbose(true);
    /// # let v = vec![0u8; 10]; drop(v);
    /// ```
    pub const fn verbose(mut self, on: bool) -> Self {
        self.config.verbose = on;
        self
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
        // SAFETY: a `Layout`'s alignment is a power of two, as `alloc_zeroed` asks.
        unsafe { alloc::alloc_zeroed(&self.config, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live allocation made with `layout`.
        unsafe { alloc::realloc(&self.config, ptr, layout.size(), new_size, layout.align()) }
    }
}

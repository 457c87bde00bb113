#![doc = include_str!("../README.md")]
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(not(target_os = "linux"))]
compile_error!("hugeheap works on Linux only: it is built on hugetlb pages, THP and Linux's fork.");

// Layers, bottom up; each depends only on those below it (docs/design.md draws the graph;
// tests/imports.rs keeps the modules free of import circles):
//   units, pagekind   plain data
//   os/         the OS contract (the only place libc is called)
//   sync, options     the spin lock; the option table and its parsers
//   span        span headers, shared by the two heaps
//   pageheap/   the page heap: arena, ladder, huge map, filler, release, re-collapse, fork pages
//   heap/       thread heaps: fast paths, slabs, remote frees, thread start and exit
//   stats       Stats snapshot, KernelView
//   runtime     start-up, fork handlers, exit report
//   entry/      the front doors: dispatch, HugeAlloc (GlobalAlloc), the C API, introspection
mod entry;
mod heap;
mod options;
mod os;
mod pageheap;
mod pagekind;
mod runtime;
mod span;
mod stats;
mod sync;
mod units;

pub use entry::global::HugeAlloc;
pub use options::PageChain;
pub use pageheap::ladder::Refusal;
pub use pagekind::PageKind;
pub use stats::{Fallback, KernelView, Stats, stats, trim};

/// Not part of the public API: what hugeheap's own crates need beyond it (`libhugeheap.so`,
/// the `hugeheap` command, the tests). No stability promise. Everything here is either an
/// `unsafe fn` with the C allocation API's contract, or safe and unable to touch the heap
/// (parsers, readers of `/proc` and `/sys`, the option table).
#[doc(hidden)]
pub mod internal {
    /// The C allocation API with glibc's semantics (`libhugeheap.so` exports each function
    /// under its C name).
    pub mod c {
        pub use crate::entry::capi::*;
        pub use crate::entry::introspect::*;
        pub use crate::entry::map_zone::{madvise, mmap, mprotect, mremap, munmap};
        pub use crate::entry::thp_off::prctl;
    }
    pub use crate::options::{Config, OPTIONS, OptionRow, parse_size};
    pub use crate::os::files::field_kib;
    pub use crate::units::Bytes;

    /// Bytes of `[start, end)` (4 KiB aligned) mapped by huge page-table entries, exactly for
    /// the range (`PAGEMAP_SCAN`, Linux 6.7+); `None` where the kernel cannot tell or the
    /// pagemap cannot be read. For tests and diagnostics.
    pub fn huge_bytes_in(start: usize, end: usize) -> Option<usize> {
        crate::os::mem::Pagemap::open()?.huge_bytes(start, end)
    }
    pub use crate::os::probe::{OsInfo, PoolInfo, ThpMode, cgroup_room};
    pub use crate::os::process::env_var;
    pub use crate::pageheap::keepup::with_growth_steps;

    /// Checks the page heap's invariants (descriptor states, free map, filler lists,
    /// counters) and the calling thread's heap's (class lists, direct table, each listed
    /// slab's counts and free list); panics on a breach. For tests: takes the page heap's lock
    /// and walks all its metadata.
    #[cfg(feature = "check")]
    pub fn check_invariants() {
        if let Some(ph) = crate::pageheap::process_heap::lock().as_mut() {
            ph.check_invariants();
        }
        crate::heap::check::this_thread();
    }

    /// Tests only: makes cross-thread frees skip the message batches and take the fallback
    /// path (a chain threaded through the blocks), as they do when the message pool is used
    /// up.
    #[cfg(feature = "check")]
    pub fn set_loose_remote_frees(on: bool) {
        crate::heap::remote::LOOSE_ONLY.store(on, core::sync::atomic::Ordering::Relaxed);
    }
}

#![doc = include_str!("../README.md")]
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(not(target_os = "linux"))]
compile_error!("hugeheap works on Linux only: it is built on hugetlb pages, THP and Linux's fork.");

// Module map, bottom up:
//   os/        the OS contract (the only place libc is called) and the machine probe
//   units      page / huge page newtypes
//   options    the option table and env parsing
//   sync       the spin lock
//   pageheap/  arena (reserve, commit ladder), huge range map, filler, descriptors
//   span       span headers, the metadata object pool
//   size_class size classes
//   heap       thread heaps: the fast paths, remote frees, thread exit
//   runtime    start-up, the global lock, fork handlers, exit report
//   alloc      dispatch used by every front door
//   global     HugeAlloc (GlobalAlloc)
//   capi       the C allocation API (for libhugeheap.so)
//   stats      Stats snapshot and KernelView
mod alloc;
mod capi;
mod global;
mod heap;
mod options;
mod os;
mod pageheap;
mod runtime;
mod size_class;
mod span;
mod stats;
mod sync;
mod units;

pub use global::HugeAlloc;
pub use options::PageChain;
pub use os::{PageKind, Refusal};
pub use stats::{Fallback, KernelView, Stats, stats};

/// Not part of the public API: what hugeheap's own crates need beyond it (`libhugeheap.so`,
/// the `hugeheap` command, the tests). No stability promise. Everything here is either an
/// `unsafe fn` with the C allocation API's contract, or safe and unable to touch the heap
/// (parsers, readers of `/proc`, the option table).
#[doc(hidden)]
pub mod internal {
    /// The C allocation API with glibc's semantics (`libhugeheap.so` exports each function
    /// under its C name).
    pub mod c {
        pub use crate::capi::*;
    }
    pub use crate::options::{OPTIONS, OptionDoc, parse_size};
    pub use crate::os::env_var;
    pub use crate::os::probe::field_kib;

    /// Checks the page heap's invariants (descriptor states, free map, filler lists,
    /// counters); panics on a breach. For tests: takes the lock and walks all metadata.
    #[cfg(feature = "check")]
    pub fn check_invariants() {
        let mut rt = crate::runtime::lock();
        if let Some(ph) = rt.heap.as_mut() {
            ph.check_invariants();
        }
    }

    /// Tests only: makes cross-thread frees skip the message batches and take the fallback
    /// path (a chain threaded through the blocks), as they do when the message pool is used
    /// up.
    #[cfg(feature = "check")]
    pub fn set_loose_remote_frees(on: bool) {
        crate::heap::LOOSE_ONLY.store(on, core::sync::atomic::Ordering::Relaxed);
    }
}

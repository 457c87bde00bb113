//! The OS contract: every system call hugeheap makes goes through this module, and `libc::`
//! appears nowhere else in the crate. One file per concern:
//!
//! - [`mem`]: reserving address space, committing it with a page kind, giving it back,
//!   collapsing it into huge pages again, mapping metadata;
//! - [`files`]: reading /proc and /sys without allocating, under a root directory;
//! - [`probe`]: the machine, probed once into plain data (THP mode, pools, cgroup room);
//! - [`pool_counters`]: the hugetlb pools' counters, kept open for the reads before each fork;
//! - [`kept`]: descriptors kept open across calls, checked to still be the library's;
//! - [`kernel_view`]: what the kernel says this process holds;
//! - [`process`]: errno, the environment, secure execution, pid, clock, random seed;
//! - [`thread`]: yielding, thread-exit keys, fork and exit handlers, the helper thread;
//! - [`lockfile`]: a family's shared file and page, and record locks on it, which a process's
//!   exit or exec releases;
//! - [`stderr`]: messages without allocating, and the abort on heap misuse.
//!
//! Preconditions common to every function here:
//! - none of them allocates through the global allocator (they may run inside `malloc`);
//! - none of them panics;
//! - addresses and lengths passed to the mapping functions are page aligned and lie inside a
//!   mapping that hugeheap made itself (the arena or the metadata region).
//!
//! Linux only: the crate refuses to build elsewhere (see `lib.rs`).

pub mod files;
pub mod kept;
pub mod kernel_view;
pub mod lockfile;
pub mod mem;
pub mod pool_counters;
pub mod probe;
pub mod process;
pub mod stderr;
pub mod thread;

pub use kernel_view::KernelView;
pub use probe::OsInfo;
pub use process::{EINVAL, ENOMEM, errno, set_errno};
pub use stderr::{StackWriter, fatal_misuse};

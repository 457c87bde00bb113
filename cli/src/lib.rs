//! The `hugeheap` command's library: `run` (LD_PRELOAD of libhugeheap.so, which the command
//! carries: [`embedded`]), `lib-path`, `doctor`, the
//! allocator switch used by the benchmarks, and the benchmarks (reachable as `hugeheap bench
//! fork|alloc` and `cargo bench --bench fork|alloc`).
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod bench;
pub mod cli;
pub mod doctor;
pub mod embedded;
pub mod run;
pub mod switch;

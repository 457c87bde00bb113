//! The `hugeheap` command's library: `run` (LD_PRELOAD of libhugeheap.so), `doctor`, the
//! allocator switch used by the benchmarks, and the fork benchmark engine (reachable as
//! `hugeheap bench` and `cargo bench --bench fork`).
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod allocbench;
pub mod bench;
pub mod cli;
pub mod doctor;
pub mod run;
pub mod switch;

//! The `hugeheap` command's library: `run` (LD_PRELOAD of libhugeheap.so, which the command
//! carries: [`embedded`]), `lib-path`, `doctor` and `pool`. The benchmarks are a program of their own
//! (`hugeheap-bench`, the `bench` crate), which `hugeheap bench` runs.
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod bench;
pub mod cli;
pub mod doctor;
pub mod embedded;
pub mod pool;
pub mod run;

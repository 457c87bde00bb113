//! `hugeheap bench ...`: the benchmarks are a program of their own, `hugeheap-bench` (the
//! workspace's `bench` crate), so that this command links none of the contestants. It is run
//! from beside this program (as `cargo install` and a build tree place them), else from PATH.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// The benchmark program's name.
pub const BENCH: &str = "hugeheap-bench";

/// Where the benchmark program is: beside this program if it is there, else its bare name (for
/// a search of PATH).
pub fn bench_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(BENCH))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(BENCH))
}

/// Replaces this process with the benchmark program and `args`; returns only on failure, with
/// what to do about it.
pub fn exec(args: &[OsString]) -> String {
    let prog = bench_program();
    let err = Command::new(&prog).args(args).exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "the benchmarks are a program of their own, {BENCH}, found neither beside this one nor on PATH; \
             in a checkout of hugeheap: `cargo install --path bench` (or `cargo bench --bench fork` runs it there)"
        )
    } else {
        format!("cannot run {}: {err}", prog.display())
    }
}

//! The re-execute-yourself harness both benchmarks share: the parent runs this binary again
//! with the job in `HUGEHEAP_BENCH_CHILD` (JSON) and the contestant's allocator and
//! environment; the child does the job and prints one result line (JSON after
//! `HUGEHEAP_BENCH_RESULT `). The parent's own allocator settings never reach a child: every
//! variable an allocator reads is removed first.

use super::contestant::Contestant;
use super::{alloc, fork};
use crate::switch::ALLOC_VAR;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// The variable that makes a process a benchmark child; its value is the JSON [`Job`].
pub const CHILD_VAR: &str = "HUGEHEAP_BENCH_CHILD";
/// The prefix of a child's result line on stdout.
pub const RESULT_TAG: &str = "HUGEHEAP_BENCH_RESULT ";

/// What a child is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Job {
    /// Build a heap and fork from it.
    Fork(fork::child::ForkSpec),
    /// Run an allocation workload.
    Alloc(alloc::AllocSpec),
}

/// Whether an environment variable configures some allocator (and must not leak from the
/// parent into a child).
pub fn allocator_var(k: &str) -> bool {
    k.starts_with("HUGEHEAP_")
        || k.starts_with("MIMALLOC_")
        || k.starts_with("_RJEM_")
        || k.starts_with("MALLOC_")
        || k == "GLIBC_TUNABLES"
        || k == "LD_PRELOAD"
}

/// Runs `job` in a fresh process of `exe` under contestant `c`, and returns what it printed
/// after the result tag; an error says why it did not finish (the option refused, its exit
/// status and last line of stderr).
pub fn run_child<R: DeserializeOwned>(exe: &Path, job: &Job, c: &Contestant) -> Result<R, String> {
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if allocator_var(&k) {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD_VAR, serde_json::to_string(job).expect("json")).env(ALLOC_VAR, c.alloc.env_value());
    cmd.envs(c.env.iter().copied());
    let out = cmd.output().map_err(|e| format!("could not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = stderr.lines().find(|l| l.contains("Invalid conf") || l.contains("invalid conf")) {
        return Err(format!("option refused: {}", line.trim()));
    }
    match stdout.lines().find_map(|l| l.strip_prefix(RESULT_TAG)) {
        Some(json) if out.status.success() => serde_json::from_str(json).map_err(|e| format!("bad result: {e}")),
        _ => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            Err(format!("failed ({}): {last}", out.status))
        }
    }
}

/// Prints a child's result line.
pub fn print_result(r: &impl Serialize) {
    println!("{RESULT_TAG}{}", serde_json::to_string(r).expect("json"));
}

/// If this process is a benchmark child, does its job and returns true.
pub fn child_main_if_requested() -> bool {
    let Ok(spec) = std::env::var(CHILD_VAR) else { return false };
    match serde_json::from_str::<Job>(&spec) {
        Ok(Job::Fork(s)) => print_result(&fork::child::run(&s)),
        Ok(Job::Alloc(s)) => print_result(&alloc::child_run(&s)),
        Err(e) => {
            eprintln!("hugeheap bench: bad job {spec:?}: {e}");
            std::process::exit(2);
        }
    }
    true
}

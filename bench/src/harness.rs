//! The re-execute-yourself harness both benchmarks share: the parent runs this binary again
//! with the job in `HUGEHEAP_BENCH_CHILD` (its kind, a colon, its spec as JSON) and the
//! contestant's allocator and environment; the child does the job ([`crate::jobs`] maps each
//! kind to its benchmark) and prints one result line (JSON after `HUGEHEAP_BENCH_RESULT `).
//! The parent's own allocator settings never reach a child: every variable an allocator reads
//! is removed first. The harness knows no benchmark: each names its own jobs.

use crate::contestant::Contestant;
use crate::switch::ALLOC_VAR;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::process::Command;

/// The variable that makes a process a benchmark child; its value is the job's kind, a colon,
/// and its spec as JSON.
pub const CHILD_VAR: &str = "HUGEHEAP_BENCH_CHILD";
/// The prefix of a child's result line on stdout.
pub const RESULT_TAG: &str = "HUGEHEAP_BENCH_RESULT ";

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

/// Runs the job of `kind` with `spec` in a fresh process of `exe` under contestant `c`, and
/// returns what it printed after the result tag; an error says why it did not finish (the
/// option refused, its exit status and last line of stderr).
pub fn run_child<R: DeserializeOwned>(
    exe: &Path,
    kind: &str,
    spec: &impl Serialize,
    c: &Contestant,
) -> Result<R, String> {
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if allocator_var(&k) {
            cmd.env_remove(k);
        }
    }
    let job = format!("{kind}:{}", serde_json::to_string(spec).expect("json"));
    cmd.env(CHILD_VAR, job).env(ALLOC_VAR, c.alloc.env_value());
    cmd.envs(c.env.iter().copied());
    let out = cmd.output().map_err(|e| format!("could not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What hugeheap tells a program about itself (THP that cannot keep up with copy-on-write)
    // is part of what the run shows.
    for line in stderr.lines().filter(|l| l.starts_with("hugeheap: pid ") && l.contains("hugeheap pool --for")) {
        eprintln!("({}) {line}", c.name);
    }
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

/// The job this process was started for, if it is a benchmark child: its kind and its spec
/// (JSON).
pub fn requested_job() -> Option<(String, String)> {
    let job = std::env::var(CHILD_VAR).ok()?;
    let (kind, spec) = job.split_once(':').unwrap_or((&job, ""));
    Some((kind.to_string(), spec.to_string()))
}

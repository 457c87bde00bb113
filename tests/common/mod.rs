//! Helpers shared by the integration tests: running a test of this binary as a child process
//! with its own environment, and reading the kernel's view of a process.
#![allow(dead_code)]

use std::process::{Command, Output};

#[path = "skip.rs"]
mod skip_impl;
pub use skip_impl::skip;
#[path = "pools.rs"]
mod pools_impl;
#[allow(unused_imports)] // not every test binary resizes a pool
pub use pools_impl::{PoolGuard, pool_free};

/// The environment variable that marks a process as the child of a test; its value is the mode
/// the parent asked for.
pub const CHILD_VAR: &str = "HUGEHEAP_TEST_CHILD";

/// The calling test's name (libtest runs each test in a thread named after it).
pub fn test_name() -> String {
    std::thread::current().name().expect("called from a test").to_string()
}

/// In the child of a test: the mode its parent asked for.
pub fn child_mode() -> Option<String> {
    std::env::var(CHILD_VAR).ok()
}

/// If this process is the child of the calling test, runs `body` and returns true: a test that
/// runs in a child starts with `if as_child(body) { return; }`, so none of the parent's code
/// (its preconditions, its checks) runs in the child, and the parent never passes by doing
/// nothing.
pub fn as_child(body: impl FnOnce()) -> bool {
    if child_mode().is_none() {
        return false;
    }
    body();
    true
}

/// The command that runs the calling test again, alone, in a process of its own, as a child
/// in `mode`, with `env` (the parent's other HUGEHEAP_* variables removed, but for
/// HUGEHEAP_TEST_REQUIRE).
pub fn child_command(mode: &str, env: &[(&str, &str)]) -> Command {
    assert!(child_mode().is_none(), "a child starts no child");
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test_name().as_str(), "--exact", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUGEHEAP_") && k != skip_impl::REQUIRE_VAR {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD_VAR, mode);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the calling test as a child in `mode` with `env` (its body, see [`as_child`]) and
/// returns the child's output.
pub fn child(mode: &str, env: &[(&str, &str)]) -> Output {
    child_command(mode, env).output().expect("spawn the child")
}

/// The `key=value` pairs a child printed after an `@` (libtest may print the test name first).
pub fn child_values(out: &Output) -> std::collections::HashMap<String, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = std::collections::HashMap::new();
    for line in text.lines().filter_map(|l| l.find('@').map(|i| &l[i + 1..])) {
        for pair in line.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// Asserts the child exited 0, showing its output otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the calling test as a child with `env`, asserts it exited 0, and returns the values it
/// printed.
pub fn run_child(env: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    let out = child("run", env);
    assert_ok(&out);
    child_values(&out)
}

/// The child's value `k` as a number; panics, showing them all, when it is missing.
pub fn number(v: &std::collections::HashMap<String, String>, k: &str) -> usize {
    v.get(k).unwrap_or_else(|| panic!("{k} missing: {v:?}")).parse().unwrap()
}

/// Forks a child that exits at once, and waits for it: from then on this process has forked.
pub fn fork_a_child_that_exits() {
    // SAFETY: the child only exits; it allocates nothing.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: _exit skips the test harness's atexit work, as a forked child should.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
}

/// The THP mode in force, as the library reads it (`unknown` without THP).
pub fn thp_mode() -> String {
    hugeheap::internal::OsInfo::probe().thp.name().to_string()
}

/// Runs the calling test as a child with `env` and returns what it printed (printed here
/// too); `None`, the test skipped and said so with `why_not`, where THP is `never`.
pub fn run_child_with_thp(env: &[(&str, &str)], why_not: &str) -> Option<std::collections::HashMap<String, String>> {
    if thp_mode() == "never" {
        skip("thp", &format!("THP is `never` here: {why_not}"));
        return None;
    }
    let v = run_child(env);
    println!("{v:?}");
    Some(v)
}

/// The mappings of `maps` (the text of /proc/self/maps): start, end and the line.
pub fn parse_maps(maps: &str) -> Vec<(usize, usize, &str)> {
    maps.lines()
        .map(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap(), l)
        })
        .collect()
}

/// The address ranges `[start, end)` of the process's mappings (lines of /proc/self/maps).
fn map_ranges() -> Vec<(usize, usize)> {
    parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap()).into_iter().map(|(a, b, _)| (a, b)).collect()
}

/// Mappings (lines of /proc/self/maps) that overlap `[start, end)`.
pub fn mappings_in(start: usize, end: usize) -> usize {
    map_ranges().into_iter().filter(|&(a, b)| a < end && b > start).count()
}

/// Mappings that overlap neither the heap's arena nor its metadata mapping, as `s` places
/// them: what the rest of the program has mapped. (Counting the heap's own lines instead
/// would depend on the kernel merging the metadata with a neighbouring arena piece.)
pub fn mappings_outside_heap(s: &hugeheap::Stats) -> usize {
    outside_heap(s, &std::fs::read_to_string("/proc/self/maps").unwrap()).len()
}

/// The mappings of `maps` (the text of /proc/self/maps) that overlap neither the heap's arena
/// nor its metadata mapping, as `s` places them: start, end and the line.
pub fn outside_heap<'a>(s: &hugeheap::Stats, maps: &'a str) -> Vec<(usize, usize, &'a str)> {
    let heap = [(s.base, s.base + s.reserved), (s.metadata_base, s.metadata_base + s.metadata_reserved)];
    parse_maps(maps).into_iter().filter(|&(a, b, _)| heap.iter().all(|&(start, end)| a >= end || b <= start)).collect()
}

/// Bytes of `[start, end)` mapped by huge page-table entries, exactly for the range; `None`
/// where the kernel has no `PAGEMAP_SCAN` (Linux < 6.7). (smaps' AnonHugePages counts whole
/// mappings, and a heap is one mapping, so it counts every other huge page of the heap too.)
pub fn huge_bytes_in(start: usize, end: usize) -> Option<usize> {
    hugeheap::internal::huge_bytes_in(start, end)
}

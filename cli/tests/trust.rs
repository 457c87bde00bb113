//! What a program under hugeheap can trust it with: the review of issue 31, each finding
//! provoked as an attacker or an unlucky program would, through `libhugeheap.so`
//! (tests/c/trust.c):
//! - the re-collapse helper thread takes none of the program's signals (`sigwait`, `signalfd`
//!   after the first fork: before the fix, the helper took SIGUSR1 and the process died of it);
//! - no child forked while the helper reads `/proc/self/pagemap` inherits the descriptor
//!   (before: a child that dropped privileges could read its root parent's pagemap);
//! - a child that rewrites the family's shared table (src/pageheap/family.rs) cannot stop its
//!   parent or its siblings (before: its own thread id in the table's glibc mutex kept the
//!   parent inside `fork()` for ever).

mod common;

use common::{PoolGuard, build, hugeheap, lib, skip};
use std::path::Path;
use std::process::Output;

/// Runs `prog mode` under hugeheap with its heap in THP (a pool, where the machine has one,
/// would take it instead, and the helper starts only for THP).
fn run(prog: &Path, mode: &str) -> Output {
    hugeheap()
        .args(["run", "--pages", "thp", "--lib"])
        .arg(lib())
        .arg("--")
        .arg(prog)
        .arg(mode)
        .output()
        .expect("run trust")
}

/// The program's output, after checking that it ran to the end; `None` (said) when the helper
/// never started (no THP here), so there is nothing to check.
fn ran(out: &Output, what: &str) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.contains("helper 0") {
        skip("thp", &format!("{what}: the re-collapse helper did not start (no THP here)"));
        return None;
    }
    assert!(stdout.contains("helper 1"), "{what}: one helper thread after the first fork:\n{stdout}");
    Some(stdout)
}

#[test]
fn the_helper_thread_takes_no_signal_the_program_waits_for() {
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    for mode in ["sigwait", "signalfd"] {
        let out = run(&prog, mode);
        if let Some(stdout) = ran(&out, mode) {
            assert!(stdout.contains(&format!("{mode} ok")), "{stdout}");
        }
    }
}

#[test]
fn no_forked_child_inherits_the_pagemap_descriptor() {
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    let out = run(&prog, "pagemap");
    let Some(stdout) = ran(&out, "pagemap") else { return };
    assert!(stdout.contains("pagemap forks 400 leaks 0"), "{stdout}");
}

#[test]
fn a_child_that_rewrites_the_family_table_stops_no_one() {
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    let Some(pool) = PoolGuard::take(2048) else { return };
    // A 64 MiB heap in 2 MiB pages and as many again kept free for copy-on-write, with room.
    let got = pool.set_available(200);
    if got < 200 {
        skip("pool-2m", &format!("the 2 MiB pool could get only {got} of 200 free pages"));
        return;
    }
    let out = hugeheap()
        .args(["run", "--pages", "2m", "--lib"])
        .arg(lib())
        .arg("--")
        .arg(&prog)
        .arg("family")
        .output()
        .expect("run trust");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("family ok"),
        "{:?} (SIGALRM: hung)\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: usize = stdout.lines().find_map(|l| l.strip_prefix("hugetlb_kib ")?.parse().ok()).unwrap_or(0);
    assert!(kib >= 32 << 10, "the heap held {kib} KiB of hugetlb pages: nothing to test");
}

//! What a program under hugeheap can trust it with: the review of issue 31, each finding
//! provoked as an attacker or an unlucky program would, through `libhugeheap.so`
//! (tests/c/trust.c):
//! - the re-collapse helper thread takes none of the program's signals (`sigwait`, `signalfd`
//!   after the first fork: before the fix, the helper took SIGUSR1 and the process died of it);
//! - no child forked while the helper reads `/proc/self/pagemap` inherits the descriptor
//!   (before: a child that dropped privileges could read its root parent's pagemap);
//! - a child that rewrites the family's shared table (src/pageheap/family.rs) cannot stop its
//!   parent or its siblings (before: its own thread id in the table's glibc mutex kept the
//!   parent inside `fork()` for ever);
//! - the helper is a thread glibc does not know (so fork keeps glibc's single-threaded path)
//!   only where it holds no privilege the program could drop: root's helper takes nobody's ids
//!   and no capability, an unprivileged program's keeps its fixed ones, and a root that
//!   cannot take nobody's ids (a user namespace mapping root alone) gets a glibc thread; a root
//!   daemon that drops to another user after its first fork leaves no thread with root's
//!   ids; each helper still puts split huge pages together again.

mod common;

use common::{PoolGuard, build, hugeheap, lib, lib_for_anyone, root, skip, unprivileged};
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

/// As [`run`], as an unprivileged user: this one if the tests run as one, else user and group
/// 65534 through `setpriv`; `None` (said) where that cannot be done here.
fn run_unprivileged(prog: &Path, mode: &str) -> Option<Output> {
    let setpriv = unprivileged(prog)?;
    if setpriv.is_empty() {
        return Some(run(prog, mode));
    }
    let out = hugeheap()
        .args(["run", "--pages", "thp", "--lib"])
        .arg(lib_for_anyone())
        .arg("--")
        .arg("setpriv")
        .args(setpriv)
        .arg(prog)
        .arg(mode)
        .output()
        .expect("run trust");
    Some(out)
}

/// `name A B C ...` in `stdout`: the numbers after `name`.
fn numbers(stdout: &str, name: &str) -> Vec<u64> {
    let line = stdout.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} line:\n{stdout}"));
    line.split_whitespace().filter_map(|w| w.parse().ok()).collect()
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
        // As root the helper is glibc's thread, unprivileged one of its own: both block.
        for out in [Some(run(&prog, mode)), run_unprivileged(&prog, mode)].into_iter().flatten() {
            if let Some(stdout) = ran(&out, mode) {
                assert!(stdout.contains(&format!("{mode} ok")), "{stdout}");
            }
        }
    }
}

#[test]
fn no_forked_child_inherits_the_pagemap_descriptor() {
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    for out in [Some(run(&prog, "pagemap")), run_unprivileged(&prog, "pagemap")].into_iter().flatten() {
        let Some(stdout) = ran(&out, "pagemap") else { return };
        assert!(stdout.contains("pagemap forks 400 leaks 0"), "{stdout}");
    }
}

#[test]
fn a_root_daemon_that_drops_privileges_leaves_no_thread_with_roots_ids() {
    if !root() {
        skip("root", "a program that drops root's privileges needs root");
        return;
    }
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    let out = run(&prog, "setuid");
    let Some(stdout) = ran(&out, "setuid") else { return };
    assert!(stdout.contains("setuid ok"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("uids")).expect("uids line");
    let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert!(ids.len() >= 2, "the program and its helper: {line}");
    assert!(ids.iter().all(|t| t.split('/').all(|id| id != "0")), "a thread kept root's ids: {line}");
}

/// As [`run`], in a new user namespace that maps root alone (`unshare`): a root that cannot
/// take user 65534; `None` (said) where user namespaces cannot be made here.
fn run_in_user_namespace(prog: &Path, mode: &str) -> Option<Output> {
    let can = std::process::Command::new("unshare").args(["--user", "--map-root-user", "true"]).status();
    if !can.is_ok_and(|s| s.success()) {
        skip("userns", "unshare --user --map-root-user does not work here");
        return None;
    }
    let out = hugeheap()
        .args(["run", "--pages", "thp", "--lib"])
        .arg(lib())
        .args(["--", "unshare", "--user", "--map-root-user"])
        .arg(prog)
        .arg(mode)
        .output()
        .expect("run trust");
    Some(out)
}

#[test]
fn the_helper_is_unseen_by_glibc_only_without_privilege_and_restores_huge_pages() {
    let Some(prog) = build("trust.c", "cc", &[]) else { return };
    // (who, output, glibc's single-threaded flag, the helper's credentials)
    let nobody = "65534/65534/65534 65534/65534/65534 0000000000000000";
    let mut runs = Vec::new();
    if root() {
        // Root: an unseen thread that took nobody's ids and no capability.
        runs.push(("as root", run(&prog, "threads"), 1, Some(nobody)));
    }
    if let Some(out) = run_unprivileged(&prog, "threads") {
        // Unprivileged, credentials that cannot change: kept, unseen.
        let creds = if root() { Some(nobody) } else { None };
        runs.push(("unprivileged", out, 1, creds));
    }
    if root() {
        if let Some(out) = run_in_user_namespace(&prog, "threads") {
            // Root that cannot take nobody's ids: a thread of glibc's, which follows setuid.
            runs.push(("root of a user namespace", out, 0, None));
        }
    }
    for (who, out, single, creds) in runs {
        let Some(stdout) = ran(&out, who) else { return };
        assert_eq!(numbers(&stdout, "single_threaded"), [single], "{who}: glibc's count of threads:\n{stdout}");
        if let Some(creds) = creds {
            let line = stdout.lines().find_map(|l| l.strip_prefix("helper_creds ")).expect("helper_creds line");
            assert_eq!(line, creds, "{who}: the helper's user, group and capabilities:\n{stdout}");
        }
        let kib = numbers(&stdout, "threads huge_kib");
        let (start, split, after) = (kib[0], kib[1], kib[2]);
        assert!(start >= 64 << 10, "{who}: the heap held {start} KiB of THP: nothing to test:\n{stdout}");
        assert!(split < start, "{who}: the children's lives split no huge page:\n{stdout}");
        assert!(after * 10 >= start * 9, "{who}: the helper put back {after} of {start} KiB:\n{stdout}");
    }
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

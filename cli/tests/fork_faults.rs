//! What the allocator adds to fork() itself, through libhugeheap.so: `fork()` write-protects
//! the parent's memory, so every page its fork handlers write costs the parent a page fault on
//! every fork (and a copy of the page while the child lives). What they write at every fork
//! lies on a page fork does not copy (`MADV_WIPEONFORK`), so a process the C library counts
//! single-threaded forks with no fault of the allocator's, unless the fork has a hugetlb
//! decision to hand its child (the page heap's page: one); with other threads, the handlers
//! take the page heap's lock and the thread heaps' registry lock, a page each. A C program
//! counts the faults inside fork(), plain and under the preload in the same run, without the
//! re-collapse helper and with it, as root and as an unprivileged user: the helper is a
//! thread glibc does not know, so glibc's fork keeps its single-threaded path (with a thread
//! of its own, glibc's fork writes its own locks too). Page-fault counts, not times: the same
//! on a busy machine.

mod common;

use common::{build, lib, lib_for_anyone, skip, unprivileged, word_value};
use std::path::Path;
use std::process::Command;

/// Pages the allocator's fork handlers write in a process the C library counts as
/// single-threaded (a heap without hugetlb pages), and in one with other threads.
const HANDLER_PAGES: (i64, i64) = (0, 2);

/// The heap in THP (or 4 KiB pages where there is no THP), never in a hugetlb pool: the fork
/// has no decision to hand the child, whatever pools the machine has.
const NO_POOL: (&str, &str) = ("HUGEHEAP_PAGES", "thp");

/// The median number of faults inside fork() of `prog` (a 64 MiB heap, 100 forks), with an
/// idle second thread if `thread`, under the preload when `env` is given.
fn faults(prog: &Path, thread: bool, env: Option<&[(&str, &str)]>) -> i64 {
    faults_as(prog, thread, env, &[])
}

/// As [`faults`], run through `setpriv` with `setpriv`'s arguments when they are given.
fn faults_as(prog: &Path, thread: bool, env: Option<&[(&str, &str)]>, setpriv: &[&str]) -> i64 {
    let mut cmd = if setpriv.is_empty() { Command::new(prog) } else { Command::new("setpriv") };
    if !setpriv.is_empty() {
        cmd.args(setpriv).arg(prog);
    }
    cmd.args(["64", "100", if thread { "1" } else { "0" }]);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUGEHEAP_") || k == "LD_PRELOAD" {
            cmd.env_remove(k);
        }
    }
    if let Some(env) = env {
        cmd.env("LD_PRELOAD", if setpriv.is_empty() { lib() } else { lib_for_anyone() }).envs(env.iter().copied());
    }
    let out = cmd.output().expect("run forkfaults");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("child threads ok"), "a child's thread could not allocate:\n{text}");
    word_value(&text, "faults").unwrap_or_else(|| panic!("no faults= in {text:?}"))
}

#[test]
fn fork_handlers_write_no_copied_page_of_a_single_threaded_parent() {
    let Some(prog) = build("forkfaults.c", "cc", &[]) else { return };
    // No helper: the process stays single-threaded, as plain.
    let plain = faults(&prog, false, None);
    let hh = faults(&prog, false, Some(&[("HUGEHEAP_COLLAPSE", "0"), NO_POOL]));
    println!("single-threaded: plain {plain}, hugeheap without the helper {hh}");
    assert!(hh <= plain + HANDLER_PAGES.0, "fork() faulted on {hh} pages under hugeheap, {plain} plain");
    // The defaults: the helper is a second thread, one glibc does not know (root's takes
    // nobody's ids), so glibc's fork stays single-threaded.
    let hh_helper = faults(&prog, false, Some(&[NO_POOL]));
    println!("with the helper: hugeheap {hh_helper}");
    assert!(hh_helper <= plain + HANDLER_PAGES.0, "fork() faulted on {hh_helper} pages under hugeheap, {plain} plain");
    // A program with a thread of its own: glibc's fork writes its locks, and the handlers
    // the registry's.
    let plain_mt = faults(&prog, true, None);
    let hh_mt = faults(&prog, true, Some(&[]));
    println!("with a thread of the program's: plain {plain_mt}, hugeheap {hh_mt}");
    assert!(hh_mt <= plain_mt + HANDLER_PAGES.1, "fork() faulted on {hh_mt} pages under hugeheap, {plain_mt} plain");
}

#[test]
fn an_unprivileged_programs_helper_leaves_fork_single_threaded() {
    let Some(prog) = build("forkfaults.c", "cc", &[]) else { return };
    let Some(setpriv) = unprivileged(&prog) else { return };
    let plain = faults_as(&prog, false, None, setpriv);
    let hh = faults_as(&prog, false, Some(&[NO_POOL]), setpriv);
    println!("unprivileged: plain {plain}, hugeheap with its helper {hh}");
    assert!(hh <= plain + HANDLER_PAGES.0, "fork() faulted on {hh} pages under hugeheap, {plain} plain");
}

#[test]
fn a_fork_that_hands_its_child_a_pool_decision_writes_one_page() {
    let Some(prog) = build("forkfaults.c", "cc", &[]) else { return };
    // The 64 MiB heap (about 80 MiB of pages) and as many again for the copy-on-write reserve.
    if hugeheap::internal::OsInfo::probe().pool_2m.map_or(0, |p| p.free) < 96 {
        skip("pool-2m", "fewer than 96 free pages in the 2 MiB hugetlb pool (echo 128 > /proc/sys/vm/nr_hugepages)");
        return;
    }
    let plain = faults(&prog, false, None);
    let hh = faults(&prog, false, Some(&[("HUGEHEAP_PAGES", "2m")]));
    println!("heap in the pool, copy-on-write reserve on: plain {plain}, hugeheap {hh}");
    assert!(hh <= plain + 1, "fork() faulted on {hh} pages under hugeheap, {plain} plain");
}

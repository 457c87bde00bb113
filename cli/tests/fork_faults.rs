//! What the allocator adds to fork() itself, through libhugeheap.so: `fork()` write-protects
//! the parent's memory, so every page its fork handlers write costs the parent a page fault on
//! every fork (and a copy of the page while the child lives). The handlers write one page (the
//! page heap's lock page: the lock, its fork counts, the re-collapse doorbell), and the thread
//! heaps' registry lock too when the C library knows of other threads (only they use it). A C
//! program counts the faults inside fork(), plain and under
//! the preload in the same run, without the re-collapse helper and with it, as root and as an
//! unprivileged user: the helper is a thread glibc does not know, so glibc's fork keeps its
//! single-threaded path (with a thread of its own, glibc's fork writes its own locks too).
//! Page-fault counts, not times: the same on a busy machine.

mod common;

use common::{build, lib, lib_for_anyone, unprivileged, word_value};
use std::path::Path;
use std::process::Command;

/// Pages the allocator's fork handlers write in a process the C library counts as
/// single-threaded, and in one with other threads.
const HANDLER_PAGES: (i64, i64) = (1, 2);

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
fn fork_handlers_write_one_page_of_a_single_threaded_parent() {
    let Some(prog) = build("forkfaults.c", "cc", &[]) else { return };
    // No helper: the process stays single-threaded, as plain.
    let plain = faults(&prog, false, None);
    let hh = faults(&prog, false, Some(&[("HUGEHEAP_COLLAPSE", "0")]));
    println!("single-threaded: plain {plain}, hugeheap without the helper {hh}");
    assert!(hh <= plain + HANDLER_PAGES.0, "fork() faulted on {hh} pages under hugeheap, {plain} plain");
    // The defaults: the helper is a second thread, one glibc does not know (root's takes
    // nobody's ids), so glibc's fork stays single-threaded.
    let hh_helper = faults(&prog, false, Some(&[]));
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
    let hh = faults_as(&prog, false, Some(&[]), setpriv);
    println!("unprivileged: plain {plain}, hugeheap with its helper {hh}");
    assert!(hh <= plain + HANDLER_PAGES.0, "fork() faulted on {hh} pages under hugeheap, {plain} plain");
}

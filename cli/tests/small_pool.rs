//! The small phase joins the 2 MiB pool: a C program whose heap outgrows
//! `HUGEHEAP_HUGE_FROM` while a 2 MiB pool serves the rest ends with its first part in the pool
//! too (no THP page, whose page-table page each fork would copy), every object intact, in the
//! program and in a child forked afterwards; with a second thread alive, the first part stays
//! THP (another thread could touch it while it is moved). A heap that finds the pool empty
//! keeps no descriptor of its counters (only a process holding hugetlb pages reads them before
//! each fork, and keeps them open for that). Root only (the pool is resized); skipped, and
//! said, without.

mod common;

use common::{PoolGuard, build, hugeheap, lib, pool_free, skip, word_value};
use std::sync::Mutex;

/// The tests here resize the same pool.
static SERIAL: Mutex<()> = Mutex::new(());

/// Free pages for the runs that use the pool: the copy-on-write room lets the heap take half,
/// 400 MiB, more than the 128 MiB it builds.
const POOL: usize = 400;

const MIB_KIB: i64 = 1024;

/// What a run reported: the kernel's hugetlb and THP KiB, and the library's exit line of what
/// it committed of each kind.
struct Report {
    hugetlb: i64,
    thp: i64,
    pool_fds: i64,
    committed: String,
}

/// Runs small_pool.c with `mode` under `hugeheap run --verbose` (default settings) against
/// a 2 MiB pool of `free` pages, having checked that it and its child found every object
/// intact.
fn run(mode: &str, free: usize) -> Option<Report> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let prog = build("small_pool.c", "cc", &[])?;
    let pool = PoolGuard::take(2048)?;
    let got = pool.set_available(free);
    if got != free {
        skip("pool-2m", &format!("the 2 MiB pool could be set to {got}, not {free} free pages"));
        return None;
    }
    let out = hugeheap()
        .args(["run", "--verbose", "--lib"])
        .arg(lib())
        .arg("--")
        .arg(&prog)
        .args(["128", mode])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{mode}: {:?}\n{stdout}\n{stderr}", out.status);
    assert_eq!(word_value(&stdout, "intact"), Some(1), "{mode}: {stdout}");
    assert_eq!(word_value(&stdout, "child_ok"), Some(1), "{mode}: the forked child: {stdout}");
    assert_eq!(pool_free(2048), Some(free), "{mode}: the pool's free pages after the run");
    let v = |k| word_value(&stdout, k).unwrap_or_else(|| panic!("{k} in {stdout}"));
    let committed = stderr.lines().find(|l| l.contains("committed as")).unwrap_or_else(|| panic!("{stderr}"));
    Some(Report {
        hugetlb: v("hugetlb_kib"),
        thp: v("thp_kib"),
        pool_fds: v("pool_fds"),
        committed: committed.trim().to_string(),
    })
}

#[test]
fn a_single_threaded_heap_moves_its_small_phase_into_the_pool() {
    let Some(r) = run("alone", POOL) else { return };
    // 128 MiB of objects, all of it in hugetlb pages the program touched; nothing else.
    assert!(r.committed.contains(", thp 0 B, 4k 0 B"), "{}", r.committed);
    assert!(r.hugetlb >= 128 * MIB_KIB, "hugetlb {} KiB; {}", r.hugetlb, r.committed);
    assert_eq!(r.thp, 0, "the kernel's THP: {} KiB; {}", r.thp, r.committed);
}

#[test]
fn with_a_second_thread_the_small_phase_stays_thp() {
    let Some(r) = run("thread", POOL) else { return };
    // The first 32 MiB (`HUGEHEAP_HUGE_FROM`) stay out of the pool; the rest is in it.
    assert!(r.committed.contains(", thp 32.0 MiB, 4k 0 B"), "{}", r.committed);
    assert!(r.hugetlb >= 64 * MIB_KIB, "hugetlb {} KiB; {}", r.hugetlb, r.committed);
}

#[test]
fn a_heap_that_finds_the_pool_empty_keeps_no_descriptor_of_it() {
    let Some(r) = run("alone", 0) else { return };
    assert!(r.committed.contains(", 2m 0 B,"), "{}", r.committed);
    assert_eq!(r.hugetlb, 0);
    assert_eq!(r.pool_fds, 0, "descriptors of the pool's counters left open; {}", r.committed);
}

#[test]
fn a_heap_in_the_pool_keeps_its_counters_for_its_forks() {
    let Some(r) = run("alone", POOL) else { return };
    // free, resv and nr_overcommit (surplus too where the pool may grow).
    assert!((3..=4).contains(&r.pool_fds), "{} pool descriptors", r.pool_fds);
}

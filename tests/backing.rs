//! Page backing, read from the kernel: a child builds a heap of >= 1 GiB from small
//! allocations under a given `HUGEHEAP_PAGES`, then reports its `stats()` and what the kernel
//! says (`AnonHugePages`, `HugetlbPages`, `VmPTE`, the mappings of the arena). The parent
//! asserts coverage where the kind is available and the fallback where it is not, so the
//! tests pass with and without hugetlb pools. Children run one at a time: they share the pools.
//!
//! Tolerances, stated once: ">= 90% of the heap" means kernel huge bytes >= 0.9 x the bytes in
//! use; "agrees" means kernel huge bytes are at most what `stats()` says was committed with
//! that kind (the kernel cannot back what was never committed) and the arena's mappings in
//! /proc/self/maps equal `stats().mappings - 1` (the metadata mapping lies outside the arena).

mod common;

use common::*;
use hugeheap::{HugeAlloc, PageKind};
use std::collections::HashMap;
use std::sync::Mutex;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the tests of this file apart: their children take pool pages and memory.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const GIB: usize = 1 << 30;

/// The child body: build `bytes` of heap from small objects and report.
fn build_and_report(bytes: usize) {
    let sizes = [32usize, 48, 64, 100, 128, 200, 256, 400, 512, 1000];
    let mut live: Vec<Vec<u8>> = Vec::with_capacity(bytes / 150);
    let mut total = 0;
    let mut i = 0;
    while total < bytes {
        let n = sizes[i % sizes.len()];
        live.push(vec![i as u8; n]);
        total += n;
        i += 1;
    }
    // Some churn: free a tenth and allocate again.
    for j in (0..live.len()).step_by(10) {
        live[j] = vec![1u8; sizes[j % sizes.len()]];
    }
    let s = hugeheap::stats();
    let k = hugeheap::KernelView::read();
    let arena_maps = mappings_in(s.base, s.base + s.reserved);
    println!(
        "@in_use={} committed={} k1g={} k2m={} kthp={} k4k={} mappings={} arena_maps={}",
        s.in_use,
        s.committed,
        s.bytes(PageKind::Gib1),
        s.bytes(PageKind::Mib2),
        s.bytes(PageKind::Thp),
        s.bytes(PageKind::Small),
        s.mappings,
        arena_maps
    );
    for kind in PageKind::ALL {
        let f = s.fallbacks[kind as usize];
        println!(
            "@fb_{}={} why_{}={}",
            kind.name(),
            f.count,
            kind.name(),
            f.reason.map_or("-".into(), |r| format!("{r:?}"))
        );
    }
    println!("@anon_huge={} hugetlb={} vm_pte={} rss={}", k.anon_huge, k.hugetlb, k.vm_pte, k.rss);
    println!("{s}");
    assert!(live.iter().step_by(1001).all(|v| !v.is_empty()));
}

/// THP heap, a fork whose child lives while the parent rewrites everything (copy-on-write
/// splits each huge page), then the child exits: hugeheap collapses the pages again.
fn split_and_collapse() {
    let mut heap: Vec<Vec<u8>> = (0..128 * 1024).map(|i| vec![i as u8; 1000]).collect();
    let before = hugeheap::KernelView::read().anon_huge;
    let mut fds = [0; 2];
    // SAFETY: pipe/fork/read/_exit; the child touches nothing and exits without destructors.
    let pid = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        if pid == 0 {
            let mut b = 0u8;
            libc::read(fds[0], (&raw mut b).cast(), 1);
            libc::_exit(0);
        }
        pid
    };
    // Write half of the heap, in runs of 8 blocks (about 8 KiB): every huge page is split, and
    // every one keeps 4 KiB pages the child still shares, so the helper may not collapse any of
    // them back while the child lives, however slowly this loop runs. (Had it written every
    // page, a huge page whose pages were all copied already is the parent's alone, and the
    // helper rightly collapses it at once: how much stayed split would depend on the machine's
    // speed.)
    for (i, v) in heap.iter_mut().enumerate() {
        if i / 8 % 2 == 0 {
            v.fill(7);
        }
    }
    let split = hugeheap::KernelView::read().anon_huge;
    // SAFETY: wakes and reaps our child.
    unsafe {
        libc::write(fds[1], b"x".as_ptr().cast(), 1);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    // The program goes on allocating; the heap's slow path collapses a step at a time. The
    // wait is for a whole sweep since the fork, however long a busy machine takes to get there
    // (the bound on rounds only keeps a broken re-collapse from hanging the test).
    let mut steps = 0;
    while hugeheap::stats().recollapse_pending && steps < 100_000 {
        std::thread::sleep(std::time::Duration::from_millis(25));
        drop(vec![1u8; 4 << 20]);
        steps += 1;
    }
    let after = hugeheap::KernelView::read().anon_huge;
    assert!(heap.iter().enumerate().all(|(i, v)| v.iter().all(|&b| b == if i / 8 % 2 == 0 { 7 } else { i as u8 })));
    println!("@before={before} split={split} after={after} steps={steps}");
}

struct Report {
    v: HashMap<String, String>,
    text: String,
}

impl Report {
    fn n(&self, k: &str) -> usize {
        self.v.get(k).unwrap_or_else(|| panic!("{k} missing in\n{}", self.text)).parse().unwrap()
    }
    fn s(&self, k: &str) -> &str {
        &self.v[k]
    }
}

/// The body of a child: the heap its mode names (a size in GiB), built and reported.
fn build_body() {
    let gib: f64 = child_mode().expect("in a child").parse().expect("the mode is a size in GiB");
    build_and_report((gib * GIB as f64) as usize);
}

/// Builds a heap of `gib` GiB under `HUGEHEAP_PAGES=pages` in a child and returns its report.
fn run(pages: Option<&str>, gib: f64) -> Report {
    // The whole pool may be used here: these tests are about coverage. The copy-on-write room
    // (HUGEHEAP_COW_RESERVE, 100 by default) has tests of its own in tests/pools.rs.
    let mut env: Vec<(&str, &str)> = vec![("HUGEHEAP_COW_RESERVE", "0")];
    env.extend(pages.map(|p| ("HUGEHEAP_PAGES", p)));
    let out = child(&gib.to_string(), &env);
    assert_ok(&out);
    let r = Report { v: child_values(&out), text: String::from_utf8_lossy(&out.stdout).into_owned() };
    eprintln!("HUGEHEAP_PAGES={pages:?} {gib} GiB:\n{}", r.text);
    // Always: the arena's mappings are what stats() says, and few.
    assert_eq!(r.n("arena_maps"), r.n("mappings") - 1, "{}", r.text);
    assert!(r.n("mappings") <= 40, "too many mappings: {}", r.text);
    assert!(r.n("in_use") >= (gib * GIB as f64) as usize, "{}", r.text);
    r
}

fn thp_available() -> bool {
    thp_mode() != "never" && thp_mode() != "unknown"
}

#[test]
fn thp_split_by_copy_on_write_is_collapsed_again() {
    if as_child(split_and_collapse) {
        return;
    }
    if !thp_available() {
        skip("thp", &format!("THP is {} here", thp_mode()));
        return;
    }
    let _serial = serial();
    let out = child("split", &[("HUGEHEAP_PAGES", "thp")]);
    assert_ok(&out);
    let v = child_values(&out);
    eprintln!("{v:?}");
    let n = |k: &str| v[k].parse::<usize>().unwrap();
    assert!(n("before") >= 120 << 20, "the heap was not in huge pages to begin with: {v:?}");
    assert!(n("split") < n("before") / 2, "copy-on-write did not split the huge pages: {v:?}");
    assert!(n("after") >= n("before") / 10 * 9, "not collapsed again: {v:?}");
}

#[test]
fn forced_4k_has_no_huge_pages() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    let r = run(Some("4k"), 1.0);
    assert_eq!(r.n("k4k"), r.n("committed"));
    // Other memory of the process could be THP under `always`; the heap itself may not be.
    assert!(r.n("anon_huge") <= 8 << 20, "{}", r.text);
    assert_eq!(r.n("hugetlb"), 0);
}

#[test]
fn thp_backs_the_heap() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    let r = run(Some("thp"), 1.0);
    if !thp_available() {
        skip("thp", &format!("THP is {} here: the coverage check is replaced by the fallback check", thp_mode()));
        assert!(r.n("fb_thp") > 0);
        assert_eq!(r.n("k4k"), r.n("committed"));
        return;
    }
    assert_eq!(r.n("kthp"), r.n("committed"));
    assert!(r.n("anon_huge") * 10 >= r.n("in_use") * 9, "less than 90% in AnonHugePages: {}", r.text);
    assert!(r.n("anon_huge") <= r.n("kthp") + (8 << 20), "kernel THP beyond what was advised: {}", r.text);
}

#[test]
fn hugetlb_2m_or_fallback() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    // A heap of 1 GiB in use commits ~650 pages with the chunk ramp; take what the pool has.
    let free = pool_free(2048).unwrap_or(0);
    let r = run(Some("2m"), 1.0);
    let k2m = r.n("k2m");
    let (pte_hugetlb, in_use) = (r.n("vm_pte"), r.n("in_use"));
    if free >= 700 {
        assert_eq!(k2m, r.n("committed"), "{}", r.text);
        assert!(r.n("hugetlb") * 10 >= in_use * 9, "less than 90% in HugetlbPages: {}", r.text);
        assert!(r.n("hugetlb") <= k2m);
        // VmPTE stays tiny: compare with the same heap in 4 KiB pages.
        let small = run(Some("4k"), 1.0);
        assert!(pte_hugetlb * 10 < small.n("vm_pte"), "VmPTE {} vs {} with 4k", pte_hugetlb, small.n("vm_pte"));
    } else {
        skip("pool-2m", &format!("the 2 MiB pool has {free} free pages (< 700): the fallback is checked instead"));
        assert!(r.n("fb_2m") > 0, "{}", r.text);
        assert_eq!(r.s("why_2m"), "PoolEmpty", "{}", r.text);
        assert!(k2m <= free * (2 << 20), "{}", r.text);
        assert_eq!(r.n("hugetlb"), k2m.min(r.n("hugetlb")));
        assert!(r.n("k4k") > 0, "the rest must fall back to 4k: {}", r.text);
    }
}

#[test]
fn pool_smaller_than_heap_gives_part_hugetlb() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    let free = pool_free(2048).unwrap_or(0);
    if free == 0 || free > 1024 {
        skip("pool-2m", &format!("needs a 2 MiB pool of 1..1024 free pages, has {free}"));
        return;
    }
    let heap_gib = ((free * 2 + 256) as f64) / 1024.0;
    let r = run(Some("2m,thp"), heap_gib);
    assert!(r.n("k2m") > 0 && r.n("k2m") <= free * (2 << 20), "{}", r.text);
    assert!(r.n("fb_2m") > 0 && r.s("why_2m") == "PoolEmpty", "{}", r.text);
    assert!(r.n("kthp") + r.n("k4k") > 0, "{}", r.text);
    assert!(r.n("hugetlb") * 10 >= r.n("k2m") * 9, "{}", r.text);
}

#[test]
fn gib_pages_or_fallback() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    let free = pool_free(1048576).unwrap_or(0);
    let r = run(Some("1g,thp"), 0.75);
    if free >= 1 {
        assert!(r.n("k1g") >= GIB, "{}", r.text);
        assert!(r.n("hugetlb") >= GIB, "{}", r.text);
        assert!(r.n("vm_pte") < 1 << 20, "{}", r.text);
    } else {
        skip("pool-1g", "the 1 GiB pool has no free page: the fallback is checked instead");
        assert_eq!(r.n("k1g"), 0);
        assert!(r.n("fb_1g") > 0, "{}", r.text);
        assert!(r.n("kthp") + r.n("k4k") == r.n("committed"), "{}", r.text);
    }
}

#[test]
fn auto_puts_the_heap_in_huge_pages() {
    if as_child(build_body) {
        return;
    }
    // Children of these tests take pool pages: one at a time, and the pool read inside.
    let _serial = serial();
    let r = run(None, 1.0);
    let huge = r.n("anon_huge") + r.n("hugetlb");
    if thp_available() || pool_free(2048).unwrap_or(0) >= 700 {
        assert!(huge * 10 >= r.n("in_use") * 9, "less than 90% in huge pages: {}", r.text);
    } else {
        skip("thp", "no THP and no 2 MiB pool: the fallback to 4 KiB pages is checked instead");
        assert_eq!(r.n("k4k"), r.n("committed"));
    }
}

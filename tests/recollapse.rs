//! Re-collapse and forked children: THP huge pages split by copy-on-write are collapsed again
//! by the helper thread, but never while a child still shares them (collapsing would copy
//! 2 MiB the child keeps); once the child is gone they are. Small heaps: the first
//! `HUGEHEAP_HUGE_FROM` of heap are plain 4 KiB pages, turned into THP when the heap outgrows
//! them, and what they free goes back to the OS as glibc gives it back. Each test runs in a child process of its own with its own environment; THP checks
//! are skipped, and said, where THP is `never`.

mod common;

use common::{as_child, fork_a_child_that_exits, number, run_child, skip, thp_mode};
use hugeheap::{HugeAlloc, PageKind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

const MIB: usize = 1 << 20;
const HUGE: usize = 2 * MIB;

/// Only keeps a broken helper from hanging the test; the waits are for the helper's
/// progress, which a busy machine slows but never stops.
const HANG: Duration = Duration::from_secs(300);

fn thp_available() -> bool {
    if thp_mode() == "never" {
        skip("thp", "THP is `never` here");
        return false;
    }
    true
}

/// Bytes of `[start, end)` in huge pages; skips the test (said) where the kernel cannot tell
/// exactly (no `PAGEMAP_SCAN`, Linux < 6.7).
fn huge_in(start: usize, end: usize) -> usize {
    common::huge_bytes_in(start, end).unwrap_or_else(|| {
        println!("@no_pagemap_scan=1");
        0
    })
}

/// Waits until `done()` holds; panics after [`HANG`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG, "still waiting, after {HANG:?}, for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 2 MiB-aligned buffer of `len` bytes inside the heap, every byte written.
fn huge_buffer(len: usize) -> (Vec<u8>, usize, usize) {
    let mut v = vec![0u8; len + HUGE];
    let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
    let off = start - v.as_ptr() as usize;
    v[off..off + len].fill(7);
    (v, start, start + len)
}

#[test]
fn pages_a_child_shares_are_collapsed_only_once_it_is_gone() {
    if as_child(|| {
        const LEN: usize = 64 * MIB;
        let (mut v, start, end) = huge_buffer(LEN);
        let base = v.as_ptr() as usize;
        // The kernel may not hand out every huge page at fault (fragmented memory); the
        // helper's first sweep after the fork collapses what it can, so measure from there.
        let before = huge_in(start, end);
        let (r, w) = pipe();
        // SAFETY: the child only reads a pipe and exits; it allocates nothing.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut b = [0u8; 1];
            // SAFETY: reading into a local buffer from our own pipe.
            unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) };
            // SAFETY: _exit skips the test harness's atexit work, as a forked child should.
            unsafe { libc::_exit(0) };
        }
        // One 4 KiB write in every huge page: each splits (copying 4 KiB); 511 of its 512
        // pages stay shared with the child.
        for hp in (start..end).step_by(HUGE) {
            v[hp - base] = 9;
        }
        // The helper looks at every huge page of the heap (a sweep) and leaves them alone
        // while the child lives: wait until it has skipped as many as the heap has.
        let s = hugeheap::stats();
        let (heap_pages, shared_at_fork) = (s.committed / HUGE, s.recollapse_shared);
        wait_for("a sweep to find the pages shared", || {
            hugeheap::stats().recollapse_shared >= shared_at_fork + heap_pages
        });
        let while_shared = huge_in(start, end);
        // Let the child go: the pages are the parent's alone, and the helper collapses them.
        // SAFETY: writing one byte from a local buffer to our own pipe.
        unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        wait_for("a complete sweep after the child exited", || !hugeheap::stats().recollapse_pending);
        let after = huge_in(start, end);
        let s = hugeheap::stats();
        println!(
            "@before={before} while_shared={while_shared} after={after} len={LEN} shared={} collapsed={}",
            s.recollapse_shared, s.recollapse_collapsed
        );
        drop(v);
    }) {
        return;
    }
    if !thp_available() {
        return;
    }
    let v = run_child(&[("HUGEHEAP_PAGES", "thp")]);
    let get = |k: &str| number(&v, k);
    if skipped_without_scan(&v) {
        return;
    }
    let (before, while_shared, after, len) = (get("before"), get("while_shared"), get("after"), get("len"));
    println!("huge pages: {before} at the fork, {while_shared} while the child shared them, {after} after");
    // Every huge page was written and so split; none was collapsed while the child shared it.
    assert_eq!(while_shared, 0, "pages collapsed while a child shared them");
    // Once the child is gone they are collapsed again: as many as the kernel gave at fault,
    // and at least nine in ten.
    assert!(after >= before.min(len * 9 / 10), "after the child: {after} of {len} in huge pages (before: {before})");
}

/// Whether the child could not measure huge pages exactly (said, as a skip).
fn skipped_without_scan(v: &HashMap<String, String>) -> bool {
    if v.contains_key("no_pagemap_scan") {
        skip("pagemap-scan", "the kernel has no PAGEMAP_SCAN (Linux 6.7+) to count huge pages in a range");
        return true;
    }
    false
}

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

#[test]
fn a_small_heap_stays_in_4k_pages_and_turns_huge_when_it_grows() {
    if as_child(|| {
        let small: Vec<Box<[u8; 200]>> = (0..20_000).map(|i| Box::new([i as u8; 200])).collect();
        let s = hugeheap::stats();
        let small_committed = s.committed;
        println!(
            "@small_committed={} small_4k={} small_thp={} small_hugetlb={} small_anon_huge={}",
            s.committed,
            s.bytes(PageKind::Small),
            s.bytes(PageKind::Thp),
            s.hugetlb(),
            huge_in(s.base, s.base + s.committed)
        );
        // Grow past HUGEHEAP_HUGE_FROM (32 MiB by default).
        let (big, _, _) = huge_buffer(96 * MIB);
        let s = hugeheap::stats();
        println!(
            "@big_committed={} big_4k={} big_thp={} big_hugetlb={}",
            s.committed,
            s.bytes(PageKind::Small),
            s.bytes(PageKind::Thp),
            s.hugetlb()
        );
        // A fork starts the helper, which collapses the first 32 MiB too once no child
        // shares them (they share one mapping with the THP that follows, if any: its huge
        // pages are what the kernel can tell).
        fork_a_child_that_exits();
        wait_for("a complete sweep", || !hugeheap::stats().recollapse_pending);
        let s = hugeheap::stats();
        let small_end = s.base + small_committed.next_multiple_of(HUGE);
        println!(
            "@thp_small_huge={} thp_anon_huge={}",
            huge_in(s.base, small_end),
            huge_in(s.base, s.base + s.committed)
        );
        drop((small, big));
    }) {
        return;
    }
    if !thp_available() {
        return;
    }
    let v = run_child(&[]);
    let get = |k: &str| number(&v, k);
    if skipped_without_scan(&v) {
        return;
    }
    // Small: 4 KiB pages only (which THP `always` may still make huge, as it does glibc's).
    assert!(get("small_committed") <= 32 * MIB);
    assert_eq!((get("small_4k"), get("small_thp")), (get("small_committed"), 0));
    if thp_mode() == "madvise" {
        assert_eq!(get("small_anon_huge"), 0);
    }
    // Grown: no 4 KiB pages left; the first part is THP (the rest too, or hugetlb pages where
    // a pool has them).
    assert_eq!(get("big_4k"), 0);
    assert_eq!(get("big_thp") + get("big_hugetlb"), get("big_committed"));
    assert!(get("big_thp") >= get("small_committed"));
    let huge = get("thp_anon_huge");
    assert!(huge >= get("big_thp") / 10 * 9, "after the sweep, {huge} of {} THP bytes in huge pages", get("big_thp"));
    // The small phase's pages among them: collapsed by the sweep the fork started.
    let (small_huge, small) = (get("thp_small_huge"), get("small_committed").next_multiple_of(HUGE));
    assert!(small_huge >= small / 10 * 9, "the small phase's {small} bytes: {small_huge} in huge pages");
    // HUGEHEAP_HUGE_FROM=0: huge pages from the first byte.
    let v = run_child(&[("HUGEHEAP_HUGE_FROM", "0")]);
    let get = |k: &str| number(&v, k);
    assert_eq!(get("small_4k"), 0);
    assert_eq!(get("small_thp") + get("small_hugetlb"), get("small_committed"));
}

/// Whether this process has the re-collapse helper thread.
fn has_helper() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .any(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).is_ok_and(|c| c.trim() == "hugeheap-thp"))
}

#[test]
fn a_heap_that_outgrows_the_small_phase_is_collapsed_without_a_fork() {
    if as_child(|| {
        let small: Vec<Box<[u8; 200]>> = (0..20_000).map(|i| Box::new([i as u8; 200])).collect();
        let small_committed = hugeheap::stats().committed;
        let helper_small = has_helper();
        if std::env::var_os("HH_TEST_FORK_FIRST").is_some() {
            // A fork while the heap is small (no THP yet: the helper does not start): from
            // now on another process may share its pages.
            fork_a_child_that_exits();
        }
        // Grow past HUGEHEAP_HUGE_FROM: the allocation that does it has the small phase collapsed.
        let (big, _, _) = huge_buffer(96 * MIB);
        let helper_big = has_helper();
        let pending_at_once = hugeheap::stats().recollapse_pending;
        if helper_big {
            wait_for("a complete sweep", || !hugeheap::stats().recollapse_pending);
        }
        let s = hugeheap::stats();
        let small_end = s.base + small_committed.next_multiple_of(HUGE);
        println!(
            "@helper_small={} helper_big={} pending_at_once={} small={} small_huge={}",
            u8::from(helper_small),
            u8::from(helper_big),
            u8::from(pending_at_once),
            small_end - s.base,
            huge_in(s.base, small_end)
        );
        drop((small, big));
    }) {
        return;
    }
    if !thp_available() {
        return;
    }
    // A process that never forked: collapsed by the helper, which the allocation that outgrew
    // the small phase started, off the program's path.
    let v = run_child(&[]);
    let get = |k: &str| number(&v, k);
    assert_eq!(get("helper_small"), 0, "a small heap that never forked has no helper thread");
    assert_eq!(get("helper_big"), 1, "growing past the small phase starts the helper");
    if skipped_without_scan(&v) {
        return;
    }
    let (small, small_huge) = (get("small"), get("small_huge"));
    assert!(small_huge >= small / 10 * 9, "the small phase's {small} bytes: {small_huge} in huge pages, no fork made");
    // A process that forked while small: another may share its pages, so the helper, which asks
    // the pagemap first, collapses them.
    let v = run_child(&[("HH_TEST_FORK_FIRST", "1")]);
    let get = |k: &str| number(&v, k);
    assert_eq!(get("helper_big"), 1, "after a fork, growing past the small phase starts the helper");
    let (small, small_huge) = (get("small"), get("small_huge"));
    assert!(small_huge >= small / 10 * 9, "the small phase's {small} bytes: {small_huge} in huge pages after a fork");
    // HUGEHEAP_COLLAPSE=0: no helper, ever; after a fork, the small phase waits for khugepaged.
    let v = run_child(&[("HUGEHEAP_COLLAPSE", "0"), ("HH_TEST_FORK_FIRST", "1")]);
    assert_eq!(v.get("helper_big").map(String::as_str), Some("0"), "{v:?}");
    // ... but a process that never forked has the small phase collapsed by the allocating thread
    // all the same: that needs no thread.
    let v = run_child(&[("HUGEHEAP_COLLAPSE", "0")]);
    let get = |k: &str| number(&v, k);
    assert_eq!(get("helper_big"), 0, "HUGEHEAP_COLLAPSE=0 starts no helper");
    assert_eq!(get("pending_at_once"), 0, "the small phase's sweep is done when the allocation returns");
    let (small, small_huge) = (get("small"), get("small_huge"));
    assert!(
        small_huge >= small / 10 * 9,
        "HUGEHEAP_COLLAPSE=0: the small phase's {small} bytes: {small_huge} in huge pages"
    );
}

/// A fork at once after the heap outgrew the small phase, before the helper can have collapsed
/// it: the fork does what is left, so the child finds the small phase's pages whole (the
/// child counts them in its own page tables, as the fork copied them).
#[test]
fn a_fork_right_after_the_small_phase_ends_finds_it_whole() {
    if as_child(|| {
        let small: Vec<Box<[u8; 200]>> = (0..20_000).map(|i| Box::new([i as u8; 200])).collect();
        let small_end = hugeheap::stats().base + hugeheap::stats().committed.next_multiple_of(HUGE);
        // Past HUGEHEAP_HUGE_FROM, nothing written: the fork follows the promotion at once.
        let big: Vec<u8> = std::hint::black_box(Vec::with_capacity(96 * MIB));
        let base = hugeheap::stats().base;
        let (r, w) = pipe();
        // SAFETY: the child counts its huge pages, writes the count to the pipe and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let n = common::huge_bytes_in(base, small_end).map_or(u64::MAX, |n| n as u64);
            // SAFETY: an 8-byte buffer to the pipe's write end; then the child exits at once.
            unsafe {
                libc::write(w, (&raw const n).cast(), 8);
                libc::_exit(0);
            }
        }
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into `n` from the pipe's read end; then waits for our child.
        unsafe {
            assert_eq!(libc::read(r, (&raw mut n).cast(), 8), 8);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        if n == u64::MAX {
            println!("@no_pagemap_scan=1");
        }
        println!("@small={} child_small_huge={n}", small_end - base);
        drop((small, big));
    }) {
        return;
    }
    if !thp_available() {
        return;
    }
    let v = run_child(&[]);
    if skipped_without_scan(&v) {
        return;
    }
    let (small, huge) = (number(&v, "small"), number(&v, "child_small_huge"));
    assert!(huge >= small / 10 * 9, "the child found {huge} of the small phase's {small} bytes in huge pages");
}

#[test]
fn a_small_heap_gives_back_mid_sized_blocks_it_frees() {
    // The pattern of a forked backend's sort: a few hundred blocks of 12-256 KiB, all written,
    // freed at once but for one in twenty (of 40 and 256 KiB), which stay, as a backend's caches do.
    const SIZES: [usize; 8] = [12 << 10, 16 << 10, 24 << 10, 40 << 10, 64 << 10, 100 << 10, 160 << 10, 256 << 10];
    if as_child(|| {
        let blocks: Vec<Vec<u8>> = (0..240).map(|i| vec![i as u8 | 1; SIZES[i % SIZES.len()]]).collect();
        let held = rss_anon();
        let (mut kept, mut freed) = (Vec::new(), 0);
        for (i, b) in blocks.into_iter().enumerate() {
            if i % 20 == 7 {
                kept.push(b);
            } else {
                freed += b.len();
            }
        }
        let s = hugeheap::stats();
        println!("@held={held} after={} freed={freed} committed={}", rss_anon(), s.committed);
        std::hint::black_box(&kept);
    }) {
        return;
    }
    let v = run_child(&[]);
    let get = |k: &str| number(&v, k);
    assert!(get("committed") <= 32 * MIB, "the heap left its small phase: {} bytes", get("committed"));
    // The kernel's view: what was freed left the process, but for the free pages between
    // blocks still in use (runs under 128 KiB stay, to be reused, as glibc's holes do).
    let left = (get("held") - get("after")) as f64 / get("freed") as f64;
    assert!(
        left >= 0.85,
        "RssAnon {} with the blocks, {} after freeing {} bytes of them",
        get("held"),
        get("after"),
        get("freed")
    );
}

fn rss_anon() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn a_small_heap_gives_back_what_it_frees_without_thrashing() {
    if as_child(|| {
        // 6 MiB in large blocks and 3 MiB in 64 KiB blocks (slabs of 1 MiB), all written.
        let large: Vec<Vec<u8>> = (0..12).map(|i| vec![i as u8 + 1; 512 << 10]).collect();
        let slabbed: Vec<Vec<u8>> = (0..48).map(|i| vec![i as u8 + 1; 64 << 10]).collect();
        let (held, released) = (rss_anon(), hugeheap::stats().released_total);
        drop((large, slabbed));
        let s = hugeheap::stats();
        println!("@held={held} after={} released={}", rss_anon(), s.released_total - released);
        // A loop that frees and allocates one large block must not pay a release each time.
        let released = s.released_total;
        let start = Instant::now();
        for i in 0..20_000u32 {
            let v = vec![i as u8; 512 << 10];
            std::hint::black_box(&v);
        }
        let ms = start.elapsed().as_millis();
        println!("@loop_ms={ms} loop_released={}", hugeheap::stats().released_total - released);
    }) {
        return;
    }
    let v = run_child(&[]);
    let get = |k: &str| number(&v, k);
    // The kernel's view: the 9 MiB freed left the process (as much as glibc gives back).
    assert!(
        get("after") + 8 * MIB <= get("held"),
        "RssAnon {} with the blocks, {} after freeing them",
        get("held"),
        get("after")
    );
    assert!(get("released") >= 8 * MIB, "{} bytes given back", get("released"));
    // Releases at free are rationed: a burst of 32, then one per 10 ms.
    let bound = (32 + get("loop_ms") / 10 + 1) * (512 << 10);
    assert!(get("loop_released") <= bound, "the loop gave back {} bytes (at most {bound})", get("loop_released"));
}

/// A process that gave up root (`setuid`) is not dumpable, and its /proc files become root's:
/// it cannot open its own pagemap. The helper must then end its sweeps (collapsing nothing,
/// since it cannot tell what a child shares) instead of finding every page "shared" for ever.
/// Root only; skipped, and said, otherwise.
#[test]
fn a_process_that_cannot_read_its_pagemap_still_ends_its_sweeps() {
    if as_child(|| {
        // SAFETY: dropping to nobody's ids; setgid first, while still allowed.
        let dropped = unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 };
        let readable = std::fs::File::open("/proc/self/pagemap").is_ok();
        let (v, _, _) = huge_buffer(32 * MIB);
        fork_a_child_that_exits();
        // The helper's progress: pages looked at. Three sweeps' worth without one ending is a
        // sweep that never ends.
        let s = hugeheap::stats();
        let looked = |s: &hugeheap::Stats| {
            s.recollapse_collapsed + s.recollapse_whole + s.recollapse_shared + s.recollapse_failures
        };
        let (at_fork, pages) = (looked(&s), s.committed / HUGE);
        wait_for("the helper to look at the heap's pages", || {
            let s = hugeheap::stats();
            !s.recollapse_pending || looked(&s) >= at_fork + 3 * pages
        });
        let s = hugeheap::stats();
        println!(
            "@dropped={} readable={} pending={} passes={} failures={}",
            dropped as u8, readable as u8, s.recollapse_pending as u8, s.recollapse_passes, s.recollapse_failures
        );
        drop(v);
    }) {
        return;
    }
    if !thp_available() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("root", "only root can drop to another user and so lose its own /proc");
        return;
    }
    let v = run_child(&[("HUGEHEAP_PAGES", "thp")]);
    assert_eq!(
        (v["dropped"].as_str(), v["readable"].as_str()),
        ("1", "0"),
        "the process could still read its pagemap: {v:?}"
    );
    assert_eq!(v["pending"], "0", "the sweeps never end without the pagemap: {v:?}");
}

//! Fork safety: while several threads allocate and free, the main thread forks in a loop; each
//! child allocates, frees and exits 0 (fork without exec, as Redis or Python's
//! multiprocessing do). A child that deadlocks is killed by an alarm and fails the test: the
//! time is bounded, but no timing is measured.

use hugeheap::HugeAlloc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

fn child_work() -> i32 {
    // Runs in the child: it must be able to allocate and free at once.
    let mut v: Vec<Vec<u64>> = Vec::new();
    for i in 0..2000u64 {
        v.push(vec![i; (i % 97) as usize + 1]);
    }
    let big = vec![3u8; 8 << 20];
    let ok = v.iter().enumerate().all(|(i, x)| x.iter().all(|&y| y == i as u64)) && big[12345] == 3;
    drop(v);
    if ok { 0 } else { 3 }
}

#[test]
fn fork_while_threads_allocate() {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    keep.push(vec![t as u8; (i * 37) % 5000 + 1]);
                    if keep.len() > 2000 {
                        keep.drain(..1000);
                    }
                    if i % 5000 == 0 {
                        keep.push(vec![0u8; 3 << 20]); // the page heap lock too
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for round in 0..150 {
        // SAFETY: fork is called with no locks of ours held by this thread; the child only
        // allocates (through hugeheap, which registered its fork handlers), and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm and _exit are async-signal-safe.
            unsafe {
                libc::alarm(20);
                libc::_exit(child_work());
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failures.push((round, status));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(failures.is_empty(), "children failed (round, wait status): {failures:?}");
    hugeheap::internal::check_invariants();
}

#[test]
fn child_can_free_parent_blocks_and_fork_again() {
    let parent_blocks: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100 + i]).collect();
    // SAFETY: as above.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Child: free what the parent allocated, then fork a grandchild.
        let ok = parent_blocks.iter().enumerate().all(|(i, b)| b.len() == 100 + i && b[0] == i as u8);
        drop(parent_blocks);
        // SAFETY: as above.
        let gpid = unsafe { libc::fork() };
        if gpid == 0 {
            // SAFETY: async-signal-safe exit.
            unsafe { libc::_exit(child_work()) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child; then leaving.
        unsafe {
            libc::waitpid(gpid, &mut st, 0);
            libc::_exit(if ok && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 { 0 } else { 5 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status}");
    assert_eq!(parent_blocks[999][0], 999u32 as u8);
}

#[test]
fn heap_is_never_shared_with_a_child() {
    // Every mapping of the arena is private ('p' in /proc/self/maps), so a child's writes can
    // never reach the parent's heap; a child that overwrites its whole copy proves it.
    let heap: Vec<Vec<u8>> = (0..20_000).map(|i| vec![(i % 251) as u8; 100 + i % 3000]).collect();
    let big = vec![9u8; 64 << 20];
    let s = hugeheap::stats();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut arena_maps = 0;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next().unwrap(), f.next().unwrap());
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
        if a < s.base + s.reserved && b > s.base {
            arena_maps += 1;
            assert!(perms.ends_with('p'), "a shared mapping in the arena: {line}");
        }
    }
    assert!(arena_maps > 0);
    // SAFETY: fork in a test process; the child only writes memory it owns and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: these pointers are the child's own copy of the heap.
        unsafe {
            for v in &heap {
                std::ptr::write_bytes(v.as_ptr() as *mut u8, 0xEE, v.len());
            }
            std::ptr::write_bytes(big.as_ptr() as *mut u8, 0xEE, big.len());
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: pid is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert!(
        heap.iter().enumerate().all(|(i, v)| v.iter().all(|&b| b == (i % 251) as u8)),
        "the child wrote into the parent's heap"
    );
    assert!(big.iter().all(|&b| b == 9));
}

/// The 2 MiB stretches of the metadata mapping that hold touched pages. Each such stretch of
/// 4 KiB pages costs every fork a page table to allocate and fill.
fn touched_stretches(base: usize, len: usize) -> std::collections::BTreeSet<usize> {
    use std::os::unix::fs::FileExt;
    let pagemap = std::fs::File::open("/proc/self/pagemap").expect("open pagemap");
    let mut entries = vec![0u8; len / 4096 * 8];
    pagemap.read_exact_at(&mut entries, (base / 4096 * 8) as u64).expect("read pagemap");
    entries
        .chunks_exact(8)
        .enumerate()
        .filter(|(_, e)| u64::from_le_bytes((*e).try_into().unwrap()) >> 63 == 1)
        .map(|(i, _)| (base + i * 4096) >> 21)
        .collect()
}

#[test]
fn the_metadata_a_fork_copies_lies_in_two_huge_page_stretches() {
    // About 200 MiB of small blocks: 3,200 slabs, their headers and page-map entries.
    let keep: Vec<Box<[u8; 96]>> = (0..2_000_000).map(|_| Box::new([1u8; 96])).collect();
    let s = hugeheap::stats();
    let stretches = touched_stretches(s.metadata_base, s.metadata_reserved);
    assert!(
        stretches.len() <= 2,
        "the metadata's touched pages lie in {} stretches of 2 MiB: {:x?}",
        stretches.len(),
        stretches.iter().map(|r| r << 21).collect::<Vec<_>>()
    );
    assert!(keep.iter().all(|b| b[95] == 1));
}

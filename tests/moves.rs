//! Held memory moved where it is wanted (`pageheap::relocate`), on the real kernel: blocks
//! freed in runs the next requests do not fit have their huge pages moved into the fresh ones
//! those requests take, which then read as zero where zeroed memory was asked for, hold what
//! is written, and leave the heap's mappings as `stats()` counts them (at least, after many
//! moves by several threads), fewer again once the blocks are freed; after a fork, nothing is
//! moved (the pages may be shared). Each test runs in a child process of its own; where
//! THP is `never`, the tests are skipped, and say so.

mod common;

use common::{as_child, fork_a_child_that_exits, mappings_in, number, run_child_with_thp};
use hugeheap::HugeAlloc;
use std::collections::HashMap;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

const MIB: usize = 1 << 20;
const HUGE: usize = 2 * MIB;

/// Blocks of one huge page built, every other one freed, then zeroed blocks of two huge pages
/// taken: none fits where a block was freed, so each takes a fresh huge page, into which a
/// freed block's page is moved. Prints what it saw.
fn build_free_and_take(tag: &str) {
    let blocks: Vec<Vec<u8>> = (0..32).map(|i| vec![i as u8 + 1; HUGE]).collect();
    let mut kept = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 2 == 1 {
            kept.push(b);
        }
    }
    let s = hugeheap::stats();
    let moved_before = s.moved_total;
    let pairs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 2 * HUGE]).collect();
    let zero = pairs.iter().all(|p| p.iter().all(|&b| b == 0));
    let mut pairs = pairs;
    for (i, p) in pairs.iter_mut().enumerate() {
        p.fill(0x40 + i as u8);
    }
    let intact = pairs.iter().enumerate().all(|(i, p)| p.iter().all(|&b| b == 0x40 + i as u8))
        && kept.iter().enumerate().all(|(i, b)| b.iter().all(|&x| x == 2 * i as u8 + 2));
    let s = hugeheap::stats();
    let arena_maps = mappings_in(s.base, s.base + s.reserved);
    println!(
        "@{tag}_moved={} {tag}_zero={} {tag}_intact={} {tag}_maps={arena_maps} {tag}_stats_maps={}",
        s.moved_total - moved_before,
        zero as u8,
        intact as u8,
        s.mappings
    );
    drop(pairs);
    let s = hugeheap::stats();
    println!("@{tag}_maps_freed={} {tag}_stats_maps_freed={}", mappings_in(s.base, s.base + s.reserved), s.mappings);
    drop(kept);
}

/// THP from the first byte, and no helper thread: it would populate the fresh pages the
/// moves go to (`pageheap::prefault`), as its timing has it.
const THP_FROM_THE_START: [(&str, &str); 3] =
    [("HUGEHEAP_PAGES", "thp"), ("HUGEHEAP_HUGE_FROM", "0"), ("HUGEHEAP_COLLAPSE", "0")];

/// Runs the calling test as a child with THP from the first byte and returns what it printed;
/// `None`, the test skipped and said so, where THP is `never`.
fn run_with_thp() -> Option<HashMap<String, String>> {
    run_child_with_thp(&THP_FROM_THE_START, "the heap is in 4 KiB pages, which are not moved")
}

#[test]
fn freed_huge_pages_are_moved_where_new_blocks_go_and_read_as_zero() {
    if as_child(|| build_free_and_take("first")) {
        return;
    }
    let Some(v) = run_with_thp() else { return };
    // Eight blocks of two huge pages, each in a window of a freed page and a fresh one: eight
    // fresh pages, each with a freed page moved in.
    assert!(number(&v, "first_moved") >= 8 * HUGE, "{v:?}");
    assert_eq!(number(&v, "first_zero"), 1, "zeroed blocks read as zero where memory was moved in");
    assert_eq!(number(&v, "first_intact"), 1, "blocks hold what was written");
    // The arena's mappings in /proc/self/maps are what stats() counts (the metadata mapping lies
    // outside the arena), the moved pages' own included.
    assert_eq!(number(&v, "first_maps") + 1, number(&v, "first_stats_maps"), "{v:?}");
    assert!(number(&v, "first_maps") > 1, "moved pages are mappings of their own: {v:?}");
    // Freed, the blocks' pages go back where they came from, and the mappings with them.
    assert_eq!(number(&v, "first_maps_freed") + 1, number(&v, "first_stats_maps_freed"), "{v:?}");
    assert!(number(&v, "first_maps_freed") < number(&v, "first_maps"), "{v:?}");
}

#[test]
fn nothing_is_moved_once_the_process_has_forked() {
    if as_child(|| {
        fork_a_child_that_exits();
        build_free_and_take("forked");
    }) {
        return;
    }
    let Some(v) = run_with_thp() else { return };
    assert_eq!(number(&v, "forked_moved"), 0, "a page a child may share is not moved: {v:?}");
    assert_eq!(number(&v, "forked_zero"), 1);
    assert_eq!(number(&v, "forked_intact"), 1);
    assert_eq!(number(&v, "forked_maps") + 1, number(&v, "forked_stats_maps"), "{v:?}");
}

/// Four threads replace blocks of 64 KiB to 4 MiB at random, each block filled with a pattern
/// of its own (half of them asked zeroed first) and checked whole before it is freed: whatever
/// the moves do under them, every block reads as zero when asked so and keeps what was written.
fn churn_large_blocks() {
    fn worker(t: u64) -> (bool, bool) {
        let (mut zero, mut intact) = (true, true);
        let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t + 1) | 1;
        let mut slots: Vec<Option<(Vec<u8>, u8)>> = (0..16).map(|_| None).collect();
        for i in 0..800u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 16) as usize;
            if let Some((v, fill)) = slots[k].take() {
                intact &= v.iter().all(|&b| b == fill);
            }
            let len = ((64usize << 10) << ((x >> 8) % 7)) + ((x >> 16) as usize % (64 << 10));
            let fill = (t as u8).wrapping_mul(31).wrapping_add(i as u8) | 1;
            let mut v = if (x >> 40) % 2 == 0 {
                let v = vec![0u8; len];
                zero &= v.iter().all(|&b| b == 0);
                v
            } else {
                Vec::with_capacity(len)
            };
            v.clear();
            v.resize(len, fill);
            slots[k] = Some((v, fill));
        }
        for (v, fill) in slots.into_iter().flatten() {
            intact &= v.iter().all(|&b| b == fill);
        }
        (zero, intact)
    }
    let results: Vec<(bool, bool)> = (0..4)
        .map(|t| std::thread::spawn(move || worker(t)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let s = hugeheap::stats();
    println!(
        "@churn_moved={} churn_zero={} churn_intact={} churn_maps={} churn_stats_maps={}",
        s.moved_total,
        results.iter().all(|r| r.0) as u8,
        results.iter().all(|r| r.1) as u8,
        mappings_in(s.base, s.base + s.reserved),
        s.mappings
    );
}

#[test]
fn blocks_replaced_by_threads_while_memory_moves_keep_their_contents() {
    if as_child(churn_large_blocks) {
        return;
    }
    let Some(v) = run_with_thp() else { return };
    assert!(number(&v, "churn_moved") > 0, "the churn moved memory: {v:?}");
    assert_eq!(number(&v, "churn_zero"), 1, "zeroed blocks read as zero");
    assert_eq!(number(&v, "churn_intact"), 1, "blocks keep what was written");
    // Every mapping stats() counts is one the kernel has. After many moves between threads'
    // blocks the kernel may keep one or two more apart than it counts (a range mapped afresh
    // where no neighbour's offset followed on took an anon_vma of its own when first touched,
    // and the kernel joins no mappings whose anon_vmas differ): 1 in 5-10 runs of this test.
    assert!(number(&v, "churn_maps") + 1 >= number(&v, "churn_stats_maps"), "{v:?}");
}

/// A block of three huge pages and a part grown by realloc where it cannot grow in place (a
/// block right after it): its whole huge pages are moved into the new block (stats' moved
/// count), the rest copied; what was written reads back, and the new part takes writes.
fn grow_by_realloc(tag: &str) {
    let len = 3 * HUGE + 100 * 1024;
    let pattern = |i: usize| (i.wrapping_mul(7) ^ (i >> 12)) as u8;
    let mut v: Vec<u8> = (0..len).map(pattern).collect();
    let wall = vec![1u8; HUGE];
    let (before, at) = (hugeheap::stats().moved_total, v.as_ptr() as usize);
    v.reserve_exact(5 * HUGE);
    let moved = hugeheap::stats().moved_total - before;
    let intact = v.iter().enumerate().all(|(i, &b)| b == pattern(i));
    v.resize(len + 5 * HUGE, 0x5a);
    let grown = v[len..].iter().all(|&b| b == 0x5a) && v[..len].iter().enumerate().all(|(i, &b)| b == pattern(i));
    let s = hugeheap::stats();
    println!(
        "@{tag}_moved={moved} {tag}_elsewhere={} {tag}_intact={} {tag}_grown={} {tag}_maps={} {tag}_stats_maps={}",
        (v.as_ptr() as usize != at) as u8,
        intact as u8,
        grown as u8,
        mappings_in(s.base, s.base + s.reserved),
        s.mappings
    );
    drop(wall);
}

#[test]
fn a_block_grown_by_realloc_has_its_huge_pages_moved_not_copied() {
    if as_child(|| grow_by_realloc("grown")) {
        return;
    }
    let Some(v) = run_with_thp() else { return };
    assert_eq!(number(&v, "grown_elsewhere"), 1, "the block could not grow in place: {v:?}");
    assert_eq!(number(&v, "grown_moved"), 3 * HUGE, "its three whole huge pages moved: {v:?}");
    assert_eq!(number(&v, "grown_intact"), 1, "what was written reads back, moved or copied");
    assert_eq!(number(&v, "grown_grown"), 1, "the new part takes writes, the old keeps its contents");
    assert_eq!(number(&v, "grown_maps") + 1, number(&v, "grown_stats_maps"), "{v:?}");
}

#[test]
fn a_block_grown_by_realloc_after_a_fork_is_copied() {
    if as_child(|| {
        fork_a_child_that_exits();
        grow_by_realloc("forked_grown");
    }) {
        return;
    }
    let Some(v) = run_with_thp() else { return };
    assert_eq!(number(&v, "forked_grown_elsewhere"), 1, "{v:?}");
    assert_eq!(number(&v, "forked_grown_moved"), 0, "pages a child may share are not moved: {v:?}");
    assert_eq!(number(&v, "forked_grown_intact"), 1);
    assert_eq!(number(&v, "forked_grown_grown"), 1);
}

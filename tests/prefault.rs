//! Populating ahead (`pageheap::prefault`), on the real kernel: a process that has never
//! forked and grows a THP heap has the helper thread populate the free huge pages it takes
//! next; what the program writes meanwhile stays, and memory asked for zeroed reads as zero,
//! from populated pages and from pages handed out and freed before. After a fork, or with
//! `HUGEHEAP_COLLAPSE=0` (no helper), nothing is populated ahead. Each test runs in a child
//! process of its own; where THP is `never`, the tests are skipped, and say so.

mod common;

use common::{as_child, fork_a_child_that_exits, number, run_child_with_thp};
use hugeheap::HugeAlloc;
use std::time::{Duration, Instant};

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

const MIB: usize = 1 << 20;

/// How long the helper may take to populate the pages it was asked for: a guard against
/// waiting forever on a machine too busy to run it, not a timing check.
const HANG: Duration = Duration::from_secs(120);

/// Grows the heap by blocks of 1 MiB up to `total`, each written with its own byte, and
/// waits (when `wait`) until the helper has populated some page ahead; then checks the blocks,
/// and that zeroed blocks read as zero, fresh or over memory written and freed. Prints what
/// it saw.
fn grow(total: usize, wait: bool) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for i in 0..total / MIB {
        blocks.push(vec![(i % 251) as u8 + 1; MIB]);
    }
    let start = Instant::now();
    while wait && hugeheap::stats().prefaulted_total == 0 && start.elapsed() < HANG {
        std::thread::sleep(Duration::from_millis(20));
    }
    // More, over what was populated: written, then freed, then asked for zeroed.
    for i in 0..16 {
        blocks.push(vec![0xEE ^ i as u8; MIB]);
    }
    let intact = blocks.iter().take(total / MIB).enumerate().all(|(i, b)| b.iter().all(|&x| x == (i % 251) as u8 + 1));
    blocks.truncate(total / MIB);
    let zeroed: Vec<Vec<u8>> = (0..24).map(|_| vec![0u8; MIB]).collect();
    let zero = zeroed.iter().all(|b| b.iter().all(|&x| x == 0));
    let s = hugeheap::stats();
    println!("@prefaulted={} intact={} zero={}", s.prefaulted_total, u8::from(intact), u8::from(zero));
    drop((blocks, zeroed));
}

/// Runs the calling test's child with THP and `env`; `None`, the test skipped and said so,
/// where THP is `never`.
fn run_with_thp(env: &[(&str, &str)]) -> Option<std::collections::HashMap<String, String>> {
    let mut all = vec![("HUGEHEAP_PAGES", "thp")];
    all.extend_from_slice(env);
    run_child_with_thp(&all, "nothing is populated ahead")
}

#[test]
fn a_growing_heap_has_pages_populated_ahead_and_keeps_what_it_writes() {
    if as_child(|| grow(96 * MIB, true)) {
        return;
    }
    let Some(v) = run_with_thp(&[]) else { return };
    assert!(number(&v, "prefaulted") > 0, "nothing populated ahead: {v:?}");
    assert_eq!(number(&v, "intact"), 1, "what the program wrote while the helper populated");
    assert_eq!(number(&v, "zero"), 1, "zeroed blocks over populated and freed memory");
}

#[test]
fn nothing_is_populated_ahead_after_a_fork_or_without_the_helper() {
    if as_child(|| {
        if std::env::var_os("HH_TEST_FORK_FIRST").is_some() {
            fork_a_child_that_exits();
        }
        grow(96 * MIB, false);
        // Time for a helper to act, had it been asked: the count must stay 0 however long.
        std::thread::sleep(Duration::from_millis(300));
        println!("@later={}", hugeheap::stats().prefaulted_total);
    }) {
        return;
    }
    for env in [[("HH_TEST_FORK_FIRST", "1")], [("HUGEHEAP_COLLAPSE", "0")]] {
        let Some(v) = run_with_thp(&env) else { return };
        assert_eq!(number(&v, "prefaulted") + number(&v, "later"), 0, "{env:?}: {v:?}");
        assert_eq!(number(&v, "intact") + number(&v, "zero"), 2, "{env:?}: {v:?}");
    }
}

//! Slabs that the live blocks fill exactly: a steady set of 64-byte objects, sixteen slabs'
//! worth, replaced at random. A full slab that gets blocks back rejoins its class's list only
//! once it holds `heap::slab::rejoin_at` of them, so the blocks it holds back in the meantime
//! must neither be lost (every object keeps its contents; freeing them all gives the slabs
//! back) nor make the heap grow past a bound (two slabs more than the live set fills).
//!
//! One test in its own binary: `stats().active` counts every thread's slabs, and nothing else
//! allocates while it runs.

use hugeheap::HugeAlloc;
use std::alloc::{GlobalAlloc, Layout};

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

/// Block size: a class of its own, 1,024 blocks to a 64 KiB slab.
const SIZE: usize = 64;
const SLAB: usize = 64 << 10;
const LIVE: usize = 16 * SLAB / SIZE;

fn tag(p: *mut u8, v: u64) {
    // SAFETY: p is a live block of SIZE bytes, 16-aligned.
    unsafe { (p as *mut u64).add(2).write(v) };
}

fn tagged(p: *mut u8) -> u64 {
    // SAFETY: as for tag.
    unsafe { (p as *mut u64).add(2).read() }
}

#[test]
fn a_steady_set_that_fills_its_slabs_neither_loses_blocks_nor_grows() {
    // A thread of its own: a heap of its own, with no slab of this class yet.
    std::thread::spawn(|| {
        let layout = Layout::from_size_align(SIZE, 16).unwrap();
        let mut live: Vec<(*mut u8, u64)> = Vec::with_capacity(LIVE);
        let before = hugeheap::stats().active;
        for i in 0..LIVE as u64 {
            // SAFETY: a non-zero size.
            let p = unsafe { A.alloc(layout) };
            assert!(!p.is_null());
            tag(p, i);
            live.push((p, i));
        }
        let filled = hugeheap::stats().active;
        assert!(filled - before >= 16 * SLAB, "{} KiB of slabs for 16 slabs' worth", (filled - before) >> 10);
        let mut most = filled;
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..400_000u64 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let k = (s % LIVE as u64) as usize;
            let (p, v) = live[k];
            assert_eq!(tagged(p), v, "object {k} lost its contents");
            // SAFETY: p is live, from A with this layout.
            unsafe { A.dealloc(p, layout) };
            // SAFETY: a non-zero size.
            let q = unsafe { A.alloc(layout) };
            assert!(!q.is_null());
            tag(q, LIVE as u64 + n);
            live[k] = (q, LIVE as u64 + n);
            if n % 1024 == 0 {
                most = most.max(hugeheap::stats().active);
            }
        }
        assert!(
            most <= filled + 2 * SLAB,
            "the heap grew from {} to {} KiB with the live set unchanged",
            filled >> 10,
            most >> 10
        );
        for &(p, v) in &live {
            assert_eq!(tagged(p), v);
            // SAFETY: p is live, from A with this layout.
            unsafe { A.dealloc(p, layout) };
        }
        let after = hugeheap::stats().active;
        assert!(after <= before + SLAB, "{} KiB of slabs left after every block was freed", (after - before) >> 10);
    })
    .join()
    .unwrap();
}

//! Model-based property test: random sequences of alloc / alloc_zeroed / realloc / dealloc
//! against a shadow model. Sizes 0..16 MiB, alignments 1..2 MiB. Checked after every step:
//! alignment, zeroed memory is zero, live blocks never overlap, contents survive (each block
//! carries a pattern derived from its id, checked before it is freed or moved). The page
//! heap's invariants are checked after every sequence.

use hugeheap::HugeAlloc;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_shift: u32, zeroed: bool },
    Realloc { pick: usize, size: usize },
    Free { pick: usize },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=256,
        3 => 0usize..=8192,
        2 => 0usize..=(300 << 10),
        1 => 0usize..=(16 << 20),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (size(), prop_oneof![4 => 0u32..=4, 1 => 0u32..=21], any::<bool>())
            .prop_map(|(size, align_shift, zeroed)| Op::Alloc { size, align_shift, zeroed }),
        2 => (any::<usize>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        3 => any::<usize>().prop_map(|pick| Op::Free { pick }),
    ]
}

struct Live {
    ptr: *mut u8,
    size: usize,
    align: usize,
    id: u64,
}

fn byte(id: u64, i: usize) -> u8 {
    (id as usize).wrapping_mul(31).wrapping_add(i).wrapping_mul(7) as u8
}

/// Offsets checked in a block: all of a small one, a sample of a big one.
fn offsets(size: usize) -> Box<dyn Iterator<Item = usize>> {
    if size <= 64 << 10 {
        Box::new(0..size)
    } else {
        Box::new((0..4096).chain((4096..size - 4096).step_by(4093)).chain(size - 4096..size))
    }
}

fn fill(b: &Live) {
    for i in offsets(b.size) {
        // SAFETY: i < size, inside the live block.
        unsafe { *b.ptr.add(i) = byte(b.id, i) };
    }
}

/// Checks the pattern of `b` at the offsets filled when it had `filled_size` bytes, below `upto`.
fn check(b: &Live, filled_size: usize, upto: usize) {
    for i in offsets(filled_size).filter(|&i| i < upto) {
        // SAFETY: i < size, inside the live block.
        let v = unsafe { *b.ptr.add(i) };
        assert_eq!(v, byte(b.id, i), "block {} (size {}) byte {i} lost", b.id, b.size);
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size.max(1), align).unwrap()
}

fn run(ops: Vec<Op>) {
    let mut live: Vec<Live> = Vec::new();
    // start -> end of every live block, to check overlap
    let mut spans: BTreeMap<usize, usize> = BTreeMap::new();
    let mut next_id = 0u64;
    let insert = |spans: &mut BTreeMap<usize, usize>, p: usize, size: usize| {
        let end = p + size.max(1);
        if let Some((&s, &e)) = spans.range(..end).next_back() {
            assert!(e <= p || s >= end, "block {p:#x}+{size} overlaps {s:#x}..{e:#x}");
        }
        spans.insert(p, end);
    };
    for op in ops {
        match op {
            Op::Alloc { size, align_shift, zeroed } => {
                let align = 1usize << align_shift;
                let l = layout(size, align);
                // SAFETY: l has a non-zero size.
                let p = unsafe { if zeroed { A.alloc_zeroed(l) } else { A.alloc(l) } };
                assert!(!p.is_null(), "alloc {size} align {align}");
                assert_eq!(p as usize % align, 0, "alignment {align} of {p:p}");
                if zeroed {
                    for i in offsets(l.size()) {
                        // SAFETY: inside the new block.
                        assert_eq!(unsafe { *p.add(i) }, 0, "zeroed block of {size} byte {i}");
                    }
                }
                insert(&mut spans, p as usize, l.size());
                let b = Live { ptr: p, size: l.size(), align, id: next_id };
                next_id += 1;
                fill(&b);
                live.push(b);
            }
            Op::Realloc { pick, size } if !live.is_empty() => {
                let i = pick % live.len();
                let old = &live[i];
                check(old, old.size, old.size);
                spans.remove(&(old.ptr as usize));
                let new_size = size.max(1);
                // SAFETY: old is live, allocated with this layout; new size non-zero.
                let p = unsafe { A.realloc(old.ptr, layout(old.size, old.align), new_size) };
                assert!(!p.is_null());
                assert_eq!(p as usize % old.align, 0);
                let moved = Live { ptr: p, size: new_size, align: old.align, id: old.id };
                check(&moved, old.size, old.size.min(new_size));
                insert(&mut spans, p as usize, new_size);
                let id = next_id;
                next_id += 1;
                live[i] = Live { id, ..moved };
                fill(&live[i]);
            }
            Op::Free { pick } if !live.is_empty() => {
                let b = live.swap_remove(pick % live.len());
                check(&b, b.size, b.size);
                spans.remove(&(b.ptr as usize));
                // SAFETY: b is live with this layout.
                unsafe { A.dealloc(b.ptr, layout(b.size, b.align)) };
            }
            _ => {}
        }
    }
    for b in live {
        check(&b, b.size, b.size);
        // SAFETY: b is live with this layout.
        unsafe { A.dealloc(b.ptr, layout(b.size, b.align)) };
    }
    hugeheap::internal::check_invariants();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn model(ops in proptest::collection::vec(op(), 1..160)) {
        run(ops);
    }
}

#[test]
fn zero_size_requests_get_distinct_pointers() {
    use hugeheap::internal::c;
    // SAFETY: malloc(0) returns a unique pointer that free accepts, as glibc's does.
    unsafe {
        let a = c::malloc(0);
        let b = c::malloc(0);
        assert!(!a.is_null() && !b.is_null() && a != b);
        c::free(a);
        c::free(b);
        c::free(std::ptr::null_mut());
    }
}

#[test]
fn alignment_up_to_one_gib() {
    for shift in [12, 16, 17, 21, 22, 25, 30] {
        let align = 1usize << shift;
        let l = Layout::from_size_align(100, align).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { A.alloc(l) };
        assert!(!p.is_null(), "align {align}");
        assert_eq!(p as usize % align, 0);
        // SAFETY: p is a live block of 100 bytes.
        unsafe {
            p.write_bytes(0xAB, 100);
            A.dealloc(p, l);
        }
    }
    hugeheap::internal::check_invariants();
}

#[test]
fn impossible_sizes_return_null() {
    for size in [isize::MAX as usize - 4096, 1 << 60, 100 << 40] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        assert!(unsafe { A.alloc(l) }.is_null(), "{size}");
    }
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(1 << 50).is_err());
    // The heap still works.
    let b = vec![1u8; 1 << 20];
    assert_eq!(b.iter().map(|&x| x as usize).sum::<usize>(), 1 << 20);
}

#[test]
fn realloc_stays_in_place_when_it_fits() {
    let l = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: live blocks of the given layouts throughout.
    unsafe {
        let p = A.alloc(l);
        let q = A.realloc(p, l, 110); // same 112-byte class
        assert_eq!(p, q);
        let big = Layout::from_size_align((5 << 20) + 1000, 8).unwrap();
        let r = A.alloc(big);
        let s = A.realloc(r, big, (5 << 20) + 60_000); // inside the span's 81 pages
        assert_eq!(r, s);
        A.dealloc(q, Layout::from_size_align(110, 8).unwrap());
        A.dealloc(s, Layout::from_size_align((5 << 20) + 60_000, 8).unwrap());
    }
}

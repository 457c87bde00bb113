//! Model-based property test: random sequences of alloc / alloc_zeroed / realloc / dealloc
//! against the shadow model (`common/shadow.rs`, shared with the fuzz target). Sizes 0..16 MiB,
//! alignments 1..2 MiB. Checked after every step: alignment, zeroed memory is zero, live blocks
//! never overlap, contents survive (each block carries a pattern derived from its id, checked
//! before it is freed or moved). The heap's invariants are checked after every sequence.

#[path = "common/shadow.rs"]
mod shadow;

use hugeheap::HugeAlloc;
use proptest::prelude::*;
use shadow::Shadow;
use std::alloc::{GlobalAlloc, Layout};

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

fn run(ops: Vec<Op>) {
    let mut model = Shadow::new();
    for op in ops {
        match op {
            Op::Alloc { size, align_shift, zeroed } => {
                assert!(model.alloc(&A, size, 1 << align_shift, zeroed));
            }
            Op::Realloc { pick, size } => model.realloc(&A, pick, size),
            Op::Free { pick } => model.free(&A, pick),
        }
    }
    model.clear(&A);
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

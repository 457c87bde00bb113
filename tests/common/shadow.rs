//! The shadow model of a heap, shared by the model test (`tests/model.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/ops.rs`): every live block with its layout and a pattern derived from an
//! id, written when the block is made or moved. Each operation goes through any `GlobalAlloc`
//! and checks what the contract promises: alignment, zeroed memory reads zero, live blocks
//! never overlap, a block holds its pattern until it is freed, and realloc keeps the common
//! prefix. A breach panics with what was lost.
#![allow(dead_code)] // each user takes the operations it drives

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

/// A live block of the model.
pub struct Block {
    pub ptr: *mut u8,
    pub layout: Layout,
    id: u64,
}

// SAFETY: a block is plain memory of the global heap, handed between threads by ownership
// (a cross-thread free moves it to the freeing thread).
unsafe impl Send for Block {}

/// The byte at offset `i` of the block with pattern `id`.
fn byte(id: u64, i: usize) -> u8 {
    (id as usize).wrapping_mul(31).wrapping_add(i).wrapping_mul(7) as u8
}

/// Offsets written and checked in a block of `size` bytes: all of a small one, the first and
/// last 4 KiB and a sample between of a big one.
fn offsets(size: usize) -> Box<dyn Iterator<Item = usize>> {
    if size <= 64 << 10 {
        Box::new(0..size)
    } else {
        Box::new((0..4096).chain((4096..size - 4096).step_by(4093)).chain(size - 4096..size))
    }
}

impl Block {
    fn fill(&self) {
        for i in offsets(self.layout.size()) {
            // SAFETY: i < size: inside the live block.
            unsafe { *self.ptr.add(i) = byte(self.id, i) };
        }
    }

    /// Checks the pattern written when the block had `filled` bytes, below `upto`.
    fn check_upto(&self, filled: usize, upto: usize) {
        for i in offsets(filled).filter(|&i| i < upto) {
            // SAFETY: i < upto <= the block's size: inside the live block.
            let v = unsafe { *self.ptr.add(i) };
            assert_eq!(v, byte(self.id, i), "block {:p} ({:?}) lost byte {i}", self.ptr, self.layout);
        }
    }

    /// Checks the whole pattern.
    pub fn check(&self) {
        self.check_upto(self.layout.size(), self.layout.size());
    }

    /// Whether the block holds its pattern (for a forked child, which reports rather than
    /// panics).
    pub fn holds(&self) -> bool {
        offsets(self.layout.size())
            // SAFETY: i < size: inside the live block.
            .all(|i| unsafe { *self.ptr.add(i) } == byte(self.id, i))
    }

    /// Checks the pattern and frees the block through `a`, which allocated it.
    pub fn free(self, a: &impl GlobalAlloc) {
        self.check();
        // SAFETY: the block is live, allocated by `a` with this layout, and freed once (it is
        // consumed here).
        unsafe { a.dealloc(self.ptr, self.layout) };
    }
}

/// The live blocks, and where each lies.
#[derive(Default)]
pub struct Shadow {
    live: Vec<Block>,
    /// Start -> end of every live block.
    ends: BTreeMap<usize, usize>,
    next_id: u64,
}

impl Shadow {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn blocks(&self) -> &[Block] {
        &self.live
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn place(&mut self, p: *mut u8, size: usize) {
        let (start, end) = (p as usize, p as usize + size);
        if let Some((&s, &e)) = self.ends.range(..end).next_back() {
            assert!(e <= start || s >= end, "block {start:#x}+{size} overlaps {s:#x}..{e:#x}");
        }
        self.ends.insert(start, end);
    }

    /// Allocates `size` bytes (at least 1) aligned to `align` through `a`, zeroed if asked;
    /// `false` when no such layout exists. Allocation must not fail.
    pub fn alloc(&mut self, a: &impl GlobalAlloc, size: usize, align: usize, zeroed: bool) -> bool {
        let Ok(layout) = Layout::from_size_align(size.max(1), align) else { return false };
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) } };
        assert!(!p.is_null(), "allocation of {layout:?} failed");
        assert_eq!(p as usize % align, 0, "{layout:?} misaligned: {p:p}");
        if zeroed {
            for i in offsets(layout.size()) {
                // SAFETY: inside the new block.
                assert_eq!(unsafe { *p.add(i) }, 0, "alloc_zeroed({layout:?}) gave byte {i} non-zero");
            }
        }
        self.place(p, layout.size());
        let b = Block { ptr: p, layout, id: self.id() };
        b.fill();
        self.live.push(b);
        true
    }

    /// Resizes block `pick` (modulo the count) to `size` bytes (at least 1) through `a`.
    pub fn realloc(&mut self, a: &impl GlobalAlloc, pick: usize, size: usize) {
        if self.live.is_empty() {
            return;
        }
        let i = pick % self.live.len();
        let (old, new_size) = (&self.live[i], size.max(1));
        old.check();
        let (old_ptr, old_layout, old_id) = (old.ptr, old.layout, old.id);
        self.ends.remove(&(old_ptr as usize));
        // SAFETY: the block is live, allocated by `a` with `old_layout`; the new size is
        // non-zero and, rounded to the alignment, far below isize::MAX.
        let p = unsafe { a.realloc(old_ptr, old_layout, new_size) };
        assert!(!p.is_null(), "realloc of {old_layout:?} to {new_size} failed");
        assert_eq!(p as usize % old_layout.align(), 0, "realloc lost the alignment {}", old_layout.align());
        let layout = Layout::from_size_align(new_size, old_layout.align()).unwrap();
        let moved = Block { ptr: p, layout, id: old_id };
        moved.check_upto(old_layout.size(), old_layout.size().min(new_size));
        self.place(p, new_size);
        self.live[i] = Block { id: self.id(), ..moved };
        self.live[i].fill();
    }

    /// Takes block `pick` (modulo the count) out of the model, to be freed by its new owner.
    pub fn take(&mut self, pick: usize) -> Option<Block> {
        if self.live.is_empty() {
            return None;
        }
        let b = self.live.swap_remove(pick % self.live.len());
        self.ends.remove(&(b.ptr as usize));
        Some(b)
    }

    /// Frees block `pick` (modulo the count) through `a`.
    pub fn free(&mut self, a: &impl GlobalAlloc, pick: usize) {
        if let Some(b) = self.take(pick) {
            b.free(a);
        }
    }

    /// Checks every live block's pattern.
    pub fn check_all(&self) {
        self.live.iter().for_each(Block::check);
    }

    /// Frees every live block through `a`.
    pub fn clear(&mut self, a: &impl GlobalAlloc) {
        self.ends.clear();
        for b in self.live.drain(..) {
            b.free(a);
        }
    }
}

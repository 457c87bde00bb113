//! How many hugetlb pages a heap needs (docs/tuning.md, "the rule for sizing a 2 MiB pool"),
//! worked out without touching the machine.
//!
//! A heap of H bytes commits its huge pages in growth steps of up to an eighth of itself, so it
//! is counted as H + H/8, rounded up to 2 MiB (the library's `with_growth_steps`, which its
//! advice to reserve a pool uses too). Under `HUGEHEAP_PAGES=auto` its first GiB is in
//! 2 MiB pages and every whole GiB beyond in 1 GiB pages (where the 1 GiB pool has them).
//! Copy-on-write after fork needs more of the same: the heap takes hugetlb pages only while
//! the pool keeps `HUGEHEAP_COW_RESERVE` percent of what it holds free, and each forked child
//! that keeps the heap (fork without exec) is promised a copy. So the pool holds the heap
//! `1 + max(children, ceil(reserve / 100))` times: the copies.

use std::fmt;

/// 2 MiB.
pub const MIB2: usize = 2 << 20;
/// 1 GiB.
pub const GIB1: usize = 1 << 30;

/// What a heap needs, per copy, and how many copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The heap asked for, bytes.
    pub heap: usize,
    /// The heap with its growth steps, rounded up to 2 MiB, bytes.
    pub counted: usize,
    /// Copies of the heap the pools hold: the heap and what copy-on-write may take.
    pub copies: usize,
    /// 1 GiB pages per copy (whole GiBs beyond the first).
    pub gib_pages: usize,
}

impl Need {
    /// The need of a heap of `heap` bytes with `children` forked children keeping it and a
    /// copy-on-write reserve of `reserve` percent; `None` for an empty heap or one whose
    /// pages would overflow.
    pub fn of(heap: usize, children: usize, reserve: u32) -> Option<Need> {
        if heap == 0 {
            return None;
        }
        let counted = hugeheap::internal::with_growth_steps(heap)?;
        let copies = 1usize.checked_add(children.max((reserve as usize).div_ceil(100)))?;
        let gib_pages = counted.saturating_sub(GIB1) / GIB1;
        counted.checked_mul(copies)?;
        Some(Need { heap, counted, copies, gib_pages })
    }

    /// 2 MiB pages per copy when `gib` 1 GiB pages per copy are had.
    pub fn mib_pages(&self, gib: usize) -> usize {
        self.counted.saturating_sub(gib * GIB1).div_ceil(MIB2)
    }
}

/// Pages of one pool: free (to a new mapping), asked for, and the pool's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The pool's size before.
    pub was: usize,
    /// The size asked of the kernel.
    pub asked: usize,
    /// The size it has now.
    pub now: usize,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.asked == self.was {
            write!(f, "{} pages, enough already", self.now)
        } else if self.now >= self.asked {
            write!(f, "{} pages (was {})", self.now, self.was)
        } else {
            write!(f, "{} pages (was {}; asked for {}, the kernel found no more)", self.now, self.was, self.asked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_is_counted_with_its_growth_steps_and_copied_for_children() {
        let n = Need::of(2 * GIB1, 1, 100).unwrap();
        assert_eq!(n.counted, 2 * GIB1 + GIB1 / 4);
        assert_eq!(n.copies, 2);
        assert_eq!(n.gib_pages, 1, "the first GiB is in 2 MiB pages, the next whole one in a 1 GiB page");
        assert_eq!(n.mib_pages(1), (GIB1 + GIB1 / 4) / MIB2);
        assert_eq!(n.mib_pages(0), n.counted / MIB2);
    }

    #[test]
    fn copies_follow_the_children_or_the_reserve_whichever_asks_more() {
        assert_eq!(Need::of(GIB1, 4, 100).unwrap().copies, 5);
        assert_eq!(Need::of(GIB1, 0, 300).unwrap().copies, 4);
        assert_eq!(Need::of(GIB1, 0, 150).unwrap().copies, 3, "a partial copy is a whole one");
        assert_eq!(Need::of(GIB1, 0, 0).unwrap().copies, 1, "children that exec need nothing");
    }

    #[test]
    fn small_heaps_round_up_and_impossible_ones_are_refused() {
        let n = Need::of(1, 1, 100).unwrap();
        assert_eq!((n.counted, n.gib_pages, n.mib_pages(0)), (MIB2, 0, 1));
        assert_eq!(Need::of(0, 1, 100), None);
        assert_eq!(Need::of(usize::MAX - 5, 1, 100), None);
        assert_eq!(Need::of(usize::MAX / 2, 1, 100), None, "two copies would overflow");
    }
}

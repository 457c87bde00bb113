//! Whether the re-collapse helper keeps up with copy-on-write. A THP huge page that a forked
//! child shares splits at the parent's first write to it, and putting it back costs a 2 MiB
//! copy (about 1 ms of CPU here): a program that writes all over its heap while it forks
//! splits pages faster than any CPU budget restores them, and each fork copies more 4 KiB
//! page tables. A hugetlb pool is the fix (its pages never split), and the program is told so,
//! once, with the pool it needs.
//!
//! The sign, watched by the helper at the end of each sweep (each visits every backed THP
//! page): [`STREAK`] sweeps in a row, each with a fork during it, each finding at least an
//! eighth of the pages it looked at split (and at least [`MIN_SPLIT`]). Split counts the pages
//! the sweep restored or could not, and the pages a child still shares that are no longer
//! mapped whole: a program that forks back to back always has a child sharing its heap, so the
//! sweep can restore almost nothing, and those pages are the ones falling behind. A program
//! that forks now and then (a save every few seconds) has its pages restored between forks: the
//! sweep that finds them split ends before the next fork, and the streak starts over. A program
//! that forks often but writes little finds few split: its children share pages still whole.
//!
//! The helper has no standard error (its descriptor table is its own and empty), so it leaves
//! word on the doorbell ([`Doorbell::advise`](super::doorbell::Doorbell)) and the parent's
//! after-fork handler says it ([`tell`]), in the program's own thread.

use super::doorbell::Doorbell;
use super::recollapse::Outcome;
use crate::os::stderr::{self, StackWriter};
use crate::units::HUGE_SIZE;
use core::fmt::Write as _;
use core::sync::atomic::Ordering;

/// Sweeps in a row that must fall behind before the program is told.
pub const STREAK: u32 = 4;
/// Fewest split pages a sweep must find to count (a small heap's few pages are not a trend).
pub const MIN_SPLIT: usize = 16;

/// The helper's watch over its sweeps.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeepUp {
    /// Pages the current sweep found split.
    split: usize,
    /// Pages the current sweep looked at (backed ones).
    looked: usize,
    /// Sweeps in a row that fell behind.
    streak: u32,
}

impl KeepUp {
    /// A watch with nothing seen.
    pub const fn new() -> KeepUp {
        KeepUp { split: 0, looked: 0, streak: 0 }
    }

    /// One page of the current sweep, and what became of it; for a page a child shares,
    /// `whole` asks whether it is still mapped by one huge entry (`None`: the kernel cannot
    /// tell, and the page does not count as split).
    pub fn page(&mut self, outcome: Outcome, whole: impl FnOnce() -> Option<bool>) {
        self.looked += usize::from(outcome != Outcome::Empty);
        let split = match outcome {
            Outcome::Collapsed | Outcome::Failed => true,
            Outcome::Shared => whole() == Some(false),
            Outcome::Busy | Outcome::Empty | Outcome::Whole => false,
        };
        self.split += usize::from(split);
    }

    /// The current sweep ended; `forked`: a fork came during it. Returns the split and looked-at
    /// counts of the sweep that completed a streak (the program is to be told), else `None`.
    pub fn sweep_end(&mut self, forked: bool) -> Option<(usize, usize)> {
        let behind = forked && self.split >= MIN_SPLIT && self.split * 8 >= self.looked;
        self.streak = if behind { self.streak + 1 } else { 0 };
        let seen = (self.split, self.looked);
        (self.split, self.looked) = (0, 0);
        (self.streak == STREAK).then_some(seen)
    }
}

/// A heap of `bytes` as a hugetlb pool must hold it: with the growth steps the page heap may
/// commit ahead of need (an eighth more), rounded up to whole 2 MiB pages; `None` on overflow.
/// The one rule for the advice below and for `hugeheap pool --for`.
pub fn with_growth_steps(bytes: usize) -> Option<usize> {
    bytes.checked_add(bytes / 8)?.checked_next_multiple_of(HUGE_SIZE)
}

/// The 2 MiB pages a pool needs for a THP heap of `bytes`: what `hugeheap pool --for` asks
/// for (the heap with its growth steps, and one copy for a forked child).
pub fn pool_pages(bytes: usize) -> usize {
    with_growth_steps(bytes).map_or(usize::MAX, |b| b / HUGE_SIZE * 2)
}

/// In the parent, after a fork: says the helper's word, if it left one and it was not said
/// yet.
#[cold]
pub fn tell(bell: &Doorbell) {
    let Some((split, looked, heap)) = bell.advice() else { return };
    let mib = heap >> 20;
    let mut w = StackWriter::<640>::new();
    let _ = write!(w, "hugeheap: ");
    let _ = stderr::write_process(&mut w);
    let _ = writeln!(
        w,
        ": copy-on-write after fork splits this program's THP huge pages faster than hugeheap restores them \
         (the last of {STREAK} sweeps in a row, each with forks during it, found {split} of {looked} split), so its forks \
         copy 4 KiB page tables again; a hugetlb pool keeps every fork fast: as root, `hugeheap pool --for {mib}M` \
         ({} x 2 MiB pages: the heap and one forked child's copy-on-write), or raise HUGEHEAP_COLLAPSE \
         (docs/tuning.md)",
        pool_pages(heap)
    );
    w.flush_stderr();
    debug_assert!(bell.advised.load(Ordering::Relaxed) == Doorbell::SAID);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unasked() -> Option<bool> {
        unreachable!("only a shared page is asked whether it is whole")
    }

    fn sweep(w: &mut KeepUp, split: usize, whole: usize, forked: bool) -> Option<(usize, usize)> {
        (0..split).for_each(|_| w.page(Outcome::Collapsed, unasked));
        (0..whole).for_each(|_| w.page(Outcome::Whole, unasked));
        (0..3).for_each(|_| w.page(Outcome::Empty, unasked));
        w.sweep_end(forked)
    }

    #[test]
    fn sweeps_that_fall_behind_in_a_row_are_told_once() {
        let mut w = KeepUp::new();
        for _ in 1..STREAK {
            assert_eq!(sweep(&mut w, 100, 156, true), None);
        }
        assert_eq!(sweep(&mut w, 100, 156, true), Some((100, 256)), "empty pages are not looked at");
        assert_eq!(sweep(&mut w, 100, 156, true), None, "told once");
    }

    #[test]
    fn restored_between_forks_or_few_split_starts_over() {
        let mut w = KeepUp::new();
        for round in 0..20 {
            // A save every few seconds: the sweep after each fork finds the heap split, and
            // ends before the next fork.
            assert_eq!(sweep(&mut w, 256, 0, round % 2 == 0), None);
            assert_eq!(sweep(&mut w, 0, 256, false), None);
        }
        for _ in 0..20 {
            // Forks in a loop, few writes.
            assert_eq!(sweep(&mut w, 20, 236, true), None, "fewer than an eighth");
            assert_eq!(sweep(&mut w, MIN_SPLIT - 1, 0, true), None, "too few to count");
        }
    }

    #[test]
    fn shared_pages_count_as_split_only_when_no_longer_whole() {
        // Forks back to back under writes: a child always shares the heap, and the sweep
        // restores nothing; the pages it leaves are split.
        let mut w = KeepUp::new();
        let mut told = None;
        for _ in 0..STREAK {
            (0..200).for_each(|_| w.page(Outcome::Shared, || Some(false)));
            (0..56).for_each(|_| w.page(Outcome::Shared, || Some(true)));
            told = told.or(w.sweep_end(true));
        }
        assert_eq!(told, Some((200, 256)));
        // Forks back to back with few writes: the children share pages still whole; or the
        // kernel cannot tell.
        let mut w = KeepUp::new();
        for _ in 0..3 * STREAK {
            (0..128).for_each(|_| w.page(Outcome::Shared, || Some(true)));
            (0..128).for_each(|_| w.page(Outcome::Shared, || None));
            assert_eq!(w.sweep_end(true), None);
        }
    }

    #[test]
    fn the_pool_is_what_hugeheap_pool_asks_for() {
        assert_eq!(pool_pages(576 << 20), 648);
        assert_eq!(pool_pages(1), 2);
    }
}

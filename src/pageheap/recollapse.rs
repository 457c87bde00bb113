//! Collapsing THP again after copy-on-write. While a forked child lives, every THP huge page
//! the parent writes is split into 4 KiB pages (Linux 5.8 and later), and the parent's next
//! fork copies the page tables that brings back; khugepaged puts them together again only
//! slowly. So, after a fork, the backed THP huge pages are swept and the kernel asked to
//! collapse each again (`MADV_COLLAPSE`), except those a child still shares: collapsing one
//! would copy 2 MiB the child keeps. Whole pages cost a page-table walk.
//!
//! The bookkeeping is here, under the page heap's lock, and hands out batches of huge pages to
//! look at; the looking and collapsing happen outside the lock, in the helper thread of
//! [`super::collapser`], off `malloc`'s path (the small phase's pages of a process that never
//! forked also in the fork that comes before the helper is done, or in the allocating thread
//! where there is no helper: several takers of one sweep). A sweep is complete when it has passed every
//! backed THP huge page with no fork during it and no page skipped as shared; otherwise
//! another follows. The parent's fork handler counts its forks on the wiped page
//! ([`super::fork_pages::fork_count`]); the page heap counts them in here when the helper next
//! takes it.

use super::desc::{FILLER, FREE, HpDesc, LARGE};

/// Where the sweep stands.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recollapse {
    /// Bumped by each fork the process makes (counted on the parent's side) and each time
    /// 4 KiB memory is turned into THP: each bump calls for a sweep.
    forks: u32,
    /// The next huge page to look at.
    at: usize,
    /// `forks` when the last sweep completed.
    seen: u32,
    /// `forks` when the current sweep began (or the last one, between sweeps).
    pass: u32,
    /// A page was skipped in the current sweep because a child still shared it.
    skipped: bool,
    /// Pages of the current sweep handed out in batches and not yet taken back: the sweep
    /// is not complete until they are (two threads may take batches of one sweep: the helper,
    /// and a fork finishing a promotion's, `collapser::finish_before_fork`).
    out: usize,
}

/// What became of one huge page of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Found in 4 KiB pages (split by copy-on-write, or never whole) and collapsed: restored.
    Collapsed = 0,
    /// Left alone: a child still shares some of its pages.
    Shared,
    /// Some page was busy (locked, or in use elsewhere): to be tried again.
    Busy,
    /// The kernel refused to collapse it.
    Failed,
    /// Nothing of it is in memory: nothing to collapse (a fault there takes a huge page).
    Empty,
    /// Mapped whole already: nothing to do.
    Whole,
}

impl Outcome {
    /// How many outcomes there are (the length of a tally).
    pub const COUNT: usize = 6;
}

impl Recollapse {
    /// Records a fork: huge pages may be split from here on.
    pub fn on_fork(&mut self) {
        self.forks = self.forks.wrapping_add(1);
    }

    /// Asks for a sweep without a fork: memory was advised for THP after it was filled in
    /// 4 KiB pages, and collapsing it is the same work.
    pub fn request(&mut self) {
        self.forks = self.forks.wrapping_add(1);
    }

    /// In a forked child: the batches its parent's helper had out are not coming back (the
    /// child takes their pages back itself).
    pub fn forget_batches_out(&mut self) {
        self.out = 0;
    }

    /// Whether a fork since the last completed sweep may have split THP huge pages that no
    /// sweep has put together again.
    pub fn pending(&self) -> bool {
        self.forks != self.seen
    }

    /// The next huge pages to look at (their indices, in address order, at most `out.len()`),
    /// among the first `frontier` of `descs`, marked as being looked at so that nothing
    /// releases them meanwhile. Returns how many, and whether a sweep has just completed (0
    /// pages then). A fork during a sweep does not start it over (a program that forks more
    /// often than a sweep takes would never finish one): the sweep goes on to the end, and as
    /// it began before that fork, it cannot complete the work; another follows.
    pub fn batch(&mut self, descs: &mut [HpDesc], frontier: usize, out: &mut [usize]) -> (usize, bool) {
        if self.forks == self.seen {
            return (0, false);
        }
        if self.at == 0 {
            // A sweep begins: it answers for the forks made so far.
            self.pass = self.forks;
            self.skipped = false;
        }
        let mut n = 0;
        while self.at < frontier && n < out.len() {
            let hp = self.at;
            self.at += 1;
            let d = &mut descs[hp];
            // Backed: in use, or free and not given back (it will be reused as it is).
            // (Not one lent already: being populated, it holds nothing to collapse.)
            if matches!(d.state, FREE | FILLER | LARGE) && !d.released && d.is_thp() && !d.lent {
                d.lent = true;
                out[n] = hp;
                n += 1;
            }
        }
        if n > 0 {
            self.out += n;
            return (n, false);
        }
        // Past the last page, some still being looked at elsewhere: not over yet.
        if self.out > 0 {
            return (0, false);
        }
        // Past the last page: the sweep is over; complete if nothing was left shared (and, if
        // a fork came during it, the next sweep answers for that one).
        self.at = 0;
        if self.skipped {
            return (0, false);
        }
        self.seen = self.pass;
        (0, true)
    }

    /// Takes back a batch from [`batch`](Recollapse::batch) with what became of each page;
    /// counts the outcomes into `tally` (indexed by `Outcome as usize`).
    pub fn done(
        &mut self,
        descs: &mut [HpDesc],
        batch: &[usize],
        outcomes: &[Outcome],
        tally: &mut [usize; Outcome::COUNT],
    ) {
        debug_assert_eq!(batch.len(), outcomes.len());
        debug_assert!(batch.len() <= self.out);
        self.out -= batch.len();
        for (&hp, &o) in batch.iter().zip(outcomes) {
            descs[hp].lent = false;
            tally[o as usize] += 1;
            if matches!(o, Outcome::Shared | Outcome::Busy) {
                self.skipped = true;
            }
        }
    }
}

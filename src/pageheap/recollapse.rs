//! Collapsing THP again after copy-on-write. While a forked child lives, every THP huge page
//! the parent writes is split into 4 KiB pages (Linux 5.8 and later), and the parent's next
//! fork copies the page tables that brings back; khugepaged puts them together again only
//! slowly. So the page heap sweeps its backed THP huge pages with `MADV_COLLAPSE` once forks
//! have been quiet for `QUIET_MS`: `STEP` huge pages at a time (a step copies at most 16
//! MiB), a step at most every `EVERY_MS`, from the heap's slow paths. Pages that are still
//! whole cost a page-table walk. A fork during a sweep starts it over: the pages it had passed
//! may have been split again.
//!
//! The fork bookkeeping reaches the page heap from the fork handler, as an argument
//! ([`PageHeap::on_fork`]).

use super::PageHeap;
use super::backing::Backing;
use super::desc::{FILLER, FREE, LARGE};
use crate::pagekind::PageKind;
use crate::units::HUGE_SIZE;

/// Huge pages per step.
const STEP: usize = 8;
/// The least time between steps, ms.
const EVERY_MS: u32 = 100;
/// The least time after a fork before a step, ms.
const QUIET_MS: u32 = 250;

/// Where the sweep stands.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recollapse {
    /// Forks the process has made (counted on the parent's side).
    forks: u32,
    /// When the last fork happened (the backing's clock).
    last_fork_ms: u32,
    /// The next huge page to look at.
    at: usize,
    /// `forks` when the last sweep ended.
    seen: u32,
    /// `forks` when the current sweep began.
    pass: u32,
    /// When the last step ran.
    last_step: u32,
}

impl<B: Backing> PageHeap<B> {
    /// Records a fork made at `now` (the backing's clock): huge pages may be split from here on.
    pub fn on_fork(&mut self, now: u32) {
        self.recollapse.forks = self.recollapse.forks.wrapping_add(1);
        self.recollapse.last_fork_ms = now;
    }

    /// Whether a fork since the last completed sweep may have split THP huge pages that no
    /// sweep has visited since.
    pub fn recollapse_pending(&self) -> bool {
        self.recollapse.forks != self.recollapse.seen
    }

    /// One step of the sweep, if one is due.
    pub(super) fn recollapse_step(&mut self) {
        let r = self.recollapse;
        if r.forks == r.seen {
            return;
        }
        let now = self.backing.now_ms();
        if now.wrapping_sub(r.last_fork_ms) < QUIET_MS || now.wrapping_sub(r.last_step) < EVERY_MS {
            return;
        }
        self.recollapse.last_step = now;
        if r.forks != r.pass {
            // A fork since this sweep began may have split pages it already visited.
            self.recollapse.pass = r.forks;
            self.recollapse.at = 0;
        }
        let mut budget = STEP;
        while self.recollapse.at < self.arena.frontier && budget > 0 {
            let hp = self.recollapse.at;
            self.recollapse.at += 1;
            let d = &self.descs()[hp];
            // Backed: in use, or free and not given back (it will be reused as it is).
            if matches!(d.state, FREE | FILLER | LARGE) && !d.released && d.kind == PageKind::Thp as u8 {
                budget -= 1;
                if !self.backing.collapse(self.arena.addr(hp), HUGE_SIZE) {
                    self.counters.recollapse_failures += 1;
                }
            }
        }
        if self.recollapse.at >= self.arena.frontier {
            self.recollapse.at = 0;
            self.recollapse.seen = r.forks;
            self.counters.recollapse_passes += 1;
        }
    }
}

//! Giving memory back: whole free anonymous huge pages beyond `retain` that have stayed free
//! for `decay_ms` go back to the OS, highest address first. Never part of a huge page (that
//! would split a THP and bring back its page table), never a hugetlb page (a private hugetlb
//! page given back could not always be faulted in again: the pool may have run dry, and that
//! would be a SIGBUS, not a NULL).

use super::PageHeap;
use super::backing::Backing;
use super::desc::HpDesc;
use crate::pagekind::PageKind;
use crate::units::HUGE_SIZE;

impl<B: Backing> PageHeap<B> {
    /// Gives whole free anonymous huge pages back to the OS, highest first, until at most
    /// `retain` bytes of them stay backed; only pages that have been free for `decay_ms`.
    /// With a decay, the scan runs at most four times per decay period (it is called after
    /// every free and before every allocation of a span).
    pub(super) fn release_excess(&mut self) {
        if self.free_anon_backed <= self.retain {
            return;
        }
        let now = self.backing.now_ms();
        if self.decay_ms > 0 && now.wrapping_sub(self.last_scan) < (self.decay_ms / 4).max(1) {
            return;
        }
        self.last_scan = now;
        self.release_down_to(self.retain, self.decay_ms, now);
    }

    /// Gives every whole free anonymous huge page beyond `keep` bytes back to the OS now,
    /// however recently it was freed (`malloc_trim`). Returns the bytes given back.
    pub fn trim(&mut self, keep: usize) -> usize {
        let before = self.counters.released_total;
        let now = self.backing.now_ms();
        self.release_down_to(keep / HUGE_SIZE, 0, now);
        self.counters.released_total - before
    }

    /// Releases free anonymous huge pages that have been free for `decay` ms, highest first,
    /// until at most `keep` of them stay backed (or none is left to release).
    fn release_down_to(&mut self, keep: usize, decay: u32, now: u32) {
        let mut below = self.arena.frontier;
        while self.free_anon_backed > keep {
            let Some(top) = self.map().prev_free(below) else { return };
            let descs = self.descs();
            let releasable = |d: &HpDesc| {
                !d.released
                    && !d.collapsing
                    && !PageKind::ALL[d.kind as usize].is_hugetlb()
                    && now.wrapping_sub(d.freed_at) >= decay
            };
            if !releasable(&descs[top]) {
                below = top;
                continue;
            }
            let mut lo = top;
            let excess = self.free_anon_backed - keep;
            while lo > 0 && top + 1 - lo < excess && self.map().is_free(lo - 1) && releasable(&descs[lo - 1]) {
                lo -= 1;
            }
            let count = top + 1 - lo;
            // SAFETY: [lo, top] are free anonymous huge pages of the committed arena: nothing
            // lives there.
            if !unsafe { self.backing.release(self.arena.addr(lo), count * HUGE_SIZE) } {
                return;
            }
            for d in &mut descs[lo..=top] {
                d.released = true;
                d.dirty = 0;
            }
            self.free_anon_backed -= count;
            self.counters.released_now += count * HUGE_SIZE;
            self.counters.released_total += count * HUGE_SIZE;
            below = lo;
        }
    }
}

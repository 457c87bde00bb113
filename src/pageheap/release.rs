//! Giving memory back: whole free anonymous huge pages beyond `retain` that have stayed free
//! for `decay_ms` go back to the OS, highest address first. Never part of a huge page (that
//! would split a THP and bring back its page table), never a hugetlb page (a private hugetlb
//! page given back could not always be faulted in again: the pool may have run dry, and that
//! would be a SIGBUS, not a NULL) — except in the small phase, whose 4 KiB pages have no THP
//! to split: there a free that leaves a free run of [`SMALL_RELEASE_FROM`] or more gives the
//! run's dirty pages back at once, rationed, as glibc gives back large chunks and trims its top.
//!
//! And whatever the decay: the resident heap does not pass the most it ever had in use by
//! more than `retain` and a sixteenth while free huge pages holding memory sit in runs the
//! requests do not fit. A fresh page faulted in past that gives back a free resident page
//! elsewhere, highest first, however recently freed ([`PageHeap::release_for_fresh`]). A
//! program whose big blocks change size (buffers grown by realloc, a mix of 64 KiB to 16 MiB)
//! otherwise keeps the pages of its freed blocks and faults in new ones for the blocks that
//! do not fit there (docs/benchmarks.md, "Figures behind the code").

use super::PageHeap;
use super::backing::Backing;
use super::desc::HpDesc;
use super::filler::run_mask;
use super::residency::{RELEASE_FROM, SMALL_PHASE, SMALL_RELEASE_BURST, SMALL_RELEASE_EVERY_MS, SMALL_RELEASE_FROM};
use crate::units::{HUGE_SIZE, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_HUGE};
use core::ops::Range;
use core::sync::atomic::Ordering;

/// How many free huge pages [`PageHeap::release_for_fresh`] looks at, at most.
const EXCHANGE_LOOK: usize = 4096;

impl<B: Backing> PageHeap<B> {
    /// Gives whole free anonymous huge pages back to the OS, highest first, until at most
    /// `retain` bytes of them stay backed; only pages that have been free for `decay_ms`.
    /// With a decay, the scan runs at most four times per decay period (it is called after
    /// every free and before every allocation of a span).
    pub(super) fn release_excess(&mut self) {
        if self.res.free_anon_backed <= self.res.retain {
            return;
        }
        let now = self.backing.now_ms();
        if self.res.decay_ms > 0 && now.wrapping_sub(self.res.last_scan) < (self.res.decay_ms / 4).max(1) {
            return;
        }
        self.res.last_scan = now;
        self.release_down_to(self.res.retain, self.res.decay_ms, now);
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
        let want = self.res.free_anon_backed.saturating_sub(keep);
        let releasable = |d: &HpDesc| !d.released && !d.lent && d.is_anon() && now.wrapping_sub(d.freed_at) >= decay;
        self.release_highest(want, 0..0, usize::MAX, releasable);
    }

    /// Before the free huge pages `[s, s + n)` are handed out, with the resident set about to
    /// pass its limit by `over` pages (fresh ones to be faulted in): gives back up to `over`
    /// free pages holding memory outside that run, highest first, however recently freed.
    /// Looks at no more than [`EXCHANGE_LOOK`] free huge pages, so that the cost stays bounded
    /// (below one huge page's fault) in a heap with many free pages.
    pub(super) fn release_for_fresh(&mut self, s: usize, n: usize, over: usize) {
        let holds = |d: &HpDesc| d.holds_memory() && d.is_anon();
        self.release_highest(over.min(self.res.free_resident), s..s + n, EXCHANGE_LOOK, holds);
    }

    /// Gives back up to `want` free huge pages that `pick` takes (it takes none released, none
    /// being collapsed, none of hugetlb), highest first, in runs; never one of `skip`. Looks
    /// at no more than `look` free huge pages.
    fn release_highest(&mut self, want: usize, skip: Range<usize>, look: usize, pick: impl Fn(&HpDesc) -> bool) {
        let mut left = want;
        let mut below = self.arena.frontier;
        let mut looked = 0;
        while left > 0 && looked < look {
            let Some(top) = self.tables.map().prev_free(below) else { return };
            looked += 1;
            if skip.contains(&top) {
                below = skip.start;
                continue;
            }
            let (descs, map) = self.tables.both();
            if !pick(&descs[top]) {
                below = top;
                continue;
            }
            let mut lo = top;
            while lo > 0
                && top + 1 - lo < left
                && !skip.contains(&(lo - 1))
                && map.is_free(lo - 1)
                && pick(&descs[lo - 1])
            {
                lo -= 1;
            }
            let count = top + 1 - lo;
            looked += count - 1;
            if !self.release_free(lo, count) {
                return;
            }
            left -= count;
            below = lo;
        }
    }

    /// Gives the free anonymous huge pages `[lo, lo + count)` (none released, none being
    /// collapsed) back to the OS. False when the OS refused (nothing changed).
    fn release_free(&mut self, lo: usize, count: usize) -> bool {
        debug_assert!({
            let (descs, map) = self.tables.both();
            (lo..lo + count).all(|i| map.is_free(i) && !descs[i].released && descs[i].is_anon())
        });
        // SAFETY: [lo, lo + count) are free anonymous huge pages of the committed arena (the
        // callers found them so): nothing lives there.
        if !unsafe { self.backing.release(self.arena.addr(lo), count * HUGE_SIZE) } {
            return false;
        }
        self.mark_released(lo, count);
        self.counters.released_total += count * HUGE_SIZE;
        self.renew_moved(lo, count);
        true
    }

    /// Counts the free anonymous huge pages `[lo, lo + count)` (none released) as holding no
    /// memory any more: given back, or moved elsewhere.
    pub(super) fn mark_released(&mut self, lo: usize, count: usize) {
        let descs = self.tables.descs();
        for d in &mut descs[lo..lo + count] {
            debug_assert!(!d.released && d.is_anon());
            if d.dirty != 0 {
                self.res.resident -= 1;
                self.res.free_resident -= 1;
            }
            d.released = true;
            d.dirty = 0;
            d.zero = false;
        }
        self.res.free_anon_backed -= count;
        self.counters.released_now += count * HUGE_SIZE;
    }

    /// Keeps [`release_from`] and [`small_phase`] in step with this heap, if it is the process's.
    pub(super) fn mirror_release_from(&self) {
        if self.published {
            SMALL_PHASE.store(self.arena.in_small_phase(), Ordering::Relaxed);
            let now = self.arena.in_small_phase() && self.small.release_tokens > 0;
            let from = if now { SMALL_RELEASE_FROM } else { usize::MAX };
            RELEASE_FROM.store(from, Ordering::Relaxed);
        }
    }

    /// Earns the releases due since they were last counted (one per
    /// [`SMALL_RELEASE_EVERY_MS`], up to [`SMALL_RELEASE_BURST`]), and says when there were
    /// none left before (the thread heaps give their large empty slabs back again).
    fn earn_release_tokens(&mut self) {
        let now = self.backing.now_ms();
        let earned = now.wrapping_sub(self.small.tokens_at) / SMALL_RELEASE_EVERY_MS;
        if earned > 0 {
            let had = self.small.release_tokens > 0;
            self.small.release_tokens = (self.small.release_tokens.saturating_add(earned)).min(SMALL_RELEASE_BURST);
            self.small.tokens_at = self.small.tokens_at.wrapping_add(earned * SMALL_RELEASE_EVERY_MS);
            if !had {
                self.mirror_release_from();
            }
        }
    }

    /// After pages `[first, first + n)` of huge page `hp`, in the small heap's 4 KiB pages,
    /// were freed: when the free run holding them is at least [`SMALL_RELEASE_FROM`], gives
    /// its dirty pages back, if the ration allows (see [`SMALL_RELEASE_BURST`]; no THP to split
    /// there). The run takes in the neighbouring free pages too, freed earlier and too few then
    /// to go back on their own.
    pub(super) fn release_small_run(&mut self, hp: usize, first: u32, n: u32) {
        let d = &self.tables.descs()[hp];
        // A wholly free huge page has no page in use (`make_free`).
        let used = d.used;
        debug_assert!(used & run_mask(first, n) == 0 && (d.state != super::desc::FREE || used == 0));
        let (mut lo, mut hi) = (first, first + n);
        while lo > 0 && used & (1 << (lo - 1)) == 0 {
            lo -= 1;
        }
        while (hi as usize) < PAGES_PER_HUGE && used & (1 << hi) == 0 {
            hi += 1;
        }
        let mut dirty = d.dirty & run_mask(lo, hi - lo);
        if ((hi - lo) as usize) * PAGE_SIZE < SMALL_RELEASE_FROM || dirty == 0 {
            return;
        }
        if self.small.handed_out_since_release {
            self.earn_release_tokens();
            if self.small.release_tokens == 0 {
                return;
            }
            self.small.release_tokens -= 1;
            if self.small.release_tokens == 0 {
                self.mirror_release_from();
            }
        }
        self.small.handed_out_since_release = false;
        let base = self.arena.addr(hp);
        while dirty != 0 {
            let at = dirty.trailing_zeros();
            let len = (!(dirty >> at)).trailing_zeros().min(PAGES_PER_HUGE as u32 - at);
            self.release_small(base + at as usize * PAGE_SIZE, len as usize);
            dirty &= !run_mask(at, len);
        }
    }

    /// Gives back the memory of free pages in the small heap's 4 KiB pages (the caller found
    /// them free and checked the small phase). Whole huge pages it frees are marked released;
    /// the rest reads as zero again.
    fn release_small(&mut self, start: usize, pages: usize) {
        debug_assert!(start >= self.arena.base && pages > 0);
        debug_assert!({
            let (first, hp) = (((start >> PAGE_SHIFT) % PAGES_PER_HUGE) as u32, self.hp_index(start));
            let d = &self.tables.descs()[hp];
            first as usize + pages <= PAGES_PER_HUGE
                && (d.state == super::desc::FREE || d.used & run_mask(first, pages as u32) == 0)
        });
        // SAFETY: the pages are free (no span holds them: checked above in debug builds) and
        // committed anonymous 4 KiB memory of the arena (the small phase).
        if !unsafe { self.backing.release(start, pages * PAGE_SIZE) } {
            return;
        }
        self.counters.released_total += pages * PAGE_SIZE;
        let (mut at, end) = (start >> PAGE_SHIFT, (start >> PAGE_SHIFT) + pages);
        while at < end {
            let hp = self.hp_index(at << PAGE_SHIFT);
            let first = (at % PAGES_PER_HUGE) as u32;
            let n = ((end - at).min(PAGES_PER_HUGE - first as usize)) as u32;
            let whole_free = self.tables.map().is_free(hp);
            let d = &mut self.tables.descs()[hp];
            let held = d.dirty != 0;
            d.dirty &= !run_mask(first, n);
            d.zero = false;
            if held && d.dirty == 0 && d.is_anon() {
                self.res.resident -= 1;
                self.res.free_resident -= whole_free as usize;
            }
            if whole_free && !d.released && d.dirty == 0 {
                d.released = true;
                self.res.free_anon_backed -= 1;
                self.counters.released_now += HUGE_SIZE;
            }
            at += n as usize;
        }
    }
}

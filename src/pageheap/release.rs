//! Giving memory back: whole free anonymous huge pages beyond `retain` that have stayed free
//! for `decay_ms` go back to the OS, highest address first. Never part of a huge page (that
//! would split a THP and bring back its page table), never a hugetlb page (a private hugetlb
//! page given back could not always be faulted in again: the pool may have run dry, and that
//! would be a SIGBUS, not a NULL) — except in the small phase, whose 4 KiB pages have no THP
//! to split: there large spans go back at free, rationed, as glibc gives back large chunks.

use super::PageHeap;
use super::backing::Backing;
use super::desc::HpDesc;
use super::filler::run_mask;
use crate::pagekind::PageKind;
use crate::units::{HUGE_SIZE, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_HUGE};
use core::sync::atomic::{AtomicUsize, Ordering};

/// In the small phase, a span of at least this many bytes (glibc's default `mmap` threshold)
/// freed goes back to the OS at once, as glibc gives back a large chunk: a small process (a
/// forked backend going idle) then holds what it would hold with glibc. Smaller spans wait,
/// like whole free huge pages, for the decay.
pub const SMALL_RELEASE_FROM: usize = 128 << 10;

/// Those releases are rationed, so that a loop that frees and allocates the same large block
/// does not pay a system call and page faults every time: at most this many in a burst...
pub(super) const SMALL_RELEASE_BURST: u32 = 32;

/// ...and one more per this many milliseconds.
const SMALL_RELEASE_EVERY_MS: u32 = 10;

/// The size from which a span freed in the process's heap goes back to the OS at once
/// (`usize::MAX` past the small phase or while such releases are rationed; see
/// [`SMALL_RELEASE_FROM`]): the thread heaps keep no empty slab that large, so that its pages
/// go back too. Read without the lock; a stale answer only keeps or returns one empty slab.
pub fn release_from() -> usize {
    RELEASE_FROM.load(Ordering::Relaxed)
}

static RELEASE_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);

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

    /// Keeps [`release_from`] in step with this heap, if it is the process's.
    pub(super) fn mirror_release_from(&self) {
        if self.published {
            let now = self.arena.in_small_phase() && self.release_tokens > 0;
            let from = if now { SMALL_RELEASE_FROM } else { usize::MAX };
            RELEASE_FROM.store(from, Ordering::Relaxed);
        }
    }

    /// One of the small phase's rationed releases at free, if one is left; says when none is
    /// (the thread heaps then keep their empty slabs again).
    pub(super) fn take_release_token(&mut self) -> bool {
        let now = self.backing.now_ms();
        let earned = now.wrapping_sub(self.tokens_at) / SMALL_RELEASE_EVERY_MS;
        if earned > 0 {
            self.release_tokens = (self.release_tokens.saturating_add(earned)).min(SMALL_RELEASE_BURST);
            self.tokens_at = self.tokens_at.wrapping_add(earned * SMALL_RELEASE_EVERY_MS);
        }
        let had = self.release_tokens > 0;
        self.release_tokens = self.release_tokens.saturating_sub(1);
        if self.release_tokens == 0 || earned > 0 {
            self.mirror_release_from();
        }
        had
    }

    /// Gives back the memory of a span just freed in the small heap's 4 KiB pages, as glibc
    /// gives back a large chunk at free (see [`SMALL_RELEASE_FROM`]): no THP to split there.
    /// Whole huge pages it frees are marked released; the rest reads as zero again.
    pub(super) fn release_small(&mut self, start: usize, pages: usize) {
        // SAFETY: the span's pages were just freed: nothing lives there; they are committed
        // anonymous 4 KiB memory of the arena (the caller checked the small phase).
        if !unsafe { self.backing.release(start, pages * PAGE_SIZE) } {
            return;
        }
        self.counters.released_total += pages * PAGE_SIZE;
        let (mut at, end) = (start >> PAGE_SHIFT, (start >> PAGE_SHIFT) + pages);
        while at < end {
            let hp = self.hp_index(at << PAGE_SHIFT);
            let first = (at % PAGES_PER_HUGE) as u32;
            let n = ((end - at).min(PAGES_PER_HUGE - first as usize)) as u32;
            let whole_free = self.map().is_free(hp);
            let d = &mut self.descs()[hp];
            d.dirty &= !run_mask(first, n);
            if whole_free && !d.released && d.dirty == 0 {
                d.released = true;
                self.free_anon_backed -= 1;
                self.counters.released_now += HUGE_SIZE;
            }
            at += n as usize;
        }
    }
}

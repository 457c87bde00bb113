//! Moving held memory to where it is wanted: before fresh THP huge pages are handed out, free
//! huge pages that still hold memory elsewhere in the arena are moved into their place
//! (`mremap`, page tables and all, in runs), so the kernel neither faults in nor clears a
//! fresh 2 MiB page, and the resident set does not grow. Large blocks of changing sizes leave
//! free huge pages in runs the next requests do not fit; without moves, each fresh page is
//! either more memory held or a page given back for one faulted in (`release`'s exchange),
//! and a move costs a few microseconds where a fresh THP costs a fault and a 2 MiB clear
//! (docs/benchmarks.md, "Figures behind the code").
//!
//! The price is mappings: the kernel keeps moved memory's mapping offset, so a run moved
//! together is a mapping of its own, and each fork copies every mapping. The mappings moves
//! add are counted ([`Moves::breaks`](super::residency::Moves::breaks)), and no move takes
//! them past [`MOVED_MAPPINGS_MAX`]. They go away with the blocks that needed them: a moved
//! run freed whole goes back where it came from when that place is free and holds nothing
//! ([`send_home`](PageHeap::send_home)), and a place moved memory leaves, or a moved run
//! given back, is mapped afresh with its own offset where that merges it with its
//! neighbours ([`renew_moved`](PageHeap::renew_moved)).
//!
//! No move once another process may share the pages (after a fork, or in a forked child): a
//! shared page moved and then written would be split and copied 4 KiB at a time, where a fresh
//! one is whole.

use super::PageHeap;
use super::backing::Backing;
use super::desc::{FREE, HpDesc, LARGE};
use crate::os::mem::Renewed;
use crate::units::{HUGE_SIZE, HugePage};
use core::ops::Range;

/// Most mappings moves may add to the heap's own: each fork copies them (about 1.3 µs each on
/// the test VM, where a fork of a 512 MiB THP heap takes about 0.6 ms), so they cost a
/// process that forks after moving about 40 µs a fork at most. The count follows the mapping
/// offsets; the kernel may keep a few more apart, which it does not see: a range mapped afresh
/// where no neighbour's offset followed on takes an anon_vma of its own when first touched,
/// and the kernel joins no mappings whose anon_vmas differ (one or two more after many moves
/// by four threads, `tests/moves.rs`).
pub const MOVED_MAPPINGS_MAX: usize = 32;

/// How many free huge pages one search for pages to move looks at, at most.
const MOVE_LOOK: usize = 4096;

/// Where a search for free huge pages holding memory has got to: below `below`, having looked
/// at `looked` pages, never in `skip` (the pages being handed out).
struct Search {
    below: usize,
    looked: usize,
    skip: core::ops::Range<usize>,
}

/// Whether huge pages `i - 1` and `i` lie in two mappings because of a move: both THP, below
/// the frontier, with shifts that differ.
fn splits(descs: &[HpDesc], frontier: usize, i: usize) -> bool {
    splits_with(descs, frontier, i, |q| descs[q].shift)
}

/// Whether huge pages `i - 1` and `i` would lie in two mappings if each page `q` had shift
/// `shift(q)` (see [`splits`]).
fn splits_with(descs: &[HpDesc], frontier: usize, i: usize, shift: impl Fn(usize) -> i32) -> bool {
    i > 0 && i < frontier && descs[i - 1].is_thp() && descs[i].is_thp() && shift(i - 1) != shift(i)
}

/// The shift huge page `to` takes when the memory of huge page `from` moves there: the same
/// mapping offset, counted from `to`.
fn moved_shift(descs: &[HpDesc], from: usize, to: usize) -> i32 {
    // Arena indices fit an i32 (2^31 huge pages would be 4 PiB).
    (from as i64 + descs[from].shift as i64 - to as i64) as i32
}

/// The end of the run of huge pages from `a` (below `end`) that share `a`'s shift: memory
/// moved there together, or pages of one mapping.
fn same_shift_end(descs: &[HpDesc], a: usize, end: usize) -> usize {
    let shift = descs[a].shift;
    (a + 1..end).find(|&b| descs[b].shift != shift).unwrap_or(end)
}

impl<B: Backing> PageHeap<B> {
    /// Before the free huge pages `[s, s + n)` are handed out: moves into the fresh THP ones
    /// among them (never faulted in, or given back) free huge pages that hold memory
    /// elsewhere, highest first and in runs (a run moved whole is one mapping), as long as
    /// such pages are found among [`MOVE_LOOK`] and the mappings allow. The pages moved into
    /// hold memory, free and dirty, for `claim`.
    pub(super) fn move_held_into(&mut self, s: usize, n: usize) {
        if self.moves.off || self.res.free_resident == 0 || self.backing.may_share() {
            return;
        }
        let mut search = Search { below: self.arena.frontier, looked: 0, skip: s..s + n };
        let mut i = s;
        while i < s + n {
            if !self.takes_a_move(i) {
                i += 1;
                continue;
            }
            // A run of fresh pages of one offset (as each stays where it was given back).
            let same = same_shift_end(self.tables.descs(), i, s + n);
            let end = (i + 1..same).find(|&e| !self.takes_a_move(e)).unwrap_or(same);
            while i < end {
                if self.res.free_resident == 0 {
                    return;
                }
                let Some((j, k)) = self.held_run(&mut search, end - i) else { return };
                if !self.move_run(j, i, k) {
                    return;
                }
                i += k;
            }
        }
    }

    /// The highest run of free huge pages holding memory, THP, whose mapping offsets follow on
    /// (equal shifts), below `search.below` and outside `search.skip`: its top `want` pages
    /// at most. Moves the search below it.
    fn held_run(&mut self, search: &mut Search, want: usize) -> Option<(usize, usize)> {
        let (descs, map) = self.tables.both();
        let held = |d: &HpDesc| d.holds_memory() && d.is_thp();
        loop {
            if search.looked >= MOVE_LOOK {
                return None;
            }
            let top = map.prev_free(search.below)?;
            search.looked += 1;
            search.below = top;
            if search.skip.contains(&top) {
                search.below = search.skip.start;
                continue;
            }
            if !held(&descs[top]) {
                continue;
            }
            let mut lo = top;
            while top + 1 - lo < want
                && lo > 0
                && !search.skip.contains(&(lo - 1))
                && map.is_free(lo - 1)
                && held(&descs[lo - 1])
                && descs[lo - 1].shift == descs[top].shift
            {
                lo -= 1;
            }
            search.looked += top - lo;
            search.below = lo;
            return Some((lo, top + 1 - lo));
        }
    }

    /// After the huge pages `[lo, lo + count)` became free: sends each run of them whose
    /// memory was moved there together back where it came from, if that is free and holds no
    /// memory, so that it merges with its neighbours there, and the place it leaves can be
    /// mapped afresh: the mappings moves added go with the blocks that needed them.
    pub(super) fn send_home(&mut self, lo: usize, count: usize) {
        if self.moves.off || self.moves.breaks == 0 || self.backing.may_share() {
            return;
        }
        let mut a = lo;
        while a < lo + count {
            let shift = self.tables.descs()[a].shift;
            let b = same_shift_end(self.tables.descs(), a, lo + count);
            let k = b - a;
            let home = a as i64 + shift as i64;
            if shift != 0 && home >= 0 && (shift.unsigned_abs() as usize) >= k {
                let home = home as usize;
                let shift0 = self.tables.descs().get(home).map(|d| d.shift);
                let free_there = home + k <= self.arena.frontier
                    && (home..home + k).all(|h| self.takes_a_move(h) && Some(self.tables.descs()[h].shift) == shift0);
                let held = self.tables.descs()[a..b].iter().all(HpDesc::holds_memory);
                if free_there && held && !self.move_run(a, home, k) {
                    return;
                }
            }
            a = b;
        }
    }

    /// Whether a move may bring memory to huge page `i`: a fresh free THP page, not at the
    /// frontier (the arena's next piece would not merge with a moved page), whose neighbours
    /// are THP pages too (a mapping of another kind may share its flags and be merged with it).
    fn takes_a_move(&mut self, i: usize) -> bool {
        let frontier = self.arena.frontier;
        let descs = self.tables.descs();
        let d = &descs[i];
        d.state == FREE
            && d.dirty == 0
            && !d.lent
            && d.is_thp()
            && i + 1 < frontier
            && descs[i + 1].is_thp()
            && (i == 0 || descs[i - 1].is_thp())
    }

    /// The mappings moves add along the edges of huge pages `[a, a + k)` and `[b, b + k)`
    /// (each boundary counted once where the two touch).
    fn breaks_along(&mut self, a: usize, b: usize, k: usize) -> usize {
        let frontier = self.arena.frontier;
        let descs = self.tables.descs();
        let count = |lo: usize, hi: usize| (lo..=hi).filter(|&p| splits(descs, frontier, p)).count();
        let (lo, hi) = (a.min(b), a.max(b));
        if hi <= lo + k { count(lo, hi + k) } else { count(a, a + k) + count(b, b + k) }
    }

    /// Moves the memory of the `k` free huge pages from `j` (held, offsets following on) into
    /// the `k` free fresh huge pages from `i` (of one offset), if the mappings allow. False when they do not,
    /// or the OS refused (nothing changed).
    fn move_run(&mut self, j: usize, i: usize, k: usize) -> bool {
        debug_assert!(k > 0 && (j + k <= i || i + k <= j));
        debug_assert!({
            let d = self.tables.descs();
            d[i..i + k].iter().all(|t| t.shift == d[i].shift) && d[j..j + k].iter().all(|f| f.shift == d[j].shift)
        });
        let before = self.breaks_along(i, j, k);
        let old = [self.tables.descs()[i].shift, self.tables.descs()[j].shift];
        let shift = moved_shift(self.tables.descs(), j, i);
        let set = |ph: &mut Self, t: i32| ph.tables.descs()[i..i + k].iter_mut().for_each(|d| d.shift = t);
        // The sources keep their offsets here: mapped afresh afterwards only where that takes
        // mappings away (`renew_moved`).
        set(self, shift);
        let after = self.breaks_along(i, j, k);
        set(self, old[0]);
        if self.moves.breaks + after > MOVED_MAPPINGS_MAX + before {
            return false;
        }
        let (from, to) = (self.arena.addr(j), self.arena.addr(i));
        // SAFETY: [j, j + k) and [i, i + k) are free committed THP huge pages of the arena, apart,
        // with the same protection and advice (`takes_a_move`, `held_run`); nothing lives in
        // either, and the sources' contents are nobody's.
        if !unsafe { self.backing.move_memory(from, to, k * HUGE_SIZE) } {
            self.moves.off = true;
            return false;
        }
        set(self, shift);
        self.moves.breaks = self.moves.breaks + after - before;
        self.mark_released(j, k);
        for p in 0..k {
            self.hold_free(i + p);
        }
        self.renew_moved(j, k);
        self.counters.moved_total += k * HUGE_SIZE;
        true
    }

    /// Whether the memory of the `k` huge pages from `j`, a large span's, may be moved to the
    /// free huge pages from `i` ([`move_span_pages`](PageHeap::move_span_pages)): no fork
    /// yet, all THP and none lent, THP neighbours at the target (as [`takes_a_move`] asks,
    /// and not at the frontier), and the mappings the move adds within the bound.
    pub(super) fn may_move_span(&mut self, j: usize, i: usize, k: usize) -> bool {
        debug_assert!(k > 0 && (j + k <= i || i + k <= j));
        if self.moves.off || self.backing.may_share() || i + k >= self.arena.frontier {
            return false;
        }
        let descs = self.tables.descs();
        let movable = |d: &HpDesc| d.is_thp() && !d.lent;
        if !descs[j..j + k].iter().all(movable)
            || !descs[i..i + k].iter().all(|d| movable(d) && d.state == FREE)
            || !descs[i + k].is_thp()
            || (i > 0 && !descs[i - 1].is_thp())
        {
            return false;
        }
        let (before, after) = self.span_move_breaks(j, i, k);
        self.moves.breaks + after <= MOVED_MAPPINGS_MAX + before
    }

    /// The mappings along the edges and inside of huge pages `to`, before and after a move
    /// gives each page `q` of them the shift `moved(descs, q)` (every boundary from
    /// `to.start` to `to.end`, each counted once).
    fn breaks_if_moved(&mut self, to: Range<usize>, moved: impl Fn(&[HpDesc], usize) -> i32) -> (usize, usize) {
        let frontier = self.arena.frontier;
        let descs = self.tables.descs();
        let before = (to.start..=to.end).filter(|&p| splits(descs, frontier, p)).count();
        let shift = |q: usize| if to.contains(&q) { moved(descs, q) } else { descs[q].shift };
        let after = (to.start..=to.end).filter(|&p| splits_with(descs, frontier, p, shift)).count();
        (before, after)
    }

    /// The mappings along the target of a move of `[j, j + k)` to `i`, before and after it:
    /// memory moved keeps its offset, so the pages at `i` take the shifts of the pages they
    /// receive, less the distance moved.
    fn span_move_breaks(&mut self, j: usize, i: usize, k: usize) -> (usize, usize) {
        self.breaks_if_moved(i..i + k, |descs, q| moved_shift(descs, j + q - i, q))
    }

    /// Moves the memory of the `k` huge pages from `j`, a large span's in use, into the huge
    /// pages from `i`, just claimed for the span that replaces it ([`may_move_span`] said it
    /// may), in runs of one offset. Returns how many of the first pages moved: all, unless the
    /// OS refused on the way (then no more moves). The pages at `j` that moved hold nothing.
    pub(super) fn move_span_pages(&mut self, j: usize, i: usize, k: usize) -> usize {
        let mut a = j;
        while a < j + k {
            let b = same_shift_end(self.tables.descs(), a, j + k);
            let (t, n) = (i + (a - j), b - a);
            let shift = moved_shift(self.tables.descs(), a, t);
            let (before, after) = self.breaks_if_moved(t..t + n, |_, _| shift);
            // Within the bound still (what was moved into the span's other pages meanwhile
            // counts too), else the rest is copied.
            if self.moves.breaks + after > MOVED_MAPPINGS_MAX + before {
                break;
            }
            let (from, to) = (self.arena.addr(a), self.arena.addr(t));
            // SAFETY: [a, b) are committed THP huge pages of a live large span, whose contents
            // nobody else reads or writes while it is replaced (`grow_by_moving`'s contract),
            // and [t, t + n) committed THP huge pages claimed for the new span, which holds
            // nothing live yet; the two apart (`may_move_span`), with the arena's protection
            // and advice.
            if !unsafe { self.backing.move_memory(from, to, n * HUGE_SIZE) } {
                self.moves.off = true;
                break;
            }
            self.tables.descs()[t..t + n].iter_mut().for_each(|d| d.shift = shift);
            self.moves.breaks = self.moves.breaks + after - before;
            self.counters.moved_total += n * HUGE_SIZE;
            a = b;
        }
        a - j
    }

    /// Maps the free, released huge pages `[lo, lo + count)` afresh, with their own offsets,
    /// where that takes mappings away: each run of them moved there together (one offset)
    /// then merges with its neighbours again. Not part of such a run (mapped afresh, it would
    /// cut the rest's mapping). A range the OS lost is never handed out again.
    pub(super) fn renew_moved(&mut self, lo: usize, count: usize) {
        let frontier = self.arena.frontier;
        let mut a = lo;
        while a < lo + count {
            let descs = self.tables.descs();
            let shift = descs[a].shift;
            let b = same_shift_end(descs, a, lo + count);
            if shift != 0 {
                debug_assert!(descs[a..b].iter().all(|d| d.state == FREE && d.released && d.is_thp()));
                let ends = |descs: &[HpDesc]| splits(descs, frontier, a) as usize + splits(descs, frontier, b) as usize;
                let before = ends(descs);
                descs[a..b].iter_mut().for_each(|d| d.shift = 0);
                let after = ends(descs);
                descs[a..b].iter_mut().for_each(|d| d.shift = shift);
                if after < before {
                    self.renew(a, b - a, before - after);
                }
            }
            a = b;
        }
    }

    /// Maps `[a, a + k)` afresh (see [`renew_moved`](PageHeap::renew_moved)), which takes
    /// `fewer` mappings away.
    fn renew(&mut self, a: usize, k: usize, fewer: usize) {
        // SAFETY: free, released THP huge pages of the arena (`renew_moved`'s caller): nothing
        // lives there.
        match unsafe { self.backing.renew_thp(self.arena.addr(a), k * HUGE_SIZE) } {
            Renewed::Yes => {
                self.tables.descs()[a..a + k].iter_mut().for_each(|d| d.shift = 0);
                self.moves.breaks -= fewer;
            }
            Renewed::Kept => {}
            Renewed::Lost => (a..a + k).for_each(|i| self.retire_lost(i)),
        }
    }

    /// Takes free, released huge page `i`, which the OS left unmapped, out of use for good (as
    /// a large page nobody frees), and stops moving.
    fn retire_lost(&mut self, i: usize) {
        self.moves.off = true;
        self.tables.map().set_range(HugePage(i), HugePage(1), false);
        let d = &mut self.tables.descs()[i];
        debug_assert!(d.state == FREE && d.released);
        d.released = false;
        d.state = LARGE;
        d.used = u32::MAX;
        d.dirty = u32::MAX;
        self.counters.released_now -= HUGE_SIZE;
        self.counters.free_bytes -= HUGE_SIZE;
        self.res.resident += 1;
        self.res.in_use_peak = self.res.in_use_peak.max(self.res.resident - self.res.free_resident);
    }

    /// Mappings moves added to the heap's own.
    pub fn moved_mappings(&self) -> usize {
        self.moves.breaks
    }

    /// Counts the mappings moves added from the descriptors, for `check_invariants`.
    #[cfg(any(test, feature = "check"))]
    pub(super) fn count_moved_mappings(&mut self) -> usize {
        let frontier = self.arena.frontier;
        let descs = self.tables.descs();
        (1..frontier).filter(|&i| splits(descs, frontier, i)).count()
    }
}

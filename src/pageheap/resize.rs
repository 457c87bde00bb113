//! Growing a large span (realloc): in place, into the free pages right after it, and past the
//! top of the committed arena by committing more (a span under one huge page grows only
//! within its huge page); else into a new span that receives its whole huge pages' memory
//! moved, not copied ([`relocate`](super::relocate)): a copy writes every byte again into
//! pages faulted in fresh, where a move hands over the page tables. glibc moves its `mmap`
//! chunks with `mremap` for the same reason. The move costs the mappings moves cost (memory
//! moved keeps its mapping offset), within the same bound.

use super::PageHeap;
use super::backing::Backing;
use super::desc::{FILLER, LARGE};
use super::filler::run_mask;
use crate::span::Span;
use crate::units::{HUGE_SIZE, HugePage, PAGE_SHIFT, PAGES_PER_HUGE, Page};

impl<B: Backing> PageHeap<B> {
    /// Grows `span` (a large span) in place to `new_bytes`, taking free pages right after it
    /// (and committing more arena when it ends at the top). False, changing nothing, when
    /// its neighbours are in use.
    ///
    /// # Safety
    /// `span` must be a live large span of this heap.
    pub unsafe fn grow_in_place(&mut self, span: *mut Span, new_bytes: usize) -> bool {
        debug_assert!(!span.is_null());
        // SAFETY: `span` is a live large span of this heap (this function's contract), whose
        // header the page heap's lock, held through `&mut self`, keeps from changing.
        let (start, pages) = unsafe { ((*span).start, (*span).pages as usize) };
        let new_pages = Page::covering(new_bytes).0;
        let Ok(new_pages32) = u32::try_from(new_pages) else { return false };
        if new_pages <= pages {
            return true;
        }
        let hp0 = self.hp_index(start);
        let off = ((start >> PAGE_SHIFT) % PAGES_PER_HUGE) as u32;
        if pages < PAGES_PER_HUGE {
            // A filler span: grow within its huge page only.
            if off as usize + new_pages > PAGES_PER_HUGE || new_pages >= PAGES_PER_HUGE {
                return false;
            }
            let grow = run_mask(off + pages as u32, (new_pages - pages) as u32);
            let descs = self.tables.descs();
            if descs[hp0].used & grow != 0 {
                return false;
            }
            self.filler.remove(descs, hp0 as u32);
            descs[hp0].used |= grow;
            descs[hp0].dirty |= grow;
            self.filler.insert(descs, hp0 as u32);
        } else {
            let (full, tail) = (pages / PAGES_PER_HUGE, (pages % PAGES_PER_HUGE) as u32);
            let (nfull, ntail) = (new_pages / PAGES_PER_HUGE, (new_pages % PAGES_PER_HUGE) as u32);
            let end = hp0 + nfull + (ntail > 0) as usize;
            if end > self.arena.len.0 {
                return false;
            }
            // Every huge page to take must be free (or our own tail, holding nothing else).
            let first_new = hp0 + full + (tail > 0) as usize;
            let frontier = self.arena.frontier;
            let map = self.tables.map();
            if (first_new..end.min(frontier)).any(|i| !map.is_free(i)) {
                return false;
            }
            if tail > 0 {
                let d = &self.tables.descs()[hp0 + full];
                let others = d.used & !run_mask(0, tail);
                let keeps_tail_hp = nfull == full; // the new tail stays in the same huge page
                let needed = if keeps_tail_hp { run_mask(tail, ntail - tail) } else { u32::MAX };
                if others & needed != 0 || (!keeps_tail_hp && others != 0) {
                    return false;
                }
            }
            if end > frontier && !self.grow_to(end) {
                return false;
            }
            // Commit: the old tail huge page (if any), then the free ones.
            let descs = self.tables.descs();
            if tail > 0 {
                let hp = hp0 + full;
                self.filler.remove(descs, hp as u32);
                if nfull == full {
                    let m = run_mask(0, ntail);
                    descs[hp].used |= m;
                    descs[hp].dirty |= m;
                    self.filler.insert(descs, hp as u32);
                } else {
                    descs[hp].state = LARGE;
                    descs[hp].used = u32::MAX;
                    descs[hp].dirty = u32::MAX;
                }
            }
            if end > first_new {
                self.claim(first_new, end - first_new);
                let descs = self.tables.descs();
                for d in &mut descs[first_new..hp0 + nfull] {
                    d.dirty = u32::MAX;
                }
                if ntail > 0 && hp0 + nfull >= first_new {
                    let hp = hp0 + nfull;
                    let m = run_mask(0, ntail);
                    descs[hp].state = FILLER;
                    descs[hp].used = m;
                    descs[hp].dirty |= m;
                    self.filler.insert(descs, hp as u32);
                }
            }
        }
        // SAFETY: the same live span, under the same lock; its pages now cover new_pages pages.
        unsafe {
            (*span).pages = new_pages32;
            (*span).size = new_bytes;
        }
        true
    }

    /// Grows `span` (a large span that cannot grow in place) into a new span of `new_bytes`
    /// whose first huge pages receive the memory of its whole huge pages, moved: nothing is
    /// written again, and no fresh page is faulted in for them. Returns the new span and how
    /// many bytes from its start hold `span`'s contents; the caller copies the rest (the last,
    /// partial huge page, and whatever the OS refused to move), then frees `span` with
    /// [`free_moved_from`](PageHeap::free_moved_from). None, with nothing changed for the
    /// caller, where no page would move: a span of less than a huge page or not starting at
    /// one, pages not THP, after a fork (see [`relocate`](super::relocate)), past the bound on
    /// the mappings moves add, where a copy would fault in as few pages, out of memory.
    ///
    /// # Safety
    /// `span` must be a live large span of this heap, whose contents nobody reads or writes
    /// until the caller has copied them and freed it.
    pub unsafe fn grow_by_moving(&mut self, span: *mut Span, new_bytes: usize) -> Option<(*mut Span, usize)> {
        debug_assert!(!span.is_null());
        // SAFETY: `span` is a live large span of this heap (this function's contract), whose
        // header the page heap's lock, held through `&mut self`, keeps from changing.
        let (start, pages, whole) = unsafe { ((*span).start, (*span).pages as usize, (*span).whole) };
        let full = pages / PAGES_PER_HUGE;
        let new_pages = Page::covering(new_bytes).0;
        let new_pages32 = u32::try_from(new_pages).ok()?;
        if full == 0 || new_pages <= pages || (start - self.arena.base) % HUGE_SIZE != 0 {
            return None;
        }
        let j = self.hp_index(start);
        let (nfull, ntail) = (new_pages / PAGES_PER_HUGE, (new_pages % PAGES_PER_HUGE) as u32);
        let count = nfull + (ntail > 0) as usize;
        // Moved only where that faults in fewer pages than a copy would: a fresh page costs a
        // fault and a clear of 2 MiB (and on a VM whose host took the memory back, the host's
        // faults too), where copying one costs about half a clear; and a move spends some of
        // the bound on mappings that moves of held memory into fresh pages (each a fault
        // saved) would spend otherwise. With the rule at "no more" instead, the replays of
        // `large_replays_fault_in_little` faulted in 10,911 pages, not 10,057. The copy's new
        // span goes where `take_huge` puts it: the window with the fewest fresh pages, else
        // the lowest run, all fresh.
        let frontier = self.arena.frontier;
        let copy_cost = self.cheapest_held_window(HugePage(count), |x| x).map_or(count, |(_, f)| f);
        let i = match self.place_moved(count, full) {
            Some((i, cost)) if cost < copy_cost && cost <= count - full => i,
            // Past the frontier, every page is fresh: only the new ones are faulted in.
            _ if count - full < copy_cost => {
                if !self.grow_to(frontier.checked_add(count)?) {
                    return None;
                }
                frontier
            }
            _ => return None,
        };
        if !self.may_move_span(j, i, full) {
            return None;
        }
        // SAFETY: the span pool lives in mapped metadata; a zero Span is valid and every field
        // that matters is written below.
        let new = unsafe { self.spans.alloc(&mut self.span_space) };
        if new.is_null() {
            return None;
        }
        self.claim_filled(i, count, full);
        self.arena.note_use(i + count);
        let moved = self.move_span_pages(j, i, full);
        // What the move replaced went back to the OS (counted so: it is faulted in again
        // wherever it is wanted next); what it did not reach is copied into.
        let replaced = self.tables.descs()[i..i + moved].iter().filter(|d| d.dirty != 0).count();
        self.counters.released_total += replaced * HUGE_SIZE;
        self.mark_large(i, nfull, ntail);
        self.small.handed_out_since_release = true;
        let to = self.arena.addr(i);
        // SAFETY: `new` is a fresh, exclusively owned header; its pages were just claimed.
        unsafe { self.fill_span(new, to, new_pages32, new_bytes, false, whole) };
        Some((new, moved * HUGE_SIZE))
    }

    /// Where a span of `count` free huge pages whose first `full` receive moved memory goes:
    /// the window that costs the fewest faults, lowest first, and its cost. A page there that
    /// holds memory costs one (what the move replaces is lost, to be faulted in again
    /// elsewhere), and so does each of the rest that holds none (faulted in, unless held
    /// memory is moved there). Looks at about [`RESIDENT_LOOK`](super::RESIDENT_LOOK) pages.
    fn place_moved(&mut self, count: usize, full: usize) -> Option<(usize, usize)> {
        let frontier = self.arena.frontier;
        let (descs, map) = self.tables.both();
        let cost = |s: usize| {
            descs[s..s + full].iter().filter(|d| d.dirty != 0).count()
                + descs[s + full..s + count].iter().filter(|d| d.dirty == 0).count()
        };
        let (mut best, mut looked) = (None::<(usize, usize)>, 0);
        let mut i = map.next(0, frontier, true);
        while i < frontier && looked < super::RESIDENT_LOOK {
            let run_end = map.next(i, frontier, false);
            for s in i..(run_end + 1).saturating_sub(count) {
                let c = cost(s);
                if best.is_none_or(|(_, b)| c < b) {
                    best = Some((s, c));
                }
                looked += count;
            }
            i = map.next(run_end, frontier, true);
        }
        best
    }
}

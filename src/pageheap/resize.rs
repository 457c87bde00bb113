//! Growing a large span in place (realloc): into the free pages right after it, and past the
//! top of the committed arena by committing more. A span under one huge page grows only
//! within its huge page.

use super::PageHeap;
use super::backing::Backing;
use super::desc::{FILLER, LARGE};
use super::filler::run_mask;
use crate::span::Span;
use crate::units::{PAGE_SHIFT, PAGES_PER_HUGE, Page};

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
}

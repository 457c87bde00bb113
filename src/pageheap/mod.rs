//! The hugepage-aware page heap (after TCMalloc's Temeraire): hands out spans of 64 KiB pages
//! and takes them back, under one lock that only slow paths take.
//!
//! - [`arena`] reserves the address space and commits it in chunks with the best page kind;
//! - [`hugemap`] tracks wholly free 2 MiB huge pages and finds runs of them (large spans);
//! - [`filler`] packs spans smaller than a huge page into partly used huge pages, fullest first;
//! - this module ties them: per-huge-page descriptors, the page map that finds the span of any
//!   heap address without a lock, and the release of whole free huge pages to the OS.
//!
//! A large span of `n` pages takes `n / 32` whole huge pages plus, for the remainder, the
//! first pages of one more huge page, which joins the filler: its free tail serves small spans
//! instead of being wasted (Temeraire's donation).
//!
//! Invariants:
//! - every huge page below `arena.frontier` is in exactly one state: `FREE` (its bit in the
//!   huge map is set), `FILLER` (some pages used, listed in the filler unless full) or `LARGE`;
//! - `free_anon_backed` counts the `FREE` huge pages of anonymous (THP or 4 KiB) kind that are
//!   not released; once they have stayed free for `decay_ms`, the highest are released until
//!   it is down to `retain`;
//! - hugetlb huge pages are never released: a private hugetlb page given back could not be
//!   faulted in again once the pool runs dry, and that would be a SIGBUS, not a NULL;
//! - `page_map[p]` points to the span covering page `p` for every page of a slab, and for the
//!   first page of a large span; every other entry is null.

pub mod arena;
pub mod filler;
pub mod hugemap;

use crate::heap::{Heap, MAX_HEAPS, MAX_MSGS, RemoteMsg};
use crate::options::Config;
use crate::os::{self, OsInfo, PageKind};
use crate::span::{Pool, Span};
use crate::units::{HUGE_SHIFT, HUGE_SIZE, HugePage, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_HUGE, Page};
use arena::Arena;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use filler::{Filler, FillerSlot, run_mask};
use hugemap::HugeMap;

/// Descriptor states.
#[cfg(any(test, feature = "check"))]
const UNCOMMITTED: u8 = 0;
const FREE: u8 = 1;
const FILLER: u8 = 2;
const LARGE: u8 = 3;

/// What the page heap keeps per 2 MiB huge page of the arena (all zero: uncommitted).
#[repr(C)]
#[derive(Default)]
pub struct HpDesc {
    /// Bit `i`: page `i` is in use (filler); all ones for a large huge page.
    used: u32,
    /// Bit `i`: page `i` was handed out since it was last zero (committed or released).
    dirty: u32,
    next: u32,
    prev: u32,
    state: u8,
    kind: u8,
    list: u8,
    released: bool,
    /// When it last became wholly free (`os::now_ms`), for the decay.
    freed_at: u32,
}

impl FillerSlot for HpDesc {
    fn used(&self) -> u32 {
        self.used
    }
    fn set_used(&mut self, v: u32) {
        self.used = v;
    }
    fn links(&mut self) -> (&mut u32, &mut u32, &mut u8) {
        (&mut self.next, &mut self.prev, &mut self.list)
    }
}

/// Where `free()` finds spans without taking the lock: set once at start.
pub struct Lookup {
    base: AtomicUsize,
    len: AtomicUsize,
    map: AtomicPtr<*mut Span>,
}

/// The process's lookup table.
pub static LOOKUP: Lookup =
    Lookup { base: AtomicUsize::new(0), len: AtomicUsize::new(0), map: AtomicPtr::new(ptr::null_mut()) };

impl Lookup {
    /// The span holding `p`, or null if `p` is not in a live span's first page (slab or large)
    /// of the arena. Lock-free: entries are written before the span's memory is handed out,
    /// and the pointer reaches the caller only through that hand-out (which orders them).
    #[inline]
    pub fn span_of(&self, p: usize) -> *mut Span {
        let base = self.base.load(Ordering::Relaxed);
        let idx = p.wrapping_sub(base) >> PAGE_SHIFT;
        if idx >= self.len.load(Ordering::Relaxed) {
            return ptr::null_mut();
        }
        // SAFETY: idx is below the map's length, and the map lives for the process.
        unsafe { *self.map.load(Ordering::Relaxed).add(idx) }
    }
}

/// Page heap counters, read by `stats()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageCounters {
    /// Bytes handed back to the OS so far (cumulative).
    pub released_total: usize,
    /// Bytes currently released (committed but not backed).
    pub released_now: usize,
    /// Bytes in wholly free huge pages (backed or not).
    pub free_bytes: usize,
    /// Re-collapse sweeps completed (each visited every backed THP huge page with no fork
    /// during the sweep).
    pub recollapse_passes: usize,
    /// Huge pages the kernel could not collapse again when asked.
    pub recollapse_failures: usize,
}

/// Where each table of the metadata mapping starts, for an arena of `hps` huge pages.
struct MetaLayout {
    pages: usize,
    words: usize,
    page_map: usize,
    desc: usize,
    free_words: usize,
    spans: usize,
    heaps: usize,
    msgs: usize,
    end: usize,
}

impl MetaLayout {
    /// Maps the metadata for an arena of `hps` huge pages; `None` if the mapping fails.
    fn map(hps: usize) -> Option<MetaLayout> {
        let pages = hps * PAGES_PER_HUGE;
        let words = hps.div_ceil(64);
        let map_bytes = pages * size_of::<*mut Span>();
        let desc_bytes = (hps * size_of::<HpDesc>()).next_multiple_of(64);
        let word_bytes = (words * 8).next_multiple_of(64);
        let span_bytes = (pages * size_of::<Span>()).next_multiple_of(64);
        let heap_bytes = (MAX_HEAPS * size_of::<Heap>()).next_multiple_of(64);
        let msg_bytes = MAX_MSGS * size_of::<RemoteMsg>();
        let len = (map_bytes + desc_bytes + word_bytes + span_bytes + heap_bytes + msg_bytes).next_multiple_of(4096);
        let page_map = os::map_metadata(len)?;
        let desc = page_map + map_bytes;
        let free_words = desc + desc_bytes;
        let spans = free_words + word_bytes;
        let heaps = spans + span_bytes;
        let msgs = heaps + heap_bytes;
        Some(MetaLayout { pages, words, page_map, desc, free_words, spans, heaps, msgs, end: msgs + msg_bytes })
    }
}

/// The page heap.
pub struct PageHeap {
    /// The address space and its commitment.
    pub arena: Arena,
    desc: *mut HpDesc,
    free_words: *mut u64,
    words: usize,
    page_map: *mut *mut Span,
    filler: Filler,
    /// Span headers.
    pub spans: Pool<Span>,
    /// Thread heaps.
    pub heaps: Pool<Heap>,
    /// Batches of cross-thread frees (see `heap::RemoteMsg`).
    pub msgs: Pool<RemoteMsg>,
    retain: usize,
    decay_ms: u32,
    /// When the free huge pages were last scanned for release (`os::now_ms`).
    last_scan: u32,
    free_anon_backed: usize,
    /// Re-collapse sweep: the next huge page to look at.
    collapse_at: usize,
    /// Re-collapse sweep: `FORKS` when the last sweep ended.
    collapse_seen: u32,
    /// Re-collapse sweep: `FORKS` when the current pass began.
    collapse_pass: u32,
    /// Re-collapse sweep: when the last step ran (`os::now_ms`).
    last_collapse: u32,
    /// Counters.
    pub counters: PageCounters,
}

/// Forks the process has made (counted on the parent's side, by the fork handler).
pub static FORKS: AtomicU32 = AtomicU32::new(0);
/// When the last fork happened (`os::now_ms`).
pub static LAST_FORK_MS: AtomicU32 = AtomicU32::new(0);

/// Re-collapse: huge pages per step, and the least time between steps and after a fork.
const COLLAPSE_STEP: usize = 8;
const COLLAPSE_EVERY_MS: u32 = 100;
const COLLAPSE_QUIET_MS: u32 = 250;

// SAFETY: the raw pointers refer to process-wide metadata; the page heap is only ever used
// under its lock, by one thread at a time.
unsafe impl Send for PageHeap {}

impl PageHeap {
    /// Reserves the arena and maps the metadata. When the address space is limited
    /// (`ulimit -v`), both are tried at halving sizes until they fit; `None` when not even a
    /// small arena and its metadata fit.
    pub fn create(cfg: &Config, info: &OsInfo) -> Option<PageHeap> {
        let mut at_most = usize::MAX;
        let (arena, m) = loop {
            let arena = Arena::reserve(cfg, info, at_most)?;
            if let Some(m) = MetaLayout::map(arena.len.0) {
                break (arena, m);
            }
            let len = arena.len.0 * HUGE_SIZE;
            arena.unreserve();
            if len <= arena::MIN_ARENA {
                return None;
            }
            at_most = len / 2;
        };
        LOOKUP.base.store(arena.base, Ordering::Relaxed);
        LOOKUP.map.store(m.page_map as *mut *mut Span, Ordering::Relaxed);
        LOOKUP.len.store(m.pages, Ordering::Release);
        Some(PageHeap {
            arena,
            desc: m.desc as *mut HpDesc,
            free_words: m.free_words as *mut u64,
            words: m.words,
            page_map: m.page_map as *mut *mut Span,
            filler: Filler::new(),
            spans: Pool::new(m.spans, m.heaps),
            heaps: Pool::new(m.heaps, m.msgs),
            msgs: Pool::new(m.msgs, m.end),
            retain: cfg.retain / HUGE_SIZE,
            decay_ms: cfg.decay_ms,
            last_scan: os::now_ms(),
            free_anon_backed: 0,
            collapse_at: 0,
            collapse_seen: 0,
            collapse_pass: 0,
            last_collapse: 0,
            counters: PageCounters::default(),
        })
    }

    fn descs(&mut self) -> &'static mut [HpDesc] {
        // SAFETY: desc points to `arena.len` zero-initialised descriptors in metadata that lives
        // for the process; `&mut self` (held under the page heap lock) makes this the only
        // access, and the 'static slice is never kept past the call that takes it.
        unsafe { core::slice::from_raw_parts_mut(self.desc, self.arena.len.0) }
    }

    fn map(&mut self) -> HugeMap<'static> {
        // SAFETY: as for descs: free_words holds `words` words of metadata, used under the lock.
        HugeMap::new(unsafe { core::slice::from_raw_parts_mut(self.free_words, self.words) })
    }

    #[inline]
    fn hp_index(&self, addr: usize) -> usize {
        (addr - self.arena.base) >> HUGE_SHIFT
    }

    /// Sets the page map for `pages` pages from `start` (all of them, or only the first).
    ///
    /// # Safety
    /// `start` must be the first byte of a span of this heap covering `pages` pages.
    pub unsafe fn map_pages(&mut self, start: usize, pages: usize, span: *mut Span) {
        let first = (start - self.arena.base) >> PAGE_SHIFT;
        for i in first..first + pages {
            // SAFETY: i indexes the page map, which covers every page of the arena.
            unsafe { *self.page_map.add(i) = span };
        }
    }

    /// A new span of at least `bytes` (rounded up to 64 KiB pages) aligned to `align` (a power
    /// of two), with its header filled and the page map set for its first page. Null when the
    /// heap cannot grow (cap, arena or OS memory exhausted).
    pub fn alloc_span(&mut self, bytes: usize, align: usize) -> *mut Span {
        self.release_excess();
        self.recollapse();
        let pages = Page::covering(bytes).0.max(1);
        let Ok(pages32) = u32::try_from(pages) else {
            return ptr::null_mut();
        };
        let Some((start, zeroed)) = self.alloc_pages(pages, align) else {
            return ptr::null_mut();
        };
        // SAFETY: the span pool lives in mapped metadata; a zero Span is valid and every field
        // that matters is written below.
        let span = unsafe { self.spans.alloc() };
        if span.is_null() {
            self.free_pages(start, pages);
            return ptr::null_mut();
        }
        // SAFETY: span is a fresh, exclusively owned header.
        unsafe {
            (*span).start = start;
            (*span).pages = pages32;
            (*span).zeroed = zeroed;
            (*span).size = bytes;
            self.map_pages(start, 1, span);
        }
        span
    }

    /// Frees a span: clears its page map entries and gives back its pages.
    ///
    /// # Safety
    /// `span` must come from `alloc_span` of this heap, hold no live allocation, and not be
    /// used afterwards.
    pub unsafe fn free_span(&mut self, span: *mut Span) {
        // SAFETY: caller's contract: span is a live header of ours.
        let (start, pages, slab) = unsafe { ((*span).start, (*span).pages as usize, (*span).is_slab()) };
        // SAFETY: start/pages describe the span (set at alloc); it is being retired.
        unsafe {
            self.map_pages(start, if slab { pages } else { 1 }, ptr::null_mut());
            self.spans.free(span);
        }
        self.free_pages(start, pages);
    }

    /// Pages for a span: from the filler for spans under one huge page, else whole huge pages
    /// (plus a filler tail). Returns the start and whether the memory is known to be zero.
    fn alloc_pages(&mut self, pages: usize, align: usize) -> Option<(usize, bool)> {
        let base = self.arena.base;
        if pages < PAGES_PER_HUGE && align <= HUGE_SIZE {
            let n = pages as u32;
            let a = (align >> PAGE_SHIFT).max(1) as u32;
            let descs = self.descs();
            let (hp, first) = match self.filler.alloc(descs, n, a) {
                Some(found) => found,
                None => {
                    let hp = self.take_huge(HugePage(1), HUGE_SIZE)?;
                    let d = &mut self.descs()[hp];
                    d.state = FILLER;
                    d.used = run_mask(0, n);
                    let descs = self.descs();
                    self.filler.insert(descs, hp as u32);
                    (hp as u32, 0)
                }
            };
            let mask = run_mask(first, n);
            let d = &mut self.descs()[hp as usize];
            let zeroed = d.dirty & mask == 0;
            d.dirty |= mask;
            return Some((base + (hp as usize) * HUGE_SIZE + (first as usize) * PAGE_SIZE, zeroed));
        }
        let full = pages / PAGES_PER_HUGE;
        let tail = (pages % PAGES_PER_HUGE) as u32;
        let count = full + (tail > 0) as usize;
        let s = self.take_huge(HugePage(count), align.max(HUGE_SIZE))?;
        let mut zeroed = true;
        let descs = self.descs();
        for d in &mut descs[s..s + full] {
            d.state = LARGE;
            d.used = u32::MAX;
            zeroed &= d.dirty == 0;
            d.dirty = u32::MAX;
        }
        if tail > 0 {
            let d = &mut descs[s + full];
            let mask = run_mask(0, tail);
            d.state = FILLER;
            d.used = mask;
            zeroed &= d.dirty & mask == 0;
            d.dirty |= mask;
            self.filler.insert(descs, (s + full) as u32);
        }
        Some((base + s * HUGE_SIZE, zeroed))
    }

    fn free_pages(&mut self, start: usize, pages: usize) {
        let first = self.hp_index(start);
        let offset = ((start >> PAGE_SHIFT) % PAGES_PER_HUGE) as u32;
        let full = pages / PAGES_PER_HUGE;
        let tail = (pages % PAGES_PER_HUGE) as u32;
        if full > 0 {
            self.make_free(first, full);
        }
        if tail > 0 {
            let hp = first + full;
            let descs = self.descs();
            if self.filler.free(descs, hp as u32, offset, tail) {
                self.make_free(hp, 1);
            }
        }
        self.release_excess();
    }

    /// Takes `n` wholly free huge pages aligned to `align` bytes, growing the arena if needed.
    /// Returns the first index; the pages are marked LARGE for the caller to adjust.
    fn take_huge(&mut self, n: HugePage, align: usize) -> Option<usize> {
        let base = self.arena.base;
        if align > self.arena.len.bytes() {
            return None;
        }
        let aligned = move |i: usize| (((base + i * HUGE_SIZE + align - 1) & !(align - 1)) - base) / HUGE_SIZE;
        loop {
            match self.map().find(n, self.arena.frontier, aligned) {
                Ok(HugePage(s)) => {
                    self.claim(s, n.0);
                    return Some(s);
                }
                Err(tail) => {
                    if !self.grow_to(aligned(tail).checked_add(n.0)?) {
                        return None;
                    }
                }
            }
        }
    }

    /// Takes the wholly free huge pages `[s, s + n)` out of the huge map, as LARGE.
    fn claim(&mut self, s: usize, n: usize) {
        self.map().set_range(HugePage(s), HugePage(n), false);
        for i in s..s + n {
            let d = &mut self.descs()[i];
            debug_assert_eq!(d.state, FREE);
            if d.released {
                d.released = false;
                self.counters.released_now -= HUGE_SIZE;
            } else if !PageKind::ALL[d.kind as usize].is_hugetlb() {
                self.free_anon_backed -= 1;
            }
            self.counters.free_bytes -= HUGE_SIZE;
            d.state = LARGE;
            d.used = u32::MAX;
        }
    }

    /// Commits the arena up to at least huge page `min_end`; the new huge pages are FREE.
    fn grow_to(&mut self, min_end: usize) -> bool {
        let frontier = self.arena.frontier;
        let descs = self.descs();
        let mut added = 0;
        let mut anon = 0;
        let now = os::now_ms();
        let grew = self.arena.grow(min_end, |s, count, kind| {
            for d in &mut descs[s..s + count] {
                d.state = FREE;
                d.kind = kind as u8;
                d.freed_at = now;
            }
            added += count;
            if !kind.is_hugetlb() {
                anon += count;
            }
        });
        self.map().set_range(HugePage(frontier), HugePage(added), true);
        self.counters.free_bytes += added * HUGE_SIZE;
        self.free_anon_backed += anon;
        grew
    }

    /// Grows `span` (a large span) in place to `new_bytes`, taking free pages right after it
    /// (and committing more arena when it ends at the top). False, changing nothing, when
    /// its neighbours are in use.
    ///
    /// # Safety
    /// `span` must be a live large span of this heap.
    pub unsafe fn grow_in_place(&mut self, span: *mut Span, new_bytes: usize) -> bool {
        // SAFETY: caller's contract.
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
            let descs = self.descs();
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
            let map = self.map();
            if (first_new..end.min(frontier)).any(|i| !map.is_free(i)) {
                return false;
            }
            if tail > 0 {
                let d = &self.descs()[hp0 + full];
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
            let descs = self.descs();
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
                let descs = self.descs();
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
        // SAFETY: caller's contract; the span now covers new_pages pages.
        unsafe {
            (*span).pages = new_pages32;
            (*span).size = new_bytes;
        }
        true
    }

    fn make_free(&mut self, s: usize, n: usize) {
        let now = os::now_ms();
        for d in &mut self.descs()[s..s + n] {
            d.state = FREE;
            d.used = 0;
            d.freed_at = now;
            if !PageKind::ALL[d.kind as usize].is_hugetlb() {
                self.free_anon_backed += 1;
            }
        }
        self.counters.free_bytes += n * HUGE_SIZE;
        self.map().set_range(HugePage(s), HugePage(n), true);
    }

    /// Gives whole free anonymous huge pages back to the OS, highest first, until at most
    /// `retain` bytes of them stay backed; only pages that have been free for `decay_ms`.
    /// With a decay, the scan runs at most four times per decay period (it is called after
    /// every free and before every allocation of a span).
    fn release_excess(&mut self) {
        if self.free_anon_backed <= self.retain {
            return;
        }
        let now = os::now_ms();
        if self.decay_ms > 0 && now.wrapping_sub(self.last_scan) < (self.decay_ms / 4).max(1) {
            return;
        }
        self.last_scan = now;
        let decay = self.decay_ms;
        let mut below = self.arena.frontier;
        while self.free_anon_backed > self.retain {
            let Some(top) = self.map().prev_free(below) else { return };
            let descs = self.descs();
            let releasable = |d: &HpDesc| {
                !d.released && !PageKind::ALL[d.kind as usize].is_hugetlb() && now.wrapping_sub(d.freed_at) >= decay
            };
            if !releasable(&descs[top]) {
                below = top;
                continue;
            }
            let mut lo = top;
            let excess = self.free_anon_backed - self.retain;
            while lo > 0 && top + 1 - lo < excess && self.map().is_free(lo - 1) && releasable(&descs[lo - 1]) {
                lo -= 1;
            }
            let count = top + 1 - lo;
            // SAFETY: [lo, top] are free anonymous huge pages of the committed arena: nothing
            // lives there.
            if !unsafe { os::release(self.arena.addr(lo), count * HUGE_SIZE) } {
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

    /// Copy-on-write after a fork splits every THP the parent writes while the child lives into
    /// 4 KiB pages, and the kernel's khugepaged puts them back together only slowly. Once
    /// forks have been quiet for `COLLAPSE_QUIET_MS`, this sweeps the backed THP huge pages,
    /// `COLLAPSE_STEP` at a time at most every `COLLAPSE_EVERY_MS` (a step copies at most 16
    /// MiB), asking the kernel to collapse each one again. Pages that are still whole cost a
    /// page-table walk. A fork during a sweep starts it over: the pages it had passed may have
    /// been split again.
    fn recollapse(&mut self) {
        let forks = FORKS.load(Ordering::Relaxed);
        if forks == self.collapse_seen {
            return;
        }
        let now = os::now_ms();
        if now.wrapping_sub(LAST_FORK_MS.load(Ordering::Relaxed)) < COLLAPSE_QUIET_MS
            || now.wrapping_sub(self.last_collapse) < COLLAPSE_EVERY_MS
        {
            return;
        }
        self.last_collapse = now;
        if forks != self.collapse_pass {
            // A fork since this pass began may have split pages it already visited.
            self.collapse_pass = forks;
            self.collapse_at = 0;
        }
        let mut budget = COLLAPSE_STEP;
        while self.collapse_at < self.arena.frontier && budget > 0 {
            let hp = self.collapse_at;
            self.collapse_at += 1;
            let d = &self.descs()[hp];
            // Backed: in use, or free and not given back (it will be reused as it is).
            if matches!(d.state, FREE | FILLER | LARGE) && !d.released && d.kind == PageKind::Thp as u8 {
                budget -= 1;
                if !os::collapse(self.arena.addr(hp), HUGE_SIZE) {
                    self.counters.recollapse_failures += 1;
                }
            }
        }
        if self.collapse_at >= self.arena.frontier {
            self.collapse_at = 0;
            self.collapse_seen = forks;
            self.counters.recollapse_passes += 1;
        }
    }

    /// Whether a fork since the last completed sweep may have split THP huge pages that no
    /// sweep has visited since.
    pub fn recollapse_pending(&self) -> bool {
        FORKS.load(Ordering::Relaxed) != self.collapse_seen
    }

    /// Bytes in use by the program: for each live span, its live blocks (slab) or its
    /// requested size (large). Walks the page map of the committed arena.
    pub fn bytes_in_use(&self) -> usize {
        let pages = self.arena.frontier * PAGES_PER_HUGE;
        let mut total = 0;
        for i in 0..pages {
            // SAFETY: i is below the page map's length (the committed part of it).
            let span = unsafe { *self.page_map.add(i) };
            if span.is_null() {
                continue;
            }
            // SAFETY: a non-null entry points to a live span header (the lock is held, so no
            // span is freed meanwhile); only its first page counts it.
            let s = unsafe { &*span };
            if s.start == self.arena.base + (i << PAGE_SHIFT) {
                total += if s.is_slab() { s.used() as usize * s.block_size as usize } else { s.size };
            }
        }
        total
    }

    /// Bytes of metadata touched so far (approximate upper bound).
    pub fn metadata_bytes(&self) -> usize {
        self.arena.frontier * (PAGES_PER_HUGE * 8 + size_of::<HpDesc>())
            + self.spans.touched()
            + self.heaps.touched()
            + self.msgs.touched()
    }

    /// Checks the invariants in the module doc; panics on a breach.
    #[cfg(any(test, feature = "check"))]
    pub fn check_invariants(&mut self) {
        let frontier = self.arena.frontier;
        let descs = self.descs();
        let map = self.map();
        let mut free_anon = 0;
        let mut free_bytes = 0;
        for (i, d) in descs.iter().enumerate().take(frontier) {
            assert!(d.state != UNCOMMITTED, "huge page {i} below the frontier is uncommitted");
            assert_eq!(map.is_free(i), d.state == FREE, "free bit of huge page {i}");
            if d.state == FREE {
                free_bytes += HUGE_SIZE;
                if !d.released && !PageKind::ALL[d.kind as usize].is_hugetlb() {
                    free_anon += 1;
                }
            }
            if d.state == LARGE {
                assert_eq!(d.used, u32::MAX);
            }
        }
        assert_eq!(free_anon, self.free_anon_backed);
        assert_eq!(free_bytes, self.counters.free_bytes);
        let descs = self.descs();
        self.filler.check(descs, |i| i < frontier && descs_state(self.desc, i) == FILLER);
    }
}

#[cfg(any(test, feature = "check"))]
fn descs_state(desc: *mut HpDesc, i: usize) -> u8 {
    // SAFETY: i is below the frontier, inside the descriptor array.
    unsafe { (*desc.add(i)).state }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::PageChain;

    fn heap(retain: usize) -> PageHeap {
        let cfg = Config {
            pages: PageChain::of(&[PageKind::Small]),
            max_heap: 4 << 30,
            retain,
            decay_ms: 0,
            cow_reserve: 0,
            verbose: false,
        };
        PageHeap::create(&cfg, &OsInfo::probe()).expect("page heap")
    }

    #[test]
    fn spans_never_overlap_and_zero_flags_are_true() {
        let mut ph = heap(4 << 20);
        let mut live: std::vec::Vec<(*mut Span, usize)> = std::vec::Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 != 0 || live.is_empty() {
                let bytes = match x % 10 {
                    0 => (x >> 8) as usize % (9 << 20),
                    1 => (x >> 8) as usize % (3 << 20),
                    _ => (x >> 8) as usize % (600 << 10),
                } + 1;
                let align = 1usize << ((x >> 40) % 23).max(16);
                let span = ph.alloc_span(bytes, align);
                assert!(!span.is_null(), "step {step}");
                // SAFETY: span is live; its memory is ours to read and write.
                let (start, len, zeroed) = unsafe { ((*span).start, (*span).bytes(), (*span).zeroed) };
                assert_eq!(start % align, 0);
                assert!(len >= bytes);
                if zeroed {
                    // SAFETY: inside the span.
                    assert!((0..len).step_by(4093).all(|i| unsafe { *((start + i) as *const u8) } == 0), "step {step}");
                }
                // SAFETY: inside the span.
                unsafe { core::ptr::write_bytes(start as *mut u8, 0xA5, len) };
                for &(o, olen) in &live {
                    // SAFETY: o is live.
                    let os = unsafe { (*o).start };
                    assert!(os + olen <= start || start + len <= os, "overlap at step {step}");
                }
                live.push((span, len));
            } else {
                let (span, _) = live.swap_remove((x >> 20) as usize % live.len());
                // SAFETY: span is live and no longer used.
                unsafe { ph.free_span(span) };
            }
            ph.check_invariants();
        }
        for (span, _) in live {
            // SAFETY: live spans, freed once.
            unsafe { ph.free_span(span) };
        }
        ph.check_invariants();
        assert!(ph.counters.released_total > 0, "free huge pages beyond retain went back");
        assert!(ph.free_anon_backed * HUGE_SIZE <= 4 << 20);
        assert_eq!(ph.bytes_in_use(), 0);
    }

    #[test]
    fn spans_grow_in_place_into_free_neighbours() {
        let mut ph = heap(64 << 20);
        // A filler span grows inside its huge page.
        let a = ph.alloc_span(3 * PAGE_SIZE, PAGE_SIZE);
        // SAFETY: a is live (here and below, every span is live until freed once).
        unsafe {
            assert!(ph.grow_in_place(a, 10 * PAGE_SIZE));
            assert_eq!((*a).pages, 10);
            assert!(!ph.grow_in_place(a, 40 * PAGE_SIZE), "a filler span does not leave its huge page");
        }
        ph.check_invariants();
        // A large span with a filler tail grows over its tail and into free huge pages, up
        // through the top of the arena.
        let b = ph.alloc_span(5 * HUGE_SIZE + 3 * PAGE_SIZE, HUGE_SIZE);
        // SAFETY: b is live; writes stay inside the bytes it has grown to.
        unsafe {
            let start = (*b).start;
            for mib in [11, 12, 40, 300, 301] {
                assert!(ph.grow_in_place(b, mib << 20), "{mib} MiB");
                assert_eq!((*b).start, start);
                ph.check_invariants();
                core::ptr::write_bytes(start as *mut u8, 1, mib << 20);
            }
        }
        // A neighbour in the way stops it.
        let c = ph.alloc_span(HUGE_SIZE, HUGE_SIZE);
        // SAFETY: a, b, c are live and freed once each.
        unsafe {
            let end_b = (*b).start + (*b).bytes();
            if (*c).start == end_b.next_multiple_of(HUGE_SIZE) {
                assert!(!ph.grow_in_place(b, (*b).bytes() + 3 * HUGE_SIZE));
            }
            ph.free_span(a);
            ph.free_span(b);
            ph.free_span(c);
        }
        ph.check_invariants();
        assert_eq!(ph.bytes_in_use(), 0);
    }

    #[test]
    fn cap_is_respected() {
        let mut ph = heap(0);
        let a = ph.alloc_span(3 << 30, HUGE_SIZE);
        assert!(!a.is_null());
        assert!(ph.alloc_span(2 << 30, HUGE_SIZE).is_null(), "past the 4 GiB cap");
        // SAFETY: a is live.
        unsafe { ph.free_span(a) };
        assert!(!ph.alloc_span(3 << 30, HUGE_SIZE).is_null(), "room again after the free");
    }
}

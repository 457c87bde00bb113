//! The hugepage-aware page heap (after TCMalloc's Temeraire): hands out spans of 64 KiB pages
//! and takes them back, under one lock that only slow paths take. It knows nothing of the
//! thread heaps above it: it hands out spans and generic metadata space, and its OS calls go
//! through one narrow interface ([`backing::Backing`]) so that release, decay and re-collapse
//! are tested with a fake.
//!
//! - [`arena`] reserves the address space and grows the committed part in chunks;
//! - [`ladder`] chooses the page kind of each piece of a chunk, and says what it did;
//! - [`hugemap`] tracks wholly free 2 MiB huge pages and finds runs of them (large spans);
//! - [`filler`] packs spans smaller than a huge page into partly used huge pages, fullest first;
//! - [`desc`] is what is kept per huge page, and [`tables`] owns the descriptors and the huge
//!   map's words, lending them out; [`pagemap`] finds the span of any heap address
//!   without a lock; [`meta`] lays out the metadata and hands out space for the layers above;
//! - [`release`] gives whole free huge pages back after a decay, and a small heap's free runs
//!   of 128 KiB or more at free (rationed); [`recollapse`] keeps the
//!   sweeps that collapse THP split by copy-on-write, which [`collapser`]'s thread carries out,
//!   and [`prefault`] chooses the free pages it populates ahead of a growing heap
//!   (woken through [`doorbell`], so this module does not depend on the thread that depends on
//!   it); [`resize`] grows large spans in place;
//! - [`process_heap`] is the process's page heap behind its lock, and [`fork_pages`] the
//!   words the fork handlers write on a page that fork does not copy;
//! - this module ties them: spans in, spans out.
//!
//! A large span of `n` pages takes `n / 32` whole huge pages plus, for the remainder, the
//! first pages of one more huge page, which joins the filler: its free tail serves small spans
//! instead of being wasted (Temeraire's donation). That huge page may be one the filler holds
//! already, its first pages free, after free huge pages that hold memory
//! (`take_before_filler`).
//!
//! Invariants (checked by `check_invariants`):
//! - every huge page below `arena.frontier` is in exactly one state: `FREE` (its bit in the
//!   huge map is set), `FILLER` (some pages used, listed in the filler unless full) or `LARGE`;
//! - the residency counts ([`residency::Residency`]): `free_anon_backed` counts the `FREE` huge
//!   pages of anonymous (THP or 4 KiB) kind that are not released; once they have stayed free
//!   for `decay_ms`, the highest are released until it is down to `retain`;
//! - `resident` counts the anonymous huge pages holding memory (a page handed out since it
//!   was committed or last released, or populated ahead: `dirty != 0`; a `zero` page, populated
//!   ahead and free, is all ones there and reads as zero), `free_resident` those of them that are
//!   `FREE`; past the most ever in use, a sixteenth and `retain`, a fresh page is faulted in
//!   only when no free page holding memory is left to give back in exchange (see [`release`]);
//! - hugetlb huge pages are never released;
//! - the page map points to the span covering a page for every page of a span allocated
//!   `whole`, and for the first page of the others; every other entry is null.

pub mod arena;
pub mod backing;
pub mod children;
pub mod collapser;
pub mod desc;
pub mod doorbell;
pub mod family;
pub mod filler;
pub mod fork_pages;
pub mod hugemap;
pub mod keepup;
pub mod ladder;
pub mod meta;
pub mod pagemap;
pub mod prefault;
pub mod process_heap;
pub mod recollapse;
pub mod release;
pub mod relocate;
pub mod residency;
pub mod resize;
pub mod small_to_pool;
pub mod tables;

use crate::options::Config;
use crate::os::OsInfo;
use crate::pagekind::PageKind;
use crate::span::Span;
use crate::units::{HUGE_SHIFT, HUGE_SIZE, HugePage, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_HUGE, Page};
use arena::Arena;
use backing::{Backing, OsBacking};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;
use desc::{FILLER, FREE, HpDesc, LARGE};
use family::Family;
use filler::{Filler, run_mask};
use meta::{Meta, Pool, Space};
use pagemap::PageMap;
use recollapse::{Outcome, Recollapse};
use tables::Tables;

use fork_pages::bell;
pub use pagemap::LOOKUP;
use residency::{Ahead, Moves, Residency, SMALL_RELEASE_FROM, SmallRelease};
pub use residency::{release_from, small_phase};

/// How many free huge pages a search for the run with the fewest fresh pages looks at, about,
/// before it settles for the best seen: its cost stays below that of the faults it saves.
const RESIDENT_LOOK: usize = 4096;

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
    /// What became of the huge pages the sweeps looked at, indexed by `Outcome as usize`.
    pub recollapse: [usize; Outcome::COUNT],
    /// Bytes this process (a forked child) moved out of the hugetlb pools (see `children`).
    pub moved_out: usize,
    /// Bytes of free held memory moved into fresh huge pages so far ([`relocate`]).
    pub moved_total: usize,
    /// Bytes populated ahead of use so far ([`prefault`]): free huge pages, and the memory
    /// outside the page heap the helper was asked to populate.
    pub prefaulted_total: usize,
}

/// The page heap, over the backing `B` (the OS, or a fake in tests).
pub struct PageHeap<B: Backing = OsBacking> {
    /// What it asks of the OS.
    backing: B,
    /// The address space and its commitment.
    pub arena: Arena,
    meta: Meta,
    tables: Tables,
    page_map: PageMap,
    filler: Filler,
    spans: Pool<Span>,
    span_space: Space,
    /// What it holds of the OS's memory, and when it gives some back (see [`release`]).
    res: Residency,
    /// Held memory moved where it is wanted (see [`relocate`]).
    moves: Moves,
    /// Free huge pages populated ahead of use (see [`prefault`]).
    ahead: Ahead,
    recollapse: Recollapse,
    /// The value of the parent's fork count ([`fork_pages::fork_count`]) last counted in.
    forks_counted: u32,
    /// The table of copy-on-write promises shared with forked children (hugetlb only).
    family: Family,
    /// This is the process's page heap ([`publish`](PageHeap::publish)): it keeps
    /// [`small_phase`] up to date.
    published: bool,
    /// The small phase's rationed releases at free (see [`release`]).
    small: SmallRelease,
    /// Counters.
    pub counters: PageCounters,
}

// SAFETY: the raw pointers refer to process-wide metadata; the page heap is only ever used
// under its lock, by one thread at a time.
unsafe impl<B: Backing + Send> Send for PageHeap<B> {}

impl<B: Backing> PageHeap<B> {
    /// Reserves the arena and maps the metadata, with `client_meta` bytes of generic metadata
    /// space for the layers above ([`PageHeap::take_meta`]). When the address space is limited
    /// (`ulimit -v`), both are tried at halving sizes until they fit; `None` when not even a
    /// small arena and its metadata fit.
    pub fn create(mut backing: B, cfg: &Config, info: &OsInfo, client_meta: usize) -> Option<PageHeap<B>> {
        let mut at_most = usize::MAX;
        let (arena, m) = loop {
            let arena = Arena::reserve(&mut backing, cfg, info, at_most)?;
            if let Some(m) = Meta::map(&mut backing, arena.len.0, client_meta) {
                break (arena, m);
            }
            let len = arena.len.bytes();
            arena.unreserve(&mut backing);
            if len <= arena::MIN_ARENA {
                return None;
            }
            at_most = len / 2;
        };
        let now = backing.now_ms();
        let (descs, words) = (NonNull::new(m.desc as *mut HpDesc)?, NonNull::new(m.free_words as *mut u64)?);
        // SAFETY: `Meta::map` laid the two tables out for `arena.len` huge pages, disjoint and
        // 64-byte aligned, in a fresh zeroed mapping that is never unmapped; only this value
        // reaches them.
        let tables = unsafe { Tables::new(descs, arena.len.0, words, m.words) };
        Some(PageHeap {
            page_map: PageMap::new(arena.base, m.page_map as *mut *mut Span, m.pages),
            tables,
            spans: Pool::new(),
            span_space: m.span_space(),
            meta: m,
            backing,
            arena,
            filler: Filler::new(),
            res: Residency::new(cfg.retain / HUGE_SIZE, cfg.decay_ms, now),
            moves: Moves::default(),
            ahead: Ahead::default(),
            recollapse: Recollapse::default(),
            forks_counted: 0,
            family: Family::none(),
            published: false,
            small: SmallRelease::new(now),
            counters: PageCounters::default(),
        })
    }

    /// Makes this page heap's page map the one `free` reads. Once, for the process's heap.
    pub fn publish(&mut self) {
        self.page_map.publish();
        self.published = true;
        self.mirror_release_from();
    }

    /// `bytes` of zeroed metadata space aligned to `align` (a power of two), for the layers
    /// above; `None` when the space asked for at [`create`](PageHeap::create) is used up.
    /// Never given back.
    pub fn take_meta(&mut self, bytes: usize, align: usize) -> Option<usize> {
        self.meta.take(bytes, align)
    }

    #[inline]
    fn hp_index(&self, addr: usize) -> usize {
        debug_assert!(addr >= self.arena.base);
        (addr - self.arena.base) >> HUGE_SHIFT
    }

    /// A new span of at least `bytes` (rounded up to 64 KiB pages) aligned to `align` (a power
    /// of two), with its header's page-heap fields filled and the page map set for every page
    /// (`whole`: any address in it may be looked up) or for its first page only. Null when the
    /// heap cannot grow (cap, arena or OS memory exhausted).
    pub fn alloc_span(&mut self, bytes: usize, align: usize, whole: bool) -> *mut Span {
        debug_assert!(align.is_power_of_two());
        self.release_excess();
        let pages = Page::covering(bytes).0.max(1);
        let Ok(pages32) = u32::try_from(pages) else {
            return ptr::null_mut();
        };
        let Some((start, zeroed)) = self.alloc_pages(pages, align) else {
            return ptr::null_mut();
        };
        self.small.handed_out_since_release = true;
        // SAFETY: the span pool lives in mapped metadata; a zero Span is valid and every field
        // that matters is written below.
        let span = unsafe { self.spans.alloc(&mut self.span_space) };
        if span.is_null() {
            self.free_pages(start, pages, false);
            return ptr::null_mut();
        }
        // SAFETY: span is a fresh, exclusively owned header; its pages lie in the arena.
        unsafe { self.fill_span(span, start, pages32, bytes, zeroed, whole) };
        span
    }

    /// Fills a new span header's page-heap fields (no owner yet) and sets the page map for
    /// every page of it (`whole`) or its first.
    ///
    /// # Safety
    /// `span` must be a fresh header from the span pool, owned by the caller alone, and
    /// `[start, start + pages)` pages of the arena handed out for it.
    pub(super) unsafe fn fill_span(
        &mut self,
        span: *mut Span,
        start: usize,
        pages: u32,
        bytes: usize,
        zeroed: bool,
        whole: bool,
    ) {
        debug_assert!(!span.is_null());
        // SAFETY: span is a fresh header the caller owns alone (this function's contract).
        unsafe {
            (*span).start = start;
            (*span).pages = pages;
            (*span).zeroed = zeroed;
            (*span).whole = whole;
            (*span).size = bytes;
            (*span).owner = crate::span::NO_OWNER;
            self.page_map.set(start, if whole { pages as usize } else { 1 }, span);
        }
    }

    /// Frees a span: clears its page map entries and gives back its pages.
    ///
    /// # Safety
    /// `span` must come from `alloc_span` of this heap, hold no live allocation, and not be
    /// used afterwards.
    pub unsafe fn free_span(&mut self, span: *mut Span) {
        // SAFETY: free_span's contract, none of it moved.
        unsafe { self.free_moved_from(span, 0) }
    }

    /// Frees `span`, the first `moved` bytes of whose memory
    /// [`grow_by_moving`](PageHeap::grow_by_moving) moved away (0: none, as
    /// [`free_span`](PageHeap::free_span)): those huge pages hold nothing and count as given
    /// back; the rest goes back to the huge map and the filler.
    ///
    /// # Safety
    /// As for [`free_span`](PageHeap::free_span); `moved` is 0 or what `grow_by_moving`
    /// returned with the span that replaced `span`.
    pub unsafe fn free_moved_from(&mut self, span: *mut Span, moved: usize) {
        debug_assert!(!span.is_null() && moved % HUGE_SIZE == 0);
        // SAFETY: `span` came from this heap's `alloc_span` and is live (this function's
        // contract); its header is read under the lock `&mut self` stands for.
        let (start, pages, whole) = unsafe { ((*span).start, (*span).pages as usize, (*span).whole) };
        let k = moved / HUGE_SIZE;
        debug_assert!(k * PAGES_PER_HUGE <= pages);
        // SAFETY: start/pages describe the span (set at alloc); it is being retired.
        unsafe {
            self.page_map.set(start, if whole { pages } else { 1 }, ptr::null_mut());
            self.spans.free(span);
        }
        if k > 0 {
            let j = self.hp_index(start);
            self.make_free(j, k);
            self.mark_released(j, k);
            self.renew_moved(j, k);
        }
        let rest = pages - k * PAGES_PER_HUGE;
        if rest == 0 {
            self.release_excess();
            return;
        }
        // A slab's pages go back with their free neighbours only from 128 KiB on, as other
        // spans' do from any size: a thread heap retiring a small slab and taking a new one,
        // as it does all the time under churn, would pay a release and page faults each time
        // (docs/benchmarks.md, "Figures behind the code").
        let releases = !whole || pages * PAGE_SIZE >= SMALL_RELEASE_FROM;
        self.free_pages(start + moved, rest, releases);
    }

    /// Pages for a span: from the filler for spans under one huge page, else whole huge pages
    /// (plus a filler tail). Returns the start and whether the memory is known to be zero.
    fn alloc_pages(&mut self, pages: usize, align: usize) -> Option<(usize, bool)> {
        let base = self.arena.base;
        if pages < PAGES_PER_HUGE && align <= HUGE_SIZE {
            let n = pages as u32;
            let a = (align >> PAGE_SHIFT).max(1) as u32;
            let descs = self.tables.descs();
            let (hp, first) = match self.filler.alloc(descs, n, a) {
                Some(found) => found,
                None => {
                    let hp = self.take_huge(HugePage(1), HUGE_SIZE)?;
                    let d = &mut self.tables.descs()[hp];
                    d.state = FILLER;
                    d.used = run_mask(0, n);
                    let descs = self.tables.descs();
                    self.filler.insert(descs, hp as u32);
                    (hp as u32, 0)
                }
            };
            let mask = run_mask(first, n);
            let d = &mut self.tables.descs()[hp as usize];
            let zeroed = d.dirty & mask == 0;
            d.dirty |= mask;
            return Some((base + (hp as usize) * HUGE_SIZE + (first as usize) * PAGE_SIZE, zeroed));
        }
        let full = pages / PAGES_PER_HUGE;
        let tail = (pages % PAGES_PER_HUGE) as u32;
        if tail > 0 && align <= HUGE_SIZE {
            if let Some(found) = self.take_before_filler(full, tail) {
                return Some(found);
            }
        }
        let count = full + (tail > 0) as usize;
        let s = self.take_huge(HugePage(count), align.max(HUGE_SIZE))?;
        Some((base + s * HUGE_SIZE, self.mark_large(s, full, tail)))
    }

    /// Marks the huge pages of a large span starting at huge page `s`: `full` whole ones
    /// `LARGE`, and the first `tail` pages of the next one used in the filler (a huge page
    /// just taken, or one the filler holds, whose first pages are free). Every page marked
    /// dirty; returns whether the span's memory was known to be zero.
    fn mark_large(&mut self, s: usize, full: usize, tail: u32) -> bool {
        let mut zeroed = true;
        let descs = self.tables.descs();
        for d in &mut descs[s..s + full] {
            d.state = LARGE;
            d.used = u32::MAX;
            zeroed &= d.dirty == 0;
            d.dirty = u32::MAX;
        }
        if tail > 0 {
            let hp = s + full;
            let mask = run_mask(0, tail);
            if descs[hp].state == FILLER {
                self.filler.remove(descs, hp as u32);
                debug_assert!(descs[hp].used & mask == 0);
            } else {
                descs[hp].state = FILLER;
                descs[hp].used = 0;
            }
            let d = &mut descs[hp];
            d.used |= mask;
            zeroed &= d.dirty & mask == 0;
            d.dirty |= mask;
            self.filler.insert(descs, hp as u32);
        }
        zeroed
    }

    /// A large span of `full` whole huge pages and `tail` pages more (`tail` in 1..=31), placed
    /// so that its tail goes into the free first pages of a huge page already in the filler and
    /// its whole pages into the free huge pages right before it, none of them fresh. Placed as
    /// `take_huge` places it, its tail takes a free huge page of its own into the filler, where
    /// it stays partly used for as long as anything else lives in it: at the peak of
    /// `bench cpath`'s `large`, 25 huge pages of the filler held 12.5 huge pages' worth of
    /// spans. None when no such place is found among the huge pages the filler looks at
    /// ([`filler::PREFIX_LOOK`]).
    fn take_before_filler(&mut self, full: usize, tail: u32) -> Option<(usize, bool)> {
        debug_assert!(full > 0 && (1..PAGES_PER_HUGE as u32).contains(&tail));
        let mut found = [0u32; 32];
        let n = self.filler.free_prefixes(self.tables.descs(), tail, &mut found);
        // Only where none is fresh: taking fresh huge pages here rather than the cheapest
        // window of `take_huge` faulted in more (the replays of `large_replays_fault_in_little`:
        // 15,106 fresh pages with one allowed, 16,500 with any, 13,971 with none).
        let s = {
            let (descs, map) = self.tables.both();
            let held = |i: usize| map.is_free(i) && !(descs[i].dirty == 0 && descs[i].is_anon());
            found[..n].iter().filter_map(|&hp| (hp as usize).checked_sub(full)).find(|&s| (s..s + full).all(held))?
        };
        self.claim(s, full);
        self.arena.note_use(s + full + 1);
        Some((self.arena.base + s * HUGE_SIZE, self.mark_large(s, full, tail)))
    }

    /// Gives back a span's pages to the huge map and the filler; `releases`: in the small
    /// phase, the free run they leave may go back to the OS (see [`release`]).
    fn free_pages(&mut self, start: usize, pages: usize, releases: bool) {
        let first = self.hp_index(start);
        let offset = ((start >> PAGE_SHIFT) % PAGES_PER_HUGE) as u32;
        let full = pages / PAGES_PER_HUGE;
        let tail = (pages % PAGES_PER_HUGE) as u32;
        if full > 0 {
            self.make_free(first, full);
            self.send_home(first, full);
        }
        if tail > 0 {
            let hp = first + full;
            let descs = self.tables.descs();
            if self.filler.free(descs, hp as u32, offset, tail) {
                self.make_free(hp, 1);
                self.send_home(hp, 1);
            }
        }
        if releases && first + pages.div_ceil(PAGES_PER_HUGE) <= self.arena.small_end() {
            for hp in first..first + full {
                self.release_small_run(hp, 0, PAGES_PER_HUGE as u32);
            }
            if tail > 0 {
                self.release_small_run(first + full, offset, tail);
            }
        }
        self.release_excess();
    }

    /// Takes `n` wholly free huge pages aligned to `align` bytes: the window with the fewest
    /// fresh pages, best fit, while some free page holds memory, else the lowest run, growing
    /// the arena if needed. Returns the first index; the pages are marked LARGE for the caller
    /// to adjust.
    fn take_huge(&mut self, n: HugePage, align: usize) -> Option<usize> {
        let base = self.arena.base;
        if align > self.arena.len.bytes() {
            return None;
        }
        let aligned = move |i: usize| (((base + i * HUGE_SIZE + align - 1) & !(align - 1)) - base) / HUGE_SIZE;
        // A window that is fresh throughout is no better than the lowest run, below.
        if let Some((s, f)) = self.cheapest_held_window(n, aligned) {
            if f < n.0 {
                self.claim(s, n.0);
                self.arena.note_use(s + n.0);
                return Some(s);
            }
        }
        loop {
            match self.tables.map().find(n, self.arena.frontier, aligned) {
                Ok(HugePage(s)) => {
                    self.claim(s, n.0);
                    self.arena.note_use(s + n.0);
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

    /// Where memory the heap holds goes first, while some free page holds memory: the window of
    /// `n` free huge pages (placed by `aligned`) with the fewest fresh pages, in the shortest
    /// free run (best fit), lowest first, and how many of its pages are fresh. A fresh page
    /// faults in 2 MiB and grows the resident set (or costs a free resident page given back, see
    /// `claim`). None when no free page holds memory, or no window fits below the frontier.
    fn cheapest_held_window(&mut self, n: HugePage, aligned: impl Fn(usize) -> usize) -> Option<(usize, usize)> {
        if self.res.free_resident == 0 {
            return None;
        }
        let frontier = self.arena.frontier;
        let (descs, map) = self.tables.both();
        let fresh = |i: usize| descs[i].dirty == 0 && descs[i].is_anon();
        map.find_cheapest(n, frontier, aligned, fresh, RESIDENT_LOOK).map(|(HugePage(s), f)| (s, f))
    }

    /// Takes the wholly free huge pages `[s, s + n)` out of the huge map, as LARGE; the caller
    /// marks every one of them dirty. Free pages holding memory elsewhere are moved into the
    /// fresh ones among them first ([`relocate`]); fresh pages left (to be faulted in) that
    /// would take the resident set past [`Residency::limit`] are paid for by giving back as
    /// many free pages holding memory elsewhere ([`release_for_fresh`](PageHeap::release_for_fresh)).
    fn claim(&mut self, s: usize, n: usize) {
        self.claim_filled(s, n, 0);
    }

    /// As [`claim`](PageHeap::claim), where the first `filled` pages are to receive the memory
    /// of a span in use, moved there ([`grow_by_moving`](PageHeap::grow_by_moving)): nothing
    /// is moved into them (what they hold goes when the span's memory replaces it, so it may
    /// be moved out into the rest first), and they are counted as held, not as pages to
    /// fault in, and in use in the span's place.
    fn claim_filled(&mut self, s: usize, n: usize, filled: usize) {
        debug_assert!(filled <= n);
        self.move_held_into(s + filled, n - filled);
        let descs = self.tables.descs();
        let anon = descs[s..s + n].iter().filter(|d| d.is_anon()).count();
        let fresh_filled = descs[s..s + filled].iter().filter(|d| d.dirty == 0 && d.is_anon()).count();
        let fresh = descs[s + filled..s + n].iter().filter(|d| d.dirty == 0 && d.is_anon()).count();
        let in_use = self.res.resident - self.res.free_resident + anon;
        self.res.in_use_peak = self.res.in_use_peak.max(in_use);
        if n == 1 && (fresh > 0 || descs[s].zero) && !self.ahead.wanted && self.populates_ahead() {
            // Growing page by page: the helper populates the next pages (see `prefault`).
            self.ahead.wanted = true;
            if self.published {
                bell().populate();
            }
        }
        if fresh > 0 {
            let over = (self.res.resident + fresh).saturating_sub(self.res.limit());
            if over > 0 && self.res.free_resident > 0 {
                self.release_for_fresh(s, n, over);
            }
            self.res.resident += fresh;
        }
        // The span's pages, given back once moved, leave the resident set as these join it.
        self.res.resident += fresh_filled;
        self.tables.map().set_range(HugePage(s), HugePage(n), false);
        for i in s..s + n {
            let d = &mut self.tables.descs()[i];
            debug_assert_eq!(d.state, FREE);
            if d.released {
                d.released = false;
                self.counters.released_now -= HUGE_SIZE;
            } else if d.is_anon() {
                self.res.free_anon_backed -= 1;
                if d.dirty != 0 {
                    self.res.free_resident -= 1;
                }
            }
            if d.zero {
                // Populated ahead: still counted as held (`resident`), and all of it zero
                // for the caller's zero test; the caller marks what it hands out.
                d.zero = false;
                d.dirty = 0;
            }
            self.counters.free_bytes -= HUGE_SIZE;
            d.state = LARGE;
            d.used = u32::MAX;
        }
    }

    /// Commits the arena up to at least huge page `min_end`; the new huge pages are FREE.
    fn grow_to(&mut self, min_end: usize) -> bool {
        if min_end > self.arena.cap {
            // A cap from the memory cgroup's room is read again when reached.
            let hugetlb = self.hugetlb_bytes() / HUGE_SIZE;
            self.arena.reread_cgroup_cap(&self.backing, self.res.resident + hugetlb);
        }
        // What forked children were promised of the pools is not for growth.
        self.arena.ladder.promised = self.family.promised(self.backing.now_ms());
        let frontier = self.arena.frontier;
        let descs = self.tables.descs();
        let mut added = 0;
        let mut anon = 0;
        let now = self.backing.now_ms();
        let grew = self.arena.grow(&mut self.backing, min_end, |s, count, kind| {
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
        self.mirror_release_from();
        self.tables.map().set_range(HugePage(frontier), HugePage(added), true);
        self.counters.free_bytes += added * HUGE_SIZE;
        self.res.free_anon_backed += anon;
        if let Some((n, advised)) = self.arena.take_promoted() {
            // The small heap's pages join the 2 MiB pool the growth took from, where they can
            // (here, once the growth's pieces are counted: this growth may have committed
            // part of the small phase too); else, advised for THP, they are THP pages now, to
            // be collapsed by a sweep of the helper, started for it if no fork has started it
            // (a program that forks right after building its heap would otherwise copy their
            // page tables at every fork).
            let moved = self.small_to_pool(n, advised);
            if !moved && advised {
                for d in &mut self.tables.descs()[..n] {
                    d.kind = PageKind::Thp as u8;
                }
                self.recollapse.request();
                bell().promoted();
            }
        }
        if added > anon {
            // Without the table (no shared page to be had), each child decides alone (see
            // `children`).
            let _ = self.family.ensure();
        }
        grew
    }

    /// Counts free anonymous huge page `i`, which held nothing (fresh or released), as holding
    /// memory now: moved into it ([`relocate`]) or populated ([`prefault`]).
    fn hold_free(&mut self, i: usize) {
        let d = &mut self.tables.descs()[i];
        debug_assert!(d.state == FREE && d.dirty == 0 && d.is_anon());
        if d.released {
            d.released = false;
            self.counters.released_now -= HUGE_SIZE;
            self.res.free_anon_backed += 1;
        }
        d.dirty = u32::MAX;
        self.res.resident += 1;
        self.res.free_resident += 1;
    }

    fn make_free(&mut self, s: usize, n: usize) {
        let now = self.backing.now_ms();
        for d in &mut self.tables.descs()[s..s + n] {
            d.state = FREE;
            d.used = 0;
            d.freed_at = now;
            if d.is_anon() {
                self.res.free_anon_backed += 1;
                // A page in use was handed out: it holds memory.
                debug_assert!(d.dirty != 0);
                self.res.free_resident += (d.dirty != 0) as usize;
            }
        }
        self.counters.free_bytes += n * HUGE_SIZE;
        self.tables.map().set_range(HugePage(s), HugePage(n), true);
    }

    /// Whether the heap has THP huge pages (which copy-on-write splits while a child lives).
    pub fn has_thp(&self) -> bool {
        self.arena.ladder.kinds[PageKind::Thp as usize].bytes > 0
    }

    /// Records a fork made now: THP huge pages may be split from here on (nothing is to be
    /// swept when the heap has none). The process's page heap learns of its forks through
    /// [`fork_pages::fork_count`] instead.
    #[cfg(test)]
    pub fn on_fork(&mut self) {
        if self.has_thp() {
            self.recollapse.on_fork();
        }
    }

    /// The process's page heap counts in the forks the parent's fork handler counted (on the
    /// wiped page, which it writes without a page fault) since it last looked; they were
    /// made while the heap had THP.
    fn count_forks(&mut self) {
        let count = fork_pages::fork_count().load(Ordering::Relaxed);
        if self.published && count != self.forks_counted {
            self.forks_counted = count;
            self.recollapse.on_fork();
        }
    }

    /// In a forked child (its handler): the forks counted so far were its parent's.
    pub fn forget_forks(&mut self) {
        self.forks_counted = fork_pages::fork_count().load(Ordering::Relaxed);
    }

    /// Bytes the heap committed as THP.
    pub fn thp_bytes(&self) -> usize {
        self.arena.ladder.kinds[PageKind::Thp as usize].bytes
    }

    /// Whether a fork since the last completed re-collapse sweep may have split THP huge pages
    /// that no sweep has put together again.
    pub fn recollapse_pending(&self) -> bool {
        self.recollapse.pending()
            || (self.published && fork_pages::fork_count().load(Ordering::Relaxed) != self.forks_counted)
    }

    /// The next huge pages for the re-collapse helper to look at (their addresses, at most
    /// `out.len()`); nothing releases them until [`collapse_done`](PageHeap::collapse_done).
    /// 0 when no sweep is pending or one has just completed.
    pub fn collapse_batch(&mut self, out: &mut [usize]) -> usize {
        self.count_forks();
        let descs = self.tables.descs();
        let (n, completed) = self.recollapse.batch(descs, self.arena.frontier, out);
        self.counters.recollapse_passes += usize::from(completed);
        for a in &mut out[..n] {
            *a = self.arena.addr(*a);
        }
        n
    }

    /// Takes back a batch from [`collapse_batch`](PageHeap::collapse_batch) (its addresses)
    /// with what became of each huge page.
    pub fn collapse_done(&mut self, batch: &[usize], outcomes: &[Outcome]) {
        let mut indices = [0usize; 16];
        for (chunk, outs) in batch.chunks(16).zip(outcomes.chunks(16)) {
            for (i, &a) in chunk.iter().enumerate() {
                indices[i] = self.hp_index(a);
            }
            let descs = self.tables.descs();
            self.recollapse.done(descs, &indices[..chunk.len()], outs, &mut self.counters.recollapse);
        }
    }

    /// Calls `f` once for every live span, in address order (walks the page map of the
    /// committed arena; the lock is held, so no span is freed meanwhile).
    pub fn for_each_span(&self, mut f: impl FnMut(&Span)) {
        let pages = self.arena.frontier * PAGES_PER_HUGE;
        for i in 0..pages {
            let span = self.page_map.entry(i);
            if span.is_null() {
                continue;
            }
            // SAFETY: a non-null entry points to a live span header; only its first page
            // counts it.
            let s = unsafe { &*span };
            if s.start == self.arena.base + (i << PAGE_SHIFT) {
                f(s);
            }
        }
    }

    /// The metadata mapping: `(start, bytes)` of address space.
    pub fn metadata_range(&self) -> (usize, usize) {
        self.meta.range()
    }

    /// Bytes of the page heap's own metadata touched so far (approximate upper bound).
    pub fn metadata_bytes(&self) -> usize {
        self.arena.frontier * (PAGES_PER_HUGE * 8 + size_of::<HpDesc>()) + self.span_space.touched()
    }

    /// Checks the invariants in the module doc; panics on a breach.
    #[cfg(any(test, feature = "check"))]
    pub fn check_invariants(&mut self) {
        let frontier = self.arena.frontier;
        let (descs, map) = self.tables.both();
        let mut free_anon = 0;
        let mut free_bytes = 0;
        let (mut resident, mut free_resident) = (0, 0);
        for (i, d) in descs.iter().enumerate().take(frontier) {
            assert!(d.state != desc::UNCOMMITTED, "huge page {i} below the frontier is uncommitted");
            assert_eq!(map.is_free(i), d.state == FREE, "free bit of huge page {i}");
            assert!(d.state == FREE || d.dirty != 0, "huge page {i} is in use and not dirty");
            assert!(!d.released || d.dirty == 0, "huge page {i} is released and dirty");
            assert!(
                !d.zero || (d.state == FREE && d.dirty == u32::MAX && !d.released && d.is_thp()),
                "huge page {i} is populated ahead but not a free THP page held whole"
            );
            if d.is_anon() && d.dirty != 0 {
                resident += 1;
                free_resident += (d.state == FREE) as usize;
            }
            if d.state == FREE {
                free_bytes += HUGE_SIZE;
                if !d.released && d.is_anon() {
                    free_anon += 1;
                }
            }
            if d.state == LARGE {
                assert_eq!(d.used, u32::MAX);
            }
        }
        assert_eq!(free_anon, self.res.free_anon_backed);
        assert_eq!((resident, free_resident), (self.res.resident, self.res.free_resident));
        assert!(self.res.resident - self.res.free_resident <= self.res.in_use_peak);
        assert_eq!(free_bytes, self.counters.free_bytes);
        assert_eq!(self.count_moved_mappings(), self.moves.breaks, "mappings the moves added");
        let descs = self.tables.descs();
        self.filler.check(descs, |i, d: &HpDesc| i < frontier && d.state == FILLER);
    }
}

#[cfg(test)]
mod tests;

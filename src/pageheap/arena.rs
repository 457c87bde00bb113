//! The arena: one large, 1 GiB-aligned reservation of address space (`PROT_NONE`), committed
//! from the bottom up in chunks, each backed by the best page kind the fallback chain allows.
//!
//! Growth policy (in 2 MiB huge pages): below 1 GiB each chunk doubles the heap (2, 2, 4, 8 ...
//! MiB, so the heap reaches 1 GiB exactly on a 1 GiB boundary); past it, chunks add an eighth
//! of the heap (at least 128 MiB), and are whole aligned GiBs when 1 GiB pages can be had. The
//! number of mappings therefore grows with the logarithm of the heap size, and hugetlb pool
//! pages committed ahead of need are bounded by that eighth.
//!
//! The ladder: for each piece of a chunk, the kinds of the chain are tried in order. A hugetlb
//! kind is tried only for as many pages as its pool says it can give (so a small pool yields
//! part of the chunk as hugetlb and the rest one rung down); a kind whose `mmap` failed is not
//! tried again until its pool count changes. Every refusal is counted, per kind, with its reason.
//! Plain 4 KiB pages end every chain, listed or not.

use crate::options::{Config, PageChain};
use crate::os::{self, OsInfo, PageKind, Refusal, StackWriter, ThpMode};
use crate::units::{Bytes, GIB, HUGE_PER_GIB, HUGE_SIZE, HugePage, SizeArg};
use core::fmt::Write;

/// Heap size (huge pages: 8 MiB) up to which a verbose process is quiet until it exits.
const QUIET_HEAP: usize = 4;

/// Smallest chunk past 1 GiB, in huge pages (128 MiB).
const MIN_LATE_CHUNK: usize = 64;

/// Per-kind record of the ladder.
#[derive(Clone, Copy, Debug, Default)]
pub struct KindRecord {
    /// Bytes committed with this kind.
    pub bytes: usize,
    /// Pieces committed with this kind.
    pub pieces: usize,
    /// Times this kind was passed over for a piece it should have backed.
    pub fallbacks: usize,
    /// Why it was last passed over.
    pub last_refusal: Option<Refusal>,
    /// The errno of the last failed `mmap`, if that was the reason.
    pub last_errno: i32,
    /// Pool availability when `mmap` last failed (retry only once it changes).
    failed_at: Option<usize>,
}

/// The arena and its growth.
///
/// Copy-on-write room (`cow_reserve`, percent): a private hugetlb page shared with a forked
/// child needs a fresh pool page when either side writes it; when the pool has none, the kernel
/// takes the page away from the child (which dies of SIGBUS on its next touch). So a hugetlb
/// piece is taken only if, afterwards, the pool's free pages are still at least
/// `cow_reserve`% of the pages of that kind the process holds. Other processes may still take
/// pool pages later: it is a guarantee against hugeheap's own appetite, not against theirs.
pub struct Arena {
    /// First byte; 1 GiB aligned.
    pub base: usize,
    /// Huge pages reserved.
    pub len: HugePage,
    /// Huge pages committed: `[0, frontier)`.
    pub frontier: usize,
    /// Commit limit in huge pages: the arena size, `HUGEHEAP_MAX_HEAP`, or the room the memory
    /// cgroup left at start-up, whichever is smallest.
    pub cap: usize,
    /// Where the cap comes from, for the message when it is reached.
    cap_source: CapSource,
    /// Said, once each: the cap reached, the heap in 4 KiB pages against the chain's wish.
    said_cap: bool,
    said_small: bool,
    /// Kinds passed over since the last commit, not yet reported (verbose).
    unreported: [bool; 4],
    /// Kinds whose being passed over has been reported (verbose: once each).
    reported: [bool; 4],
    chain: PageChain,
    thp: ThpMode,
    has_1g: bool,
    has_2m: bool,
    /// Verbose reporting: on, and whether the start line has been said.
    verbose: bool,
    said_start: bool,
    /// The settings and the machine, for the start line.
    config: Config,
    info: OsInfo,
    /// Copy-on-write room, in percent of the hugetlb pages held (see above).
    cow_reserve: usize,
    /// Ladder records, indexed by `PageKind as usize`.
    pub kinds: [KindRecord; 4],
    /// Mappings (VMAs) the committed part of the arena is made of.
    pub mappings: usize,
    /// Kind of the last committed piece (for counting merged anonymous mappings).
    last_kind: Option<PageKind>,
}

/// What limits the heap's growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CapSource {
    /// `HUGEHEAP_MAX_HEAP` (or `HugeAlloc::max_heap`).
    MaxHeap,
    /// The room the process's memory cgroup left at start-up.
    Cgroup,
    /// The address space reserved for the heap.
    Reservation,
}

/// The most pages a process holding `held` pages may take from a pool with `free` pages and
/// still leave `pct`% of its holdings free: the largest `n` with
/// `free - n >= pct * (held + n) / 100`.
pub fn cow_takeable(free: usize, held: usize, pct: usize) -> usize {
    (free.saturating_mul(100).saturating_sub(pct.saturating_mul(held))) / (100 + pct)
}

/// The smallest reservation worth making: below it the allocator does not start.
pub const MIN_ARENA: usize = 64 << 20;

impl Arena {
    /// Reserves the arena: `max_heap` rounded up to 1 GiB when a cap is set, else four times
    /// physical memory (at least 64 GiB, at most 16 TiB). Halves the request on failure (an
    /// address-space limit), down to 64 MiB.
    pub fn reserve(cfg: &Config, info: &OsInfo, at_most: usize) -> Option<Arena> {
        let max_heap = Self::max_heap(cfg, info);
        let mut want = if max_heap > 0 {
            max_heap.div_ceil(GIB).saturating_mul(GIB)
        } else {
            info.phys_mem.saturating_mul(4).clamp(64 * GIB, 16 << 40).next_power_of_two()
        }
        .min(at_most);
        let base = loop {
            let align = if want >= GIB { GIB } else { HUGE_SIZE };
            if let Some(b) = os::reserve(want, align) {
                break b;
            }
            if want <= MIN_ARENA {
                return None;
            }
            want /= 2;
        };
        let len = want / HUGE_SIZE;
        let cap = if max_heap > 0 { (max_heap / HUGE_SIZE).min(len) } else { len };
        let cap_source = if cap == len && max_heap / HUGE_SIZE != len {
            CapSource::Reservation
        } else if max_heap == cfg.max_heap {
            CapSource::MaxHeap
        } else {
            CapSource::Cgroup
        };
        Some(Arena {
            base,
            len: HugePage(len),
            frontier: 0,
            cap,
            cap_source,
            said_cap: false,
            said_small: false,
            unreported: [false; 4],
            reported: [false; 4],
            chain: cfg.pages,
            thp: info.thp,
            has_1g: info.has_1g,
            has_2m: info.has_2m,
            verbose: cfg.verbose,
            said_start: false,
            config: *cfg,
            info: *info,
            cow_reserve: cfg.cow_reserve as usize,
            kinds: [KindRecord::default(); 4],
            mappings: 0,
            last_kind: None,
        })
    }

    /// The heap's cap in bytes (0: none): `HUGEHEAP_MAX_HEAP` or the room the cgroup's memory
    /// limit leaves, whichever is smaller, so that a heap running into a cgroup limit returns
    /// null instead of calling the OOM killer down on the process.
    pub fn max_heap(cfg: &Config, info: &OsInfo) -> usize {
        match (cfg.max_heap, info.cgroup_room) {
            (0, c) => c,
            (m, 0) => m,
            (m, c) => m.min(c),
        }
    }

    /// Unmaps the whole reservation (start-up only, before any of it is used).
    pub fn unreserve(self) {
        // SAFETY: the arena is consumed; nothing has been committed or handed out from it yet
        // (start-up calls this only when its metadata could not be mapped).
        unsafe { os::unmap(self.base, self.len.0 * HUGE_SIZE) };
    }

    /// Address of huge page `i`.
    #[inline]
    pub fn addr(&self, i: usize) -> usize {
        self.base + i * HUGE_SIZE
    }

    /// Whether 1 GiB pages may back a chunk starting at huge page `at`.
    fn gib_allowed(&self, at: usize) -> bool {
        self.has_1g && self.chain.kinds().contains(&PageKind::Gib1) && (!self.chain.is_auto() || at >= HUGE_PER_GIB)
    }

    /// Where the next chunk should end, given that the heap must reach `min_end`.
    fn chunk_end(&self, min_end: usize) -> usize {
        let f = self.frontier;
        let explicit_gib = !self.chain.is_auto() && self.chain.kinds().first() == Some(&PageKind::Gib1);
        let step = if explicit_gib {
            HUGE_PER_GIB
        } else if f < HUGE_PER_GIB {
            f.max(1)
        } else {
            (f / 8).max(MIN_LATE_CHUNK)
        };
        let mut end = min_end.max(f + step);
        if f < HUGE_PER_GIB && end > HUGE_PER_GIB && min_end <= HUGE_PER_GIB {
            end = HUGE_PER_GIB; // land exactly on the first GiB
        }
        if end > HUGE_PER_GIB && self.gib_allowed(f) && os::pool_available(PageKind::Gib1).unwrap_or(0) > 0 {
            end = end.div_ceil(HUGE_PER_GIB) * HUGE_PER_GIB;
        }
        end.min(self.cap).max(min_end)
    }

    /// Commits huge pages `[frontier, end)` for some `end >= min_end`, calling `on_piece(start,
    /// count, kind)` for each piece committed. Returns false (committing nothing more) when
    /// the cap or the arena would be passed, or when not even 4 KiB pages could be had.
    pub fn grow(&mut self, min_end: usize, mut on_piece: impl FnMut(usize, usize, PageKind)) -> bool {
        if min_end > self.cap {
            self.say_cap_reached();
            return false;
        }
        if self.frontier >= QUIET_HEAP {
            self.say_start();
        }
        let end = self.chunk_end(min_end);
        // Kinds whose commit failed during this growth: not tried again until the next one.
        let mut failed_now = [false; 4];
        while self.frontier < end {
            let at = self.frontier;
            let Some((kind, n)) = self.pick(at, end - at, &failed_now) else {
                return self.frontier >= min_end;
            };
            // SAFETY: [at, at + n) lies in our reservation above the frontier, so it is
            // PROT_NONE and unused; sizes are multiples of the kind's page (pick ensures 1 GiB
            // alignment for Gib1, and everything here is in 2 MiB units).
            match unsafe { os::commit(self.addr(at), n * HUGE_SIZE, kind, self.thp == ThpMode::Always) } {
                Ok(()) => {
                    let rec = &mut self.kinds[kind as usize];
                    rec.bytes += n * HUGE_SIZE;
                    rec.pieces += 1;
                    rec.failed_at = None;
                    let merges = !kind.is_hugetlb() && self.last_kind == Some(kind);
                    if !merges {
                        self.mappings += 1;
                    }
                    self.last_kind = Some(kind);
                    self.frontier = at + n;
                    self.report_fallbacks(kind, n);
                    on_piece(at, n, kind);
                }
                Err(e) => {
                    failed_now[kind as usize] = true;
                    self.refuse(kind, Refusal::MapFailed, e);
                    match kind {
                        // Remember the pool count: retried once the pool has changed.
                        PageKind::Gib1 | PageKind::Mib2 => {
                            self.kinds[kind as usize].failed_at = Some(os::pool_available(kind).unwrap_or(usize::MAX));
                        }
                        // madvise refused MADV_HUGEPAGE: this kernel has no THP; never retry.
                        PageKind::Thp if e == os::EINVAL => self.kinds[kind as usize].failed_at = Some(0),
                        PageKind::Thp => {}
                        // Not even 4 KiB pages: out of memory or commit limit.
                        PageKind::Small => return self.frontier >= min_end,
                    }
                }
            }
        }
        true
    }

    /// Chooses the kind and length (in huge pages) of the next piece at `at`, at most `len`.
    fn pick(&mut self, at: usize, len: usize, failed_now: &[bool; 4]) -> Option<(PageKind, usize)> {
        let chain = self.chain;
        for &kind in chain.kinds() {
            if failed_now[kind as usize] {
                continue;
            }
            match kind {
                PageKind::Gib1 => {
                    if !self.gib_allowed(at) || at % HUGE_PER_GIB != 0 || len < HUGE_PER_GIB {
                        continue; // not a fallback: this chunk is not a place for 1 GiB pages
                    }
                    match self.pool_pages(kind) {
                        Ok(avail) => {
                            return Some((kind, (len / HUGE_PER_GIB).min(avail) * HUGE_PER_GIB));
                        }
                        Err(r) => self.refuse(kind, r, 0),
                    }
                }
                PageKind::Mib2 => {
                    if !self.has_2m {
                        self.refuse(kind, Refusal::Unsupported, 0);
                        continue;
                    }
                    match self.pool_pages(kind) {
                        Ok(avail) => return Some((kind, len.min(avail))),
                        Err(r) => self.refuse(kind, r, 0),
                    }
                }
                PageKind::Thp => {
                    if self.thp == ThpMode::Never || self.kinds[kind as usize].failed_at.is_some() {
                        self.refuse(kind, Refusal::Unsupported, 0);
                        continue;
                    }
                    return Some((kind, len));
                }
                PageKind::Small => return Some((kind, len)),
            }
        }
        // 4 KiB pages are the last resort even when the chain does not list them: the heap
        // never fails for want of huge pages.
        (!failed_now[PageKind::Small as usize]).then_some((PageKind::Small, len))
    }

    /// How many pages of a hugetlb kind the pool can give now, or why none: what is free,
    /// less the copy-on-write room for what the process would then hold.
    fn pool_pages(&self, kind: PageKind) -> Result<usize, Refusal> {
        let avail = os::pool_available(kind);
        if let Some(failed_at) = self.kinds[kind as usize].failed_at {
            if avail.unwrap_or(usize::MAX) == failed_at {
                return Err(Refusal::Remembered);
            }
        }
        match avail {
            Some(0) => Err(Refusal::PoolEmpty),
            Some(free) => {
                let held = self.kinds[kind as usize].bytes / kind.page_size();
                match cow_takeable(free, held, self.cow_reserve) {
                    0 => Err(Refusal::CowReserve),
                    n => Ok(n),
                }
            }
            // No sysfs to ask: try the whole piece and let mmap decide.
            None => Ok(usize::MAX / HUGE_PER_GIB),
        }
    }

    fn refuse(&mut self, kind: PageKind, why: Refusal, errno: i32) {
        let rec = &mut self.kinds[kind as usize];
        rec.fallbacks += 1;
        rec.last_refusal = Some(why);
        rec.last_errno = errno;
        self.unreported[kind as usize] = true;
    }

    /// After a piece of `n` huge pages was committed with `used`: under verbose, says once for
    /// each kind passed over on the way what it was and why; and, once and always, that the
    /// heap went to 4 KiB pages when the chain asked for huge ones.
    fn report_fallbacks(&mut self, used: PageKind, n: usize) {
        for kind in PageKind::ALL {
            let k = kind as usize;
            if !self.said_start || !core::mem::take(&mut self.unreported[k]) || self.reported[k] {
                continue;
            }
            self.reported[k] = true;
            let rec = &self.kinds[k];
            let mut w = StackWriter::<200>::new();
            let why = rec.last_refusal.map_or("-", |r| r.describe());
            let _ = write!(w, "hugeheap: {kind} pages not used for {} of heap ({why}", Bytes(n * HUGE_SIZE));
            if rec.last_errno != 0 {
                let _ = write!(w, ", errno {}", rec.last_errno);
            }
            let _ = writeln!(w, "); {used} pages instead");
            w.flush_stderr();
        }
        let wanted_huge = self.chain.kinds().first() != Some(&PageKind::Small);
        if used == PageKind::Small && wanted_huge && !self.said_small {
            self.said_small = true;
            let mut w = StackWriter::<400>::new();
            let _ = write!(w, "hugeheap: no huge pages for the heap (HUGEHEAP_PAGES={}:", self.chain);
            for &kind in self.chain.kinds().iter().filter(|k| **k != PageKind::Small) {
                let why = self.kinds[kind as usize].last_refusal.map_or("-", |r| r.describe());
                let _ = write!(w, " {kind} {why};");
            }
            let _ = writeln!(
                w,
                " THP {}): it is in 4 KiB pages, which fork slowly. `hugeheap doctor` says how to get huge \
                 pages; HUGEHEAP_PAGES=4k says that 4 KiB pages are meant.",
                self.thp.name()
            );
            w.flush_stderr();
        }
    }

    /// Under verbose, says once the settings, the machine and the process, and then what the
    /// ladder passed over so far. Said when the heap first grows past `QUIET_HEAP`, or at
    /// exit: the short-lived helper processes of shell wrappers, which stay small and exec the
    /// next program, stay quiet.
    pub fn say_start(&mut self) {
        if !self.verbose || core::mem::replace(&mut self.said_start, true) {
            return;
        }
        let mut w = StackWriter::<512>::new();
        let _ = write!(w, "hugeheap: {}; machine: {}; ", self.config, self.info);
        let _ = os::write_process(&mut w);
        let _ = writeln!(w);
        w.flush_stderr();
        if let Some(kind) = self.last_kind {
            self.report_fallbacks(kind, self.frontier);
        }
    }

    /// Says, once, that the heap cannot grow past its cap, and why the cap is there.
    fn say_cap_reached(&mut self) {
        if core::mem::replace(&mut self.said_cap, true) {
            return;
        }
        let cap = self.cap * HUGE_SIZE;
        let mut w = StackWriter::<300>::new();
        let _ = match self.cap_source {
            CapSource::MaxHeap => write!(w, "hugeheap: the heap reached its cap, HUGEHEAP_MAX_HEAP={}", SizeArg(cap)),
            CapSource::Cgroup => write!(
                w,
                "hugeheap: the heap reached {}, the room the memory cgroup's limit left at start-up",
                Bytes(cap)
            ),
            CapSource::Reservation => {
                write!(w, "hugeheap: the heap filled the {} of address space reserved for it", Bytes(cap))
            }
        };
        let _ = writeln!(w, "; allocations that need more memory return NULL (ENOMEM)");
        w.flush_stderr();
    }
}

#[cfg(test)]
mod tests {
    use super::cow_takeable;

    #[test]
    fn cow_takeable_is_the_largest_safe_take() {
        for pct in [0, 50, 100, 300] {
            for free in 0..300 {
                for held in 0..200 {
                    let n = cow_takeable(free, held, pct);
                    let leaves_room = |n: usize| n <= free && (free - n) * 100 >= pct * (held + n);
                    if n > 0 {
                        assert!(leaves_room(n), "free {free} held {held} pct {pct}: {n}");
                    }
                    assert!(!leaves_room(n + 1), "free {free} held {held} pct {pct}: {n} is not the largest");
                }
            }
        }
        // The test's set-up: 130 free, nothing held, 100%: 65 may be taken.
        assert_eq!(cow_takeable(130, 0, 100), 65);
        assert_eq!(cow_takeable(130, 0, 0), 130);
    }
}

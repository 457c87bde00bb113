//! The arena: one large, 1 GiB-aligned reservation of address space (`PROT_NONE`), committed
//! from the bottom up in chunks, each piece backed by the page kind the ladder chooses.
//!
//! Growth policy (in 2 MiB huge pages): below 1 GiB each chunk doubles the heap (2, 2, 4, 8 ...
//! MiB, so the heap reaches 1 GiB exactly on a 1 GiB boundary); past it, chunks add an eighth
//! of the heap (at least 128 MiB), and are whole aligned GiBs when 1 GiB pages can be had. The
//! number of mappings therefore grows with the logarithm of the heap size, and hugetlb pool
//! pages committed ahead of need are bounded by that eighth.
//!
//! It says three things on stderr: under verbose, the start line (settings, machine, process)
//! once the heap uses memory past `QUIET_HEAP`; always, once, at that point, that the heap is
//! in 4 KiB pages when its chain asked for huge ones (said by the ladder); and always, once,
//! that the heap reached its cap.

use super::backing::Backing;
use super::ladder::Ladder;
use crate::options::Config;
use crate::os::{OsInfo, StackWriter, stderr};
use crate::pagekind::PageKind;
use crate::units::{Bytes, GIB, HUGE_PER_GIB, HUGE_SIZE, HugePage, SizeArg};
use core::fmt::Write;

/// Heap size (huge pages: 8 MiB) up to which a verbose process is quiet until it exits.
const QUIET_HEAP: usize = 4;

/// Smallest chunk past 1 GiB, in huge pages (128 MiB).
const MIN_LATE_CHUNK: usize = 64;

/// The smallest reservation worth making: below it the allocator does not start.
pub const MIN_ARENA: usize = 64 << 20;

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

/// The arena and its growth.
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
    cap_source: CapSource,
    /// The cap reached has been said.
    said_cap: bool,
    /// Which kind backs each new piece.
    pub ladder: Ladder,
    /// Mappings (VMAs) the committed part of the arena is made of.
    pub mappings: usize,
    /// Kind of the last committed piece (for counting merged anonymous mappings).
    last_kind: Option<PageKind>,
    /// The small heap's 4 KiB pages have been advised for THP (or that was not possible).
    promoted: bool,
    /// Huge pages `[0, n)` of the small phase the last growth passed, and whether they were
    /// advised for THP, for the page heap to relabel or move.
    just_promoted: Option<(usize, bool)>,
    /// The settings and the machine, for the start line.
    config: Config,
    info: OsInfo,
}

impl Arena {
    /// Reserves the arena: `max_heap` rounded up to 1 GiB when a cap is set, else four times
    /// physical memory (at least 64 GiB, at most 16 TiB); at most `at_most` bytes. Halves the
    /// request on failure (an address-space limit), down to 64 MiB.
    pub fn reserve(backing: &mut impl Backing, cfg: &Config, info: &OsInfo, at_most: usize) -> Option<Arena> {
        let max_heap = Self::max_heap(cfg, info);
        let mut want = if max_heap > 0 {
            max_heap.div_ceil(GIB).saturating_mul(GIB)
        } else {
            info.phys_mem.saturating_mul(4).clamp(64 * GIB, 16 << 40).next_power_of_two()
        }
        .min(at_most);
        let base = loop {
            let align = if want >= GIB { GIB } else { HUGE_SIZE };
            if let Some(b) = backing.reserve(want, align) {
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
            ladder: Ladder::new(cfg, info),
            mappings: 0,
            last_kind: None,
            promoted: false,
            just_promoted: None,
            config: *cfg,
            info: *info,
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

    /// Gives back the whole reservation (start-up only, before any of it is used).
    pub fn unreserve(self, backing: &mut impl Backing) {
        // SAFETY: the arena is consumed; nothing has been committed or handed out from it yet
        // (start-up calls this only when its metadata could not be mapped).
        unsafe { backing.unreserve(self.base, self.len.bytes()) };
    }

    /// Address of huge page `i`.
    #[inline]
    pub fn addr(&self, i: usize) -> usize {
        debug_assert!(i <= self.len.0);
        self.base + i * HUGE_SIZE
    }

    /// Where the next chunk should end, given that the heap must reach `min_end`.
    fn chunk_end(&self, backing: &impl Backing, min_end: usize) -> usize {
        let f = self.frontier;
        let chain = self.ladder.chain();
        let explicit_gib = !chain.is_auto() && chain.kinds().first() == Some(&PageKind::Gib1);
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
        if end > HUGE_PER_GIB && self.ladder.gib_allowed(f) && backing.pool_available(PageKind::Gib1).unwrap_or(0) > 0 {
            end = end.div_ceil(HUGE_PER_GIB) * HUGE_PER_GIB;
        }
        end.min(self.cap).max(min_end)
    }

    /// Commits huge pages `[frontier, end)` for some `end >= min_end`, calling `on_piece(start,
    /// count, kind)` for each piece committed. Returns false (committing nothing more) when
    /// the cap or the arena would be passed, or when not even 4 KiB pages could be had.
    pub fn grow(
        &mut self,
        backing: &mut impl Backing,
        min_end: usize,
        mut on_piece: impl FnMut(usize, usize, PageKind),
    ) -> bool {
        if min_end > self.cap {
            self.say_cap_reached();
            return false;
        }
        let end = self.chunk_end(backing, min_end);
        // Kinds whose commit failed during this growth: not tried again until the next one.
        let mut failed_now = [false; 4];
        while self.frontier < end {
            let at = self.frontier;
            if at == self.ladder.small_below() && at > 0 && !self.promoted {
                self.promote(backing);
            }
            let Some((kind, n)) = self.ladder.pick(backing, at, end - at, &failed_now) else {
                return self.frontier >= min_end;
            };
            debug_assert!(n > 0 && at + n <= self.len.0);
            let no_thp = self.ladder.no_thp(at, kind);
            // SAFETY: [at, at + n) lies in our reservation above the frontier, so it is
            // PROT_NONE and unused; sizes are multiples of the kind's page (pick ensures 1 GiB
            // alignment for Gib1, and everything here is in 2 MiB units).
            match unsafe { backing.commit(self.addr(at), n * HUGE_SIZE, kind, no_thp) } {
                Ok(()) => {
                    let merges = !kind.is_hugetlb() && self.last_kind == Some(kind);
                    if !merges {
                        self.mappings += 1;
                    }
                    self.last_kind = Some(kind);
                    self.frontier = at + n;
                    self.ladder.committed(kind, n);
                    on_piece(at, n, kind);
                }
                Err(e) => {
                    failed_now[kind as usize] = true;
                    if !self.ladder.commit_failed(backing, kind, e) {
                        return self.frontier >= min_end;
                    }
                }
            }
        }
        true
    }

    /// The heap has outgrown its small phase (`HUGEHEAP_HUGE_FROM`): advises its 4 KiB part for
    /// THP, when THP can be had, so that it is collapsed (by the re-collapse sweep or
    /// khugepaged) and forks no slower than the rest; the page heap may instead move it into
    /// the 2 MiB pool after the growth ([`take_promoted`](Arena::take_promoted)). Tried once.
    fn promote(&mut self, backing: &mut impl Backing) {
        self.promoted = true;
        let n = self.ladder.small_below();
        if !self.ladder.thp_usable(backing) {
            self.just_promoted = Some((n, false));
            return;
        }
        // SAFETY: [0, n) is committed (the frontier is at n) and is arena memory in 4 KiB
        // pages; advice changes no contents.
        let advised = unsafe { backing.advise_thp(self.base, n * HUGE_SIZE) }.is_ok();
        if advised {
            self.ladder.promoted(n);
            if self.last_kind == Some(PageKind::Small) {
                // It now merges with a THP piece that follows.
                self.last_kind = Some(PageKind::Thp);
            }
        }
        self.just_promoted = Some((n, advised));
    }

    /// The heap still grows in 4 KiB pages up to `HUGEHEAP_HUGE_FROM` and has not passed it.
    pub fn in_small_phase(&self) -> bool {
        !self.promoted && self.ladder.small_below() > 0
    }

    /// The end (in huge pages) of the small heap's 4 KiB pages: 0 once they were advised for
    /// THP, or where there are none.
    pub fn small_end(&self) -> usize {
        if self.promoted { 0 } else { self.ladder.small_below().min(self.frontier) }
    }

    /// The huge pages `[0, n)` of the small phase the last growth left behind, once, and
    /// whether they were advised for THP (they are THP pages then, else still 4 KiB ones).
    pub fn take_promoted(&mut self) -> Option<(usize, bool)> {
        self.just_promoted.take()
    }

    /// Under verbose, says once the settings, the machine and the process, and then what the
    /// ladder passed over so far. Said when the heap first uses memory past `QUIET_HEAP`, or at
    /// exit: the short-lived helper processes of shell wrappers, which stay small and exec the
    /// next program, stay quiet.
    pub fn say_start(&mut self) {
        if !self.config.verbose || core::mem::replace(&mut self.ladder.speaking, true) {
            return;
        }
        let mut w = StackWriter::<512>::new();
        let _ = write!(w, "hugeheap: {}; machine: {}; ", self.config, self.info);
        let _ = stderr::write_process(&mut w);
        let _ = writeln!(w);
        w.flush_stderr();
        if let Some(kind) = self.last_kind {
            self.ladder.report_fallbacks(kind, self.frontier);
        }
    }

    /// The heap hands out memory up to huge page `end`: once that passes `QUIET_HEAP`, the
    /// start line is said (verbose), and, verbose or not, a heap in 4 KiB pages against the
    /// chain's wish. (A process that stays smaller, such as the helper shells of a wrapper,
    /// says nothing; one whose chain commits a whole GiB at first, `1g`, is judged by what it
    /// uses, not by what was committed.)
    #[inline]
    pub fn note_use(&mut self, end: usize) {
        if end > QUIET_HEAP && !self.ladder.past_quiet {
            self.ladder.past_quiet = true;
            self.say_start();
            if let Some(kind) = self.last_kind {
                self.ladder.report_fallbacks(kind, self.frontier);
            }
        }
    }

    /// Whether the cap is the room the memory cgroup's limit leaves.
    pub fn cap_is_cgroup(&self) -> bool {
        self.cap_source == CapSource::Cgroup
    }

    /// When the cap is the room the memory cgroup left, reads the room again (the group's
    /// other processes may have freed memory, the kernel may have reclaimed cache): the cap
    /// becomes the `charged` huge pages (those of the heap that hold memory charged to the
    /// group, or that the group does not count: hugetlb) plus the room now, within
    /// `HUGEHEAP_MAX_HEAP` and the reservation. Committed pages that hold nothing are not
    /// counted as room: the group charges them when they are touched.
    pub fn reread_cgroup_cap(&mut self, backing: &impl Backing, charged: usize) {
        if self.cap_source != CapSource::Cgroup {
            return;
        }
        let room = backing.cgroup_room();
        let mut cap = if room == 0 { self.len.0 } else { charged.saturating_add(room / HUGE_SIZE) };
        if self.config.max_heap > 0 {
            cap = cap.min(self.config.max_heap / HUGE_SIZE);
        }
        let cap = cap.min(self.len.0);
        if cap > self.cap {
            self.said_cap = false;
        }
        self.cap = cap;
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
            CapSource::Cgroup => {
                write!(w, "hugeheap: the heap reached {}, the room the memory cgroup's limit leaves", Bytes(cap))
            }
            CapSource::Reservation => {
                write!(w, "hugeheap: the heap filled the {} of address space reserved for it", Bytes(cap))
            }
        };
        let _ = writeln!(w, "; allocations that need more memory return NULL (ENOMEM)");
        w.flush_stderr();
    }
}

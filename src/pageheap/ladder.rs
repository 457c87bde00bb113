//! The ladder: which page kind backs each piece of a new chunk. The kinds of the chain are
//! tried in order. A hugetlb kind is tried only for as many pages as its pool says it can give
//! now (so a small pool yields part of a chunk as hugetlb and the rest one rung down), less
//! the copy-on-write room; a kind whose `mmap` failed is not tried again until its pool count
//! changes. Every refusal is counted, per kind, with its reason. Plain 4 KiB pages end every
//! chain, listed or not: the heap never fails for want of huge pages.
//!
//! Copy-on-write room (`cow_reserve`, percent): a private hugetlb page shared with a forked
//! child needs a fresh pool page when either side writes it; when the pool has none, the
//! kernel takes the page away from the child (which dies of SIGBUS on its next touch). So a
//! hugetlb piece is taken only if, afterwards, the pool's free pages are still at least
//! `cow_reserve`% of the pages of that kind the process holds. Other processes may still take
//! pool pages later: it is a guarantee against hugeheap's own appetite, not against theirs.
//!
//! It also says what it did: under verbose, each kind passed over (once) and what was used
//! instead; always, once, when the heap lands in 4 KiB pages against the chain's wish.

use super::backing::Backing;
use crate::options::{Config, PageChain};
use crate::os::probe::{OsInfo, ThpMode};
use crate::os::{EINVAL, StackWriter};
use crate::pagekind::PageKind;
use crate::units::{Bytes, HUGE_PER_GIB, HUGE_SIZE};
use core::fmt::Write;

/// Why a page kind was passed over for a chunk of the heap ([`Fallback::reason`](crate::Fallback)).
///
/// ```rust,standalone_crate
/// use hugeheap::{HugeAlloc, PageKind, Refusal};
///
/// #[global_allocator]
/// static A: HugeAlloc = HugeAlloc::new();
///
/// let v = vec![0u8; 8 << 20];
/// let s = hugeheap::stats();
/// for kind in PageKind::ALL {
///     if let Some(why) = s.fallback(kind).reason {
///         println!("{kind} passed over: {}", why.describe()); // e.g. "2m passed over: pool empty"
///         assert_ne!(why, Refusal::None);
///     }
/// }
/// # drop(v);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// Not refused (the zero value of counters).
    None = 0,
    /// The hugetlb pool had no free page (read from sysfs before trying).
    PoolEmpty = 1,
    /// The kernel refused the mapping (errno kept beside).
    MapFailed = 2,
    /// The chunk was too small or misaligned for this kind.
    Misfit = 3,
    /// This kind is off on this machine (THP `never`, no hugetlb support).
    Unsupported = 4,
    /// This kind failed recently; it is not retried until the pool has changed.
    Remembered = 5,
    /// The pool's free pages are kept for copy-on-write after fork (`HUGEHEAP_COW_RESERVE`).
    CowReserve = 6,
    /// THP is switched off for this process (`prctl(PR_SET_THP_DISABLE)`).
    ThpDisabled = 7,
}

impl Refusal {
    /// A short human description.
    pub const fn describe(self) -> &'static str {
        match self {
            Refusal::None => "-",
            Refusal::PoolEmpty => "pool empty",
            Refusal::MapFailed => "mmap refused",
            Refusal::Misfit => "chunk too small or misaligned",
            Refusal::Unsupported => "unsupported here",
            Refusal::Remembered => "failed before, pool unchanged",
            Refusal::CowReserve => "rest of pool kept for copy-on-write",
            Refusal::ThpDisabled => {
                "THP switched off for this process by prctl(PR_SET_THP_DISABLE) (Ruby 3.1 does at start-up, Redis \
                 when THP is `always` unless run with --disable-thp no; inherited across fork and exec); under \
                 libhugeheap.so HUGEHEAP_THP_OFF=keep-heap keeps THP for the heap, and a program's own call can \
                 pass PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18+)"
            }
        }
    }
}

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

/// The most pages a process holding `held` pages may take from a pool with `free` pages and
/// still leave `pct`% of its holdings free: the largest `n` with
/// `free - n >= pct * (held + n) / 100`.
pub fn cow_takeable(free: usize, held: usize, pct: usize) -> usize {
    (free.saturating_mul(100).saturating_sub(pct.saturating_mul(held))) / (100 + pct)
}

/// The ladder's state: the chain, what the machine offers, and what happened so far.
pub struct Ladder {
    chain: PageChain,
    thp: ThpMode,
    has_1g: bool,
    has_2m: bool,
    /// Copy-on-write room, in percent of the hugetlb pages held (see the module doc).
    cow_reserve: usize,
    /// Records, indexed by `PageKind as usize`.
    pub kinds: [KindRecord; 4],
    /// Verbose reporting is on, and may speak (see `Arena::say_start`).
    verbose: bool,
    /// Verbose reporting has begun (the start line was said).
    pub speaking: bool,
    /// Kinds passed over since the last report, not yet reported.
    unreported: [bool; 4],
    /// Kinds whose being passed over has been reported (once each).
    reported: [bool; 4],
    /// The heap landing in 4 KiB pages against the chain's wish has been said.
    said_small: bool,
    /// Pool pages (2 MiB, 1 GiB) promised to forked children for copy-on-write (see
    /// `family`): not to be taken for growth.
    pub promised: [usize; 2],
    /// Under `auto`, the huge pages below which the heap is in plain 4 KiB pages.
    small_below: usize,
    /// A piece past `small_below` has been picked: 4 KiB pages from here on are a fallback.
    past_small: bool,
    /// The heap has grown past the size from which what it is in matters (see
    /// `Arena::note_use`): a small process in 4 KiB pages forks fast anyway, and the helper
    /// shells of a wrapper (a pyenv shim) would each say so.
    pub past_quiet: bool,
}

impl Ladder {
    /// A ladder for `cfg` on the machine `info`.
    pub fn new(cfg: &Config, info: &OsInfo) -> Ladder {
        Ladder {
            chain: cfg.pages,
            thp: info.thp,
            has_1g: info.pool_1g.is_some(),
            has_2m: info.pool_2m.is_some(),
            cow_reserve: cfg.cow_reserve as usize,
            kinds: [KindRecord::default(); 4],
            verbose: cfg.verbose,
            speaking: false,
            unreported: [false; 4],
            reported: [false; 4],
            said_small: false,
            promised: [0, 0],
            small_below: if cfg.pages.is_auto() { cfg.huge_from.div_ceil(HUGE_SIZE) } else { 0 },
            past_small: false,
            past_quiet: false,
        }
    }

    /// The chain.
    pub fn chain(&self) -> PageChain {
        self.chain
    }

    /// The copy-on-write reserve, percent (0: the whole pool, for programs whose children exec).
    pub fn cow_reserve(&self) -> usize {
        self.cow_reserve
    }

    /// Whether verbose reporting is on.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether a piece at `at` of `kind` must be advised against THP: 4 KiB pages asked for
    /// under THP `always`. (The plain pages of a small heap are not: they are as glibc's.)
    pub fn no_thp(&self, at: usize, kind: PageKind) -> bool {
        kind == PageKind::Small && self.thp == ThpMode::Always && at >= self.small_below
    }

    /// The huge page at which a small heap's plain pages end (0 when there are none).
    pub fn small_below(&self) -> usize {
        self.small_below
    }

    /// Whether THP may back new memory now (listed, on, not refused by the kernel).
    pub fn thp_usable(&self, backing: &impl Backing) -> bool {
        self.chain.kinds().contains(&PageKind::Thp)
            && self.thp != ThpMode::Never
            && self.kinds[PageKind::Thp as usize].failed_at.is_none()
            && !backing.thp_disabled()
    }

    /// Whether 1 GiB pages may back a chunk starting at huge page `at`: the chain lists them,
    /// the machine has a pool, and (for `auto`) the heap has reached 1 GiB.
    pub fn gib_allowed(&self, at: usize) -> bool {
        self.has_1g && self.chain.kinds().contains(&PageKind::Gib1) && (!self.chain.is_auto() || at >= HUGE_PER_GIB)
    }

    /// Chooses the kind and length (in huge pages) of the next piece at `at`, at most `len`,
    /// skipping the kinds that `failed_now`.
    pub fn pick(
        &mut self,
        backing: &impl Backing,
        at: usize,
        len: usize,
        failed_now: &[bool; 4],
    ) -> Option<(PageKind, usize)> {
        debug_assert!(len > 0);
        if at < self.small_below {
            // A small heap stays in plain pages (see HUGEHEAP_HUGE_FROM); the piece ends where
            // huge pages begin.
            return Some((PageKind::Small, len.min(self.small_below - at)));
        }
        self.past_small = true;
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
                    match self.pool_pages(backing, kind) {
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
                    match self.pool_pages(backing, kind) {
                        Ok(avail) => return Some((kind, len.min(avail))),
                        Err(r) => self.refuse(kind, r, 0),
                    }
                }
                PageKind::Thp => {
                    if self.thp == ThpMode::Never || self.kinds[kind as usize].failed_at.is_some() {
                        self.refuse(kind, Refusal::Unsupported, 0);
                        continue;
                    }
                    // Asked at every growth: a program may switch THP off after start (Redis).
                    if backing.thp_disabled() {
                        self.refuse(kind, Refusal::ThpDisabled, 0);
                        continue;
                    }
                    return Some((kind, len));
                }
                PageKind::Small => return Some((kind, len)),
            }
        }
        (!failed_now[PageKind::Small as usize]).then_some((PageKind::Small, len))
    }

    /// How many pages of a hugetlb kind the pool can give now, or why none: what is free,
    /// less the copy-on-write room for what the process would then hold.
    fn pool_pages(&self, backing: &impl Backing, kind: PageKind) -> Result<usize, Refusal> {
        let promised = self.promised[usize::from(kind == PageKind::Gib1)];
        let avail = backing.pool_available(kind).map(|a| a.saturating_sub(promised));
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

    /// Whether the pool of hugetlb `kind` can give `n` more pages now, under the copy-on-write
    /// room (as a commit of them would be judged).
    pub fn pool_takes(&self, backing: &impl Backing, kind: PageKind, n: usize) -> bool {
        self.pool_pages(backing, kind).is_ok_and(|m| m >= n)
    }

    /// Records a piece of `n` huge pages committed with `kind`.
    pub fn committed(&mut self, kind: PageKind, n: usize) {
        let rec = &mut self.kinds[kind as usize];
        rec.bytes += n * HUGE_SIZE;
        rec.pieces += 1;
        rec.failed_at = None;
        self.report_fallbacks(kind, n);
    }

    /// Records that `n` huge pages of anonymous kind `from` were moved into hugetlb pages of
    /// `kind` (a piece of their own).
    pub fn moved_into(&mut self, from: PageKind, kind: PageKind, n: usize) {
        let bytes = n * HUGE_SIZE;
        debug_assert!(self.kinds[from as usize].bytes >= bytes);
        self.kinds[from as usize].bytes -= bytes;
        self.committed(kind, n);
    }

    /// Records that the first `n` huge pages, committed in 4 KiB pages for a small heap, were
    /// advised for THP.
    pub fn promoted(&mut self, n: usize) {
        let bytes = n * HUGE_SIZE;
        debug_assert!(self.kinds[PageKind::Small as usize].bytes >= bytes);
        self.kinds[PageKind::Small as usize].bytes -= bytes;
        self.kinds[PageKind::Thp as usize].bytes += bytes;
    }

    /// Records that committing with `kind` failed with `errno`. Returns false when not even
    /// 4 KiB pages could be had (out of memory, or the commit limit).
    pub fn commit_failed(&mut self, backing: &impl Backing, kind: PageKind, errno: i32) -> bool {
        self.refuse(kind, Refusal::MapFailed, errno);
        match kind {
            // Remember the pool count: retried once the pool has changed.
            PageKind::Gib1 | PageKind::Mib2 => {
                self.kinds[kind as usize].failed_at = Some(backing.pool_available(kind).unwrap_or(usize::MAX));
            }
            // madvise refused MADV_HUGEPAGE: this kernel has no THP; never retry.
            PageKind::Thp if errno == EINVAL => self.kinds[kind as usize].failed_at = Some(0),
            PageKind::Thp => {}
            PageKind::Small => return false,
        }
        true
    }

    fn refuse(&mut self, kind: PageKind, why: Refusal, errno: i32) {
        let rec = &mut self.kinds[kind as usize];
        rec.fallbacks += 1;
        rec.last_refusal = Some(why);
        rec.last_errno = errno;
        self.unreported[kind as usize] = true;
    }

    /// After a piece of `n` huge pages was committed with `used`: once speaking (verbose),
    /// says once for each kind passed over on the way what it was and why; and, once and
    /// always (once the heap is past the quiet size), that the heap went to 4 KiB pages when
    /// the chain asked for huge ones.
    pub fn report_fallbacks(&mut self, used: PageKind, n: usize) {
        for kind in PageKind::ALL {
            let k = kind as usize;
            if !self.verbose || !self.speaking || !core::mem::take(&mut self.unreported[k]) || self.reported[k] {
                continue;
            }
            self.reported[k] = true;
            let rec = &self.kinds[k];
            let mut w = StackWriter::<400>::new();
            let why = rec.last_refusal.map_or("-", |r| r.describe());
            let _ = write!(w, "hugeheap: {kind} pages not used for {} of heap ({why}", Bytes(n * HUGE_SIZE));
            if rec.last_errno != 0 {
                let _ = write!(w, ", errno {}", rec.last_errno);
            }
            let _ = writeln!(w, "); {used} pages instead");
            w.flush_stderr();
        }
        // (The plain pages of a small heap are not a fallback.)
        let wanted_huge = self.chain.kinds().first() != Some(&PageKind::Small) && self.past_small;
        if used == PageKind::Small && wanted_huge && self.past_quiet && !self.said_small {
            self.said_small = true;
            let mut w = StackWriter::<700>::new();
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
}

#[cfg(test)]
mod tests {
    use super::cow_takeable;

    #[test]
    fn cow_takeable_is_the_largest_safe_take() {
        // Every case natively; a sparse grid under Miri, which interprets each iteration (all
        // of them took 40 s there, twice as long as every other test Miri runs together).
        let step = if cfg!(miri) { 13 } else { 1 };
        for pct in [0, 50, 100, 300] {
            for free in (0..300).step_by(step) {
                for held in (0..200).step_by(step) {
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

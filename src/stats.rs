//! What the heap holds, as one plain `Copy` snapshot with a readable `Display`.
//!
//! The per-kind byte counts are what hugeheap *committed* with each page kind: for THP that is
//! memory advised with `MADV_HUGEPAGE`, and whether the kernel really backs it with huge pages
//! is its decision (fragmentation, the `defrag` setting). The truth is the kernel's
//! `AnonHugePages`: [`KernelView::read`] reads it, beside `HugetlbPages` and `VmPTE`.

use crate::heap::storage;
pub use crate::os::KernelView;
use crate::pageheap::{self, ladder::Refusal, recollapse::Outcome};
use crate::pagekind::PageKind;
use crate::span::Span;
use crate::units::Bytes;
use core::fmt;

/// Why and how often one page kind was passed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fallback {
    /// Times the kind was passed over for a chunk it could have backed.
    pub count: usize,
    /// The last reason.
    pub reason: Option<Refusal>,
    /// The errno of the last refused `mmap`, or 0.
    pub errno: i32,
}

/// A snapshot of the heap, from [`stats()`].
///
/// ```rust,standalone_crate
/// use hugeheap::{HugeAlloc, PageKind};
///
/// #[global_allocator]
/// static A: HugeAlloc = HugeAlloc::new();
///
/// let v: Vec<Box<[u8; 100]>> = (0..100_000).map(|_| Box::new([1; 100])).collect();
/// let s = hugeheap::stats();
/// assert!(s.in_use >= 100 * 100_000 && s.committed >= s.in_use);
/// // Where the committed bytes went, by page kind (4 KiB only if nothing better was had).
/// let by_kind: usize = PageKind::ALL.iter().map(|&k| s.bytes(k)).sum();
/// assert_eq!(by_kind, s.committed);
/// println!("{s}");
/// # drop(v);
/// ```
#[derive(Clone, Copy, Default)]
pub struct Stats {
    /// First byte of the heap's reservation (the arena).
    pub base: usize,
    /// Address space reserved for the heap, bytes.
    pub reserved: usize,
    /// Bytes committed (mapped readable and writable), whatever backs them.
    pub committed: usize,
    /// Bytes in live allocations (block sizes for small objects, requested sizes for large).
    /// Small blocks freed but not yet back on their slab count too: those on their way to
    /// another thread, and those in a thread's cache of a class past 4 KiB (at most 32 KiB, or
    /// one block, a class and thread).
    pub in_use: usize,
    /// Bytes of the spans that hold them (slabs whole, large spans rounded up to 64 KiB): what
    /// the live allocations occupy, fragmentation inside slabs included.
    pub active: usize,
    /// Bytes in wholly free huge pages (backed or released).
    pub free: usize,
    /// Bytes committed with each page kind, indexed by `PageKind as usize` (read it with
    /// [`Stats::bytes`]). THP bytes are what was advised, not what the kernel gave.
    pub by_kind: [usize; 4],
    /// Mappings (VMAs) the heap is made of, metadata, the unused reservation and the pages
    /// moved where they were wanted (each a mapping of its own) included, as hugeheap made
    /// them (after many moves the kernel may keep one or two more apart: see
    /// `pageheap::relocate::MOVED_MAPPINGS_MAX`). The kernel merges neighbouring mappings whose flags agree: when the
    /// metadata mapping lies just below the arena and the arena's first piece is plain 4 KiB
    /// memory, `/proc/self/maps` shows the two as one line until that piece is advised for THP.
    pub mappings: usize,
    /// First byte of the metadata mapping (page map, descriptors, span headers and the thread
    /// heaps' pools), which lies apart from the arena.
    pub metadata_base: usize,
    /// Address space of the metadata mapping, bytes (lazily backed: `metadata` is what is
    /// touched).
    pub metadata_reserved: usize,
    /// Fallbacks taken, per kind, indexed by `PageKind as usize` (see [`Stats::fallback`]).
    pub fallbacks: [Fallback; 4],
    /// Bytes given back to the OS so far.
    pub released_total: usize,
    /// Bytes currently given back (committed but not backed).
    pub released_now: usize,
    /// Bytes of free memory the heap held that were moved, without a copy, to where fresh huge
    /// pages were wanted, so far (not faulted in afresh, and not given back; see
    /// `pageheap::relocate`).
    pub moved_total: usize,
    /// Bytes the helper thread populated ahead of use while the heap grew, so far: free huge
    /// pages, and the chunks of the program's own small mappings that `libhugeheap.so`
    /// places in huge pages (`HUGEHEAP_MMAP`; see `pageheap::prefault`).
    pub prefaulted_total: usize,
    /// Metadata bytes touched (approximate).
    pub metadata: usize,
    /// Sweeps that asked the kernel to collapse, again, the THP huge pages that copy-on-write
    /// after a fork had split (each sweep visits every backed THP huge page, and answers for
    /// the forks made before it began).
    pub recollapse_passes: usize,
    /// THP huge pages the sweeps found in 4 KiB pages (split by copy-on-write, or the small
    /// phase's once advised) and collapsed again: restored.
    pub recollapse_collapsed: usize,
    /// THP huge pages the sweeps found whole (nothing to do).
    pub recollapse_whole: usize,
    /// THP huge pages the sweeps left alone because a forked child still shared some of
    /// their memory (collapsing them would copy 2 MiB the child keeps); looked at again later.
    pub recollapse_shared: usize,
    /// THP huge pages the kernel could not collapse again when asked (or, where the pagemap
    /// cannot be read, that were left to khugepaged). Found split: these and
    /// `recollapse_collapsed`.
    pub recollapse_failures: usize,
    /// A sweep is wanted: a fork since the last completed one may have split THP huge pages
    /// (the helper thread sweeps, collapsing them once no child shares them; see
    /// `HUGEHEAP_COLLAPSE`), or a small heap's 4 KiB pages were advised for THP (swept after
    /// the next fork, collapsed by khugepaged meanwhile).
    pub recollapse_pending: bool,
    /// CPU time the helper thread has used (its sweeps, and populating ahead), microseconds.
    pub recollapse_cpu_us: u64,
    /// What the kernel says the process holds, read when the snapshot was taken: the truth
    /// behind `by_kind` (THP is advice the kernel may not follow, or may have been switched
    /// off for the process).
    pub kernel: KernelView,
}

impl Stats {
    /// Bytes committed with `kind`.
    pub fn bytes(&self, kind: PageKind) -> usize {
        self.by_kind[kind as usize]
    }

    /// How often, and why, `kind` was passed over.
    pub fn fallback(&self, kind: PageKind) -> Fallback {
        self.fallbacks[kind as usize]
    }

    /// Bytes committed with hugetlb pages of either size.
    pub fn hugetlb(&self) -> usize {
        self.bytes(PageKind::Gib1) + self.bytes(PageKind::Mib2)
    }
}

/// Takes a snapshot of the heap (all zero before the first allocation), with the kernel's view
/// of the process beside it. Takes the page heap lock and walks its page map, and the kernel
/// walks the process's page tables for `KernelView`: not for hot loops.
///
/// ```rust,standalone_crate
/// #[global_allocator]
/// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new();
///
/// let before = hugeheap::stats().in_use;
/// let v = vec![0u8; 10 << 20];
/// assert!(hugeheap::stats().in_use >= before + (10 << 20));
/// # drop(v);
/// ```
pub fn stats() -> Stats {
    Stats { kernel: KernelView::read(), ..heap_stats() }
}

/// [`stats`] without the kernel's view (whose reading walks the process's page tables): for
/// the figures programs poll through `mallctl`.
pub(crate) fn heap_stats() -> Stats {
    let front_metadata = storage::metadata_bytes();
    let guard = pageheap::process_heap::lock();
    let Some(ph) = guard.as_ref() else {
        return Stats::default();
    };
    let arena = &ph.arena;
    let (mut in_use, mut active) = (0, 0);
    ph.for_each_span(|s| {
        in_use += live_bytes(s);
        active += s.bytes();
    });
    let (metadata_base, metadata_reserved) = ph.metadata_range();
    let mut s = Stats {
        base: arena.base,
        reserved: arena.len.bytes(),
        committed: arena.frontier * crate::units::HUGE_SIZE,
        in_use,
        active,
        free: ph.counters.free_bytes,
        released_total: ph.counters.released_total,
        released_now: ph.counters.released_now,
        metadata: ph.metadata_bytes() + front_metadata,
        recollapse_passes: ph.counters.recollapse_passes,
        recollapse_collapsed: ph.counters.recollapse[Outcome::Collapsed as usize],
        recollapse_whole: ph.counters.recollapse[Outcome::Whole as usize],
        recollapse_shared: ph.counters.recollapse[Outcome::Shared as usize],
        recollapse_failures: ph.counters.recollapse[Outcome::Failed as usize],
        recollapse_pending: ph.recollapse_pending(),
        recollapse_cpu_us: crate::pageheap::collapser::cpu_us(),
        moved_total: ph.counters.moved_total,
        prefaulted_total: ph.counters.prefaulted_total,
        mappings: arena.mappings + ph.moved_mappings() + 1 + usize::from(arena.frontier < arena.len.0),
        metadata_base,
        metadata_reserved,
        ..Stats::default()
    };
    for k in PageKind::ALL {
        let r = &arena.ladder.kinds[k as usize];
        s.by_kind[k as usize] = r.bytes;
        s.fallbacks[k as usize] = Fallback { count: r.fallbacks, reason: r.last_refusal, errno: r.last_errno };
    }
    s
}

/// Gives every whole free huge page beyond `keep` bytes back to the OS now, however recently
/// it was freed (the decay and `retain` otherwise decide when); returns the bytes given back.
/// hugetlb pages stay with the process, as always. What `malloc_trim` does for C programs.
///
/// ```rust,standalone_crate
/// use hugeheap::{HugeAlloc, PageChain, PageKind};
///
/// #[global_allocator]
/// static A: HugeAlloc = HugeAlloc::new().pages(PageChain::of(&[PageKind::Thp]));
///
/// drop(vec![1u8; 256 << 20]);
/// let given_back = hugeheap::trim(0);
/// assert!(given_back >= 128 << 20, "{given_back}");
/// assert_eq!(hugeheap::stats().free, hugeheap::stats().released_now);
/// ```
pub fn trim(keep: usize) -> usize {
    pageheap::process_heap::lock().as_mut().map_or(0, |ph| ph.trim(keep))
}

/// Bytes in use in span `s`: its live blocks (a slab's `used` is a snapshot taken without its
/// owner), or the size asked for (large).
fn live_bytes(s: &Span) -> usize {
    if s.is_slab() { s.used() as usize * s.block_size as usize } else { s.size }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct PerKind<'a, T>(&'a [T; 4]);
        impl<T: fmt::Debug> fmt::Debug for PerKind<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(PageKind::ALL.iter().map(|k| (k.name(), &self.0[*k as usize]))).finish()
            }
        }
        f.debug_struct("Stats")
            .field("base", &format_args!("{:#x}", self.base))
            .field("reserved", &self.reserved)
            .field("committed", &self.committed)
            .field("in_use", &self.in_use)
            .field("active", &self.active)
            .field("free", &self.free)
            .field("by_kind", &PerKind(&self.by_kind))
            .field("mappings", &self.mappings)
            .field("metadata_base", &format_args!("{:#x}", self.metadata_base))
            .field("metadata_reserved", &self.metadata_reserved)
            .field("fallbacks", &PerKind(&self.fallbacks))
            .field("released_total", &self.released_total)
            .field("released_now", &self.released_now)
            .field("moved_total", &self.moved_total)
            .field("prefaulted_total", &self.prefaulted_total)
            .field("metadata", &self.metadata)
            .field("recollapse_passes", &self.recollapse_passes)
            .field("recollapse_collapsed", &self.recollapse_collapsed)
            .field("recollapse_whole", &self.recollapse_whole)
            .field("recollapse_shared", &self.recollapse_shared)
            .field("recollapse_failures", &self.recollapse_failures)
            .field("recollapse_pending", &self.recollapse_pending)
            .field("recollapse_cpu_us", &self.recollapse_cpu_us)
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  in use       {:>10}   in spans {:>10}   committed {:>10}   reserved (address space) {:>10}",
            Bytes(self.in_use),
            Bytes(self.active),
            Bytes(self.committed),
            Bytes(self.reserved)
        )?;
        writeln!(
            f,
            "  free         {:>10}   of which given back to the OS {} (so far in all {}); moved where wanted so far {}; populated ahead so far {}",
            Bytes(self.free),
            Bytes(self.released_now),
            Bytes(self.released_total),
            Bytes(self.moved_total),
            Bytes(self.prefaulted_total)
        )?;
        writeln!(f, "  mappings     {:>10}   metadata  {:>10}", self.mappings, Bytes(self.metadata))?;
        let looked =
            self.recollapse_collapsed + self.recollapse_whole + self.recollapse_shared + self.recollapse_failures;
        if self.recollapse_passes + looked > 0 {
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let split = self.recollapse_collapsed + self.recollapse_failures;
            writeln!(
                f,
                "  re-collapse  {} sweep{} of THP split by copy-on-write: {split} huge page{} found split, {} restored; \
                 {} found whole, {} left while a child shared them; {} ms of CPU",
                self.recollapse_passes,
                plural(self.recollapse_passes),
                plural(split),
                self.recollapse_collapsed,
                self.recollapse_whole,
                self.recollapse_shared,
                self.recollapse_cpu_us / 1000
            )?;
        }
        write!(f, "  committed as")?;
        for (i, k) in PageKind::ALL.into_iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{} {}", k.name(), Bytes(self.bytes(k)))?;
        }
        writeln!(f, " (thp: advised; the kernel's AnonHugePages says what it gave)")?;
        for k in PageKind::ALL {
            let fb = self.fallback(k);
            if fb.count > 0 {
                write!(
                    f,
                    "  fallback     {} passed over {} time{}, last because: {}",
                    k.name(),
                    fb.count,
                    if fb.count == 1 { "" } else { "s" },
                    fb.reason.map_or("-", |r| r.describe())
                )?;
                if fb.errno != 0 {
                    write!(f, " (errno {})", fb.errno)?;
                }
                writeln!(f)?;
            }
        }
        if self.kernel != KernelView::default() {
            writeln!(f, "  kernel says  {}", self.kernel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_label_every_figure() {
        let mut s = Stats { committed: 6 << 20, in_use: 100, ..Stats::default() };
        s.by_kind[PageKind::Thp as usize] = 4 << 20;
        s.by_kind[PageKind::Small as usize] = 2 << 20;
        s.fallbacks[PageKind::Mib2 as usize] = Fallback { count: 2, reason: Some(Refusal::PoolEmpty), errno: 0 };
        let debug = format!("{s:?}");
        assert!(debug.contains(r#"by_kind: {"1g": 0, "2m": 0, "thp": 4194304, "4k": 2097152}"#), "{debug}");
        assert!(debug.contains(r#""2m": Fallback { count: 2, reason: Some(PoolEmpty)"#), "{debug}");
        let text = s.to_string();
        assert!(text.contains("committed as 1g 0 B, 2m 0 B, thp 4.0 MiB, 4k 2.0 MiB (thp: advised"), "{text}");
        assert!(text.contains("2m passed over 2 times, last because: pool empty"), "{text}");
    }
}

//! What the heap holds, as one plain `Copy` snapshot with a readable `Display`.
//!
//! "THP-advised" bytes are committed with `MADV_HUGEPAGE`; whether the kernel really backs
//! them with huge pages is its decision (fragmentation, `defrag` setting). The truth is the
//! kernel's `AnonHugePages`: [`KernelView::read`] reads it, beside `HugetlbPages` and `VmPTE`.

pub use crate::os::probe::KernelView;
use crate::os::{PageKind, Refusal};
use crate::runtime;
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

/// A snapshot of the heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// First byte of the heap's reservation (the arena).
    pub base: usize,
    /// Address space reserved for the heap.
    pub reserved: usize,
    /// Bytes committed (mapped readable and writable), whatever backs them.
    pub committed: usize,
    /// Bytes in live allocations (block sizes for small objects, requested sizes for large).
    pub in_use: usize,
    /// Bytes in wholly free huge pages (backed or released).
    pub free: usize,
    /// Bytes committed with each page kind, indexed by `PageKind as usize`
    /// (hugetlb 1 GiB, hugetlb 2 MiB, THP-advised, 4 KiB).
    pub by_kind: [usize; 4],
    /// Mappings (VMAs) the heap is made of, metadata and the unused reservation included.
    pub mappings: usize,
    /// Fallbacks taken, per kind.
    pub fallbacks: [Fallback; 4],
    /// Bytes given back to the OS so far.
    pub released_total: usize,
    /// Bytes currently given back (committed but not backed).
    pub released_now: usize,
    /// Metadata bytes touched (approximate).
    pub metadata: usize,
}

impl Stats {
    /// Bytes committed with `kind`.
    pub fn bytes(&self, kind: PageKind) -> usize {
        self.by_kind[kind as usize]
    }

    /// Bytes committed with hugetlb pages of either size.
    pub fn hugetlb(&self) -> usize {
        self.bytes(PageKind::Gib1) + self.bytes(PageKind::Mib2)
    }
}

/// Takes a snapshot (takes the page heap lock and walks its page map: not for hot loops).
pub fn stats() -> Stats {
    let rt = runtime::lock();
    let Some(ph) = rt.heap.as_ref() else {
        return Stats::default();
    };
    let arena = &ph.arena;
    let mut s = Stats {
        base: arena.base,
        reserved: arena.len.bytes(),
        committed: arena.frontier * crate::units::HUGE_SIZE,
        in_use: ph.bytes_in_use(),
        free: ph.counters.free_bytes,
        released_total: ph.counters.released_total,
        released_now: ph.counters.released_now,
        metadata: ph.metadata_bytes(),
        mappings: arena.mappings + 1 + usize::from(arena.frontier < arena.len.0),
        ..Stats::default()
    };
    for k in PageKind::ALL {
        let r = &arena.kinds[k as usize];
        s.by_kind[k as usize] = r.bytes;
        s.fallbacks[k as usize] = Fallback { count: r.fallbacks, reason: r.last_refusal, errno: r.last_errno };
    }
    s
}

struct Mib(usize);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v >= 1 << 30 {
            write!(f, "{}.{:02} GiB", v >> 30, ((v & ((1 << 30) - 1)) * 100) >> 30)
        } else {
            write!(f, "{}.{} MiB", v >> 20, ((v & ((1 << 20) - 1)) * 10) >> 20)
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  in use      {:>12}   committed {:>12}   reserved {:>12}",
            Mib(self.in_use),
            Mib(self.committed),
            Mib(self.reserved)
        )?;
        writeln!(
            f,
            "  free        {:>12}   released  {:>12}   (given back so far {})",
            Mib(self.free),
            Mib(self.released_now),
            Mib(self.released_total)
        )?;
        writeln!(f, "  mappings    {:>12}   metadata  {:>12}", self.mappings, Mib(self.metadata))?;
        write!(f, "  backing    ")?;
        for k in PageKind::ALL {
            write!(f, " {}={}", k.name(), Mib(self.bytes(k)))?;
        }
        writeln!(f)?;
        for k in PageKind::ALL {
            let fb = &self.fallbacks[k as usize];
            if fb.count > 0 {
                write!(
                    f,
                    "  fallback    {} passed over {} time(s), last: {}",
                    k.name(),
                    fb.count,
                    fb.reason.map_or("-", |r| r.describe())
                )?;
                if fb.errno != 0 {
                    write!(f, " (errno {})", fb.errno)?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

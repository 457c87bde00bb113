//! Huge page descriptors: what the page heap keeps per 2 MiB huge page of the arena.

use super::filler::FillerSlot;
use crate::pagekind::PageKind;

/// A huge page below the frontier that is not yet committed (only before growth records it;
/// never seen by the invariant checks).
#[cfg(any(test, feature = "check"))]
pub const UNCOMMITTED: u8 = 0;
/// Wholly free: its bit is set in the huge map; backed, or released.
pub const FREE: u8 = 1;
/// Partly used: some of its 64 KiB pages hold spans (the filler's).
pub const FILLER: u8 = 2;
/// All 32 pages belong to one large span.
pub const LARGE: u8 = 3;

/// The descriptor of one huge page (all zero: uncommitted).
#[repr(C)]
#[derive(Default)]
pub struct HpDesc {
    /// Bit `i`: page `i` is in use (filler); all ones for a large huge page.
    pub used: u32,
    /// Bit `i`: page `i` was handed out since it was last zero (committed or released).
    pub dirty: u32,
    /// Filler list links.
    pub next: u32,
    /// Filler list links.
    pub prev: u32,
    /// `FREE`, `FILLER` or `LARGE` (or `UNCOMMITTED`).
    pub state: u8,
    /// The page kind that backs it (`PageKind as u8`).
    pub kind: u8,
    /// The filler list it is in (0: none).
    pub list: u8,
    /// Given back to the OS (`FREE` only): not backed until it is used again.
    pub released: bool,
    /// When it last became wholly free (the backing's clock, ms), for the decay.
    pub freed_at: u32,
    /// Lent to the helper thread, which looks at it, collapses it or populates it outside
    /// the lock: not to be released, moved or lent again meanwhile.
    pub lent: bool,
    /// Populated ahead while free ([`prefault`](super::prefault)): it holds memory (`dirty`
    /// is all ones, so every count takes it as held) that reads as zero. Only a `FREE`,
    /// unreleased THP page is so; [`claim`](super::PageHeap) turns it back into a page whose
    /// `dirty` bits say what was handed out, none yet.
    pub zero: bool,
    /// Where the offset of the mapping that holds it points, in huge pages from this one: 0
    /// for its own, else the memory was moved here from a mapping elsewhere (`relocate`),
    /// whose offset the kernel keeps. The kernel merges neighbouring mappings only where the
    /// offsets follow on, so a THP huge page whose shift differs from its THP neighbour's
    /// starts a mapping of its own.
    pub shift: i32,
}

impl HpDesc {
    /// Backed by anonymous memory (THP or 4 KiB pages), which can be given back; not hugetlb.
    pub fn is_anon(&self) -> bool {
        !PageKind::ALL[self.kind as usize].is_hugetlb()
    }

    /// Backed by THP memory.
    pub fn is_thp(&self) -> bool {
        self.kind == PageKind::Thp as u8
    }

    /// Holds memory the heap could give back or move now: handed out since it was last zero,
    /// not released, and not being looked at by the re-collapse helper.
    pub fn holds_memory(&self) -> bool {
        !self.released && !self.lent && self.dirty != 0
    }
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

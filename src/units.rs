//! Units of the page heap, as newtypes so that no bare count of "pages" crosses a boundary
//! without saying which page it means.
//!
//! - a [`Page`] is 64 KiB: the grain of spans handed to the front end;
//! - a [`HugePage`] is 2 MiB: the grain of backing, of release to the OS and of the filler;
//! - 1 GiB is the grain of hugetlb 1 GiB chunks.

/// log2 of the page size (64 KiB).
pub const PAGE_SHIFT: u32 = 16;
/// Bytes in a page.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// log2 of the huge page size (2 MiB).
pub const HUGE_SHIFT: u32 = 21;
/// Bytes in a huge page.
pub const HUGE_SIZE: usize = 1 << HUGE_SHIFT;
/// Pages in a huge page (32: one `u32` bitmap per huge page).
pub const PAGES_PER_HUGE: usize = HUGE_SIZE / PAGE_SIZE;
/// log2 of a gigantic (1 GiB) page.
pub const GIB_SHIFT: u32 = 30;
/// Bytes in a gigantic page.
pub const GIB: usize = 1 << GIB_SHIFT;
/// Huge pages in a gigantic page.
pub const HUGE_PER_GIB: usize = GIB / HUGE_SIZE;

/// A count or index of 64 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Page(pub usize);

/// A count or index of 2 MiB huge pages (an index counts from the arena base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HugePage(pub usize);

impl Page {
    /// Pages needed to hold `bytes` (rounded up). `bytes` must be below `usize::MAX - PAGE_SIZE`.
    #[inline]
    pub const fn covering(bytes: usize) -> Page {
        Page(bytes.div_ceil(PAGE_SIZE))
    }
    /// The byte length of this many pages.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.0 << PAGE_SHIFT
    }
}

impl HugePage {
    /// Huge pages needed to hold `bytes` (rounded up).
    #[inline]
    pub const fn covering(bytes: usize) -> HugePage {
        HugePage(bytes.div_ceil(HUGE_SIZE))
    }
    /// The byte length of this many huge pages.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.0 << HUGE_SHIFT
    }
}

/// Rounds `x` up to a multiple of `a`, a power of two. `None` on overflow.
#[inline]
pub const fn align_up(x: usize, a: usize) -> Option<usize> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_rounds_up() {
        assert_eq!(Page::covering(0), Page(0));
        assert_eq!(Page::covering(1), Page(1));
        assert_eq!(Page::covering(PAGE_SIZE), Page(1));
        assert_eq!(Page::covering(PAGE_SIZE + 1), Page(2));
        assert_eq!(HugePage::covering(HUGE_SIZE * 3 - 1), HugePage(3));
        assert_eq!(HugePage(2).bytes(), 4 << 20);
        assert_eq!(PAGES_PER_HUGE, 32);
        assert_eq!(HUGE_PER_GIB, 512);
    }

    #[test]
    fn align_up_overflow_is_none() {
        assert_eq!(align_up(5, 4), Some(8));
        assert_eq!(align_up(8, 8), Some(8));
        assert_eq!(align_up(usize::MAX - 2, 16), None);
    }
}

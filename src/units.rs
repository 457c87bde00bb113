//! Units of the page heap, as newtypes so that no bare count of "pages" crosses a boundary
//! without saying which page it means.
//!
//! - a [`Page`] is 64 KiB: the grain of spans handed to the front end;
//! - a [`HugePage`] is 2 MiB: the grain of backing, of release to the OS and of the filler;
//! - 1 GiB is the grain of hugetlb 1 GiB chunks.

/// Bytes in the kernel's base page (x86-64): the grain of page tables and of copy-on-write.
pub const OS_PAGE_SIZE: usize = 4096;
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
}

impl HugePage {
    /// The byte length of this many huge pages.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.0 << HUGE_SHIFT
    }
}

/// A byte count in the largest unit that keeps it readable: `0 B`, `12 KiB`, `3.4 MiB`,
/// `1.26 GiB`.
pub struct Bytes(pub usize);

impl core::fmt::Display for Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        let v = self.0;
        // Formatted into a stack buffer first, so that `pad` can align it without allocating
        // (the exit report runs inside the allocator).
        let mut s = StackStr { buf: [0; 24], len: 0 };
        // Rounded to the nearest hundredth (GiB) or tenth (MiB).
        let fixed = |shift: u32, scale: u128| (v as u128 * scale + (1u128 << (shift - 1))) >> shift;
        let _ = if v >= 1 << 30 {
            let h = fixed(30, 100);
            write!(s, "{}.{:02} GiB", h / 100, h % 100)
        } else if v >= 1 << 20 {
            let t = fixed(20, 10);
            write!(s, "{}.{} MiB", t / 10, t % 10)
        } else if v >= 1 << 10 {
            write!(s, "{} KiB", v >> 10)
        } else {
            write!(s, "{v} B")
        };
        f.pad(&s)
    }
}

struct StackStr {
    buf: [u8; 24],
    len: usize,
}

impl core::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl core::ops::Deref for StackStr {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// A size in the syntax the `HUGEHEAP_*` variables accept, exact: `64M`, `4G`, `1536K`,
/// `100` (bytes).
pub struct SizeArg(pub usize);

impl core::fmt::Display for SizeArg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if v != 0 && v % (1 << shift) == 0 {
                return write!(f, "{}{unit}", v >> shift);
            }
        }
        write!(f, "{v}")
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
        assert_eq!(HugePage(2).bytes(), 4 << 20);
        assert_eq!(PAGES_PER_HUGE, 32);
        assert_eq!(HUGE_PER_GIB, 512);
    }

    #[test]
    fn size_args_are_exact() {
        let show = |v| SizeArg(v).to_string();
        assert_eq!(show(64 << 20), "64M");
        assert_eq!(show(4 << 30), "4G");
        assert_eq!(show(1536 << 10), "1536K");
        assert_eq!(show(100), "100");
        assert_eq!(show(0), "0");
    }

    #[test]
    fn bytes_read_in_their_unit() {
        let show = |v| format!("[{:>9}]", Bytes(v));
        assert_eq!(show(0), "[      0 B]");
        assert_eq!(show(1023), "[   1023 B]");
        assert_eq!(show(12 << 10), "[   12 KiB]");
        assert_eq!(show((3 << 20) + (1 << 19)), "[  3.5 MiB]");
        assert_eq!(show(1_352_914_698), "[ 1.26 GiB]");
    }
}

//! The kinds of page that can back the heap, best first. Plain data: the OS layer maps them,
//! the page heap's ladder chooses among them, `stats()` reports by them.

use core::fmt;

/// The kinds of page that can back a chunk of the heap, best first.
///
/// ```
/// use hugeheap::PageKind;
///
/// assert_eq!(PageKind::ALL, [PageKind::Gib1, PageKind::Mib2, PageKind::Thp, PageKind::Small]);
/// assert_eq!(PageKind::Mib2.name(), "2m"); // the name HUGEHEAP_PAGES uses
/// assert!(PageKind::Gib1.is_hugetlb() && !PageKind::Thp.is_hugetlb());
/// assert_eq!(PageKind::Thp.page_size(), 2 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// hugetlb, 1 GiB pages (`MAP_HUGETLB | MAP_HUGE_1GB`).
    Gib1 = 0,
    /// hugetlb, 2 MiB pages (`MAP_HUGETLB | MAP_HUGE_2MB`).
    Mib2 = 1,
    /// Transparent huge pages: anonymous memory advised with `MADV_HUGEPAGE`.
    Thp = 2,
    /// Plain 4 KiB pages (`MADV_NOHUGEPAGE` where THP is `always`, so that `4k` means it).
    Small = 3,
}

impl PageKind {
    /// All kinds, best first; `ALL[k as usize] == k`.
    pub const ALL: [PageKind; 4] = [PageKind::Gib1, PageKind::Mib2, PageKind::Thp, PageKind::Small];

    /// The name used in `HUGEHEAP_PAGES` and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            PageKind::Gib1 => "1g",
            PageKind::Mib2 => "2m",
            PageKind::Thp => "thp",
            PageKind::Small => "4k",
        }
    }

    /// Whether this kind comes from a hugetlb pool.
    pub const fn is_hugetlb(self) -> bool {
        matches!(self, PageKind::Gib1 | PageKind::Mib2)
    }

    /// The size of one page of this kind (THP and 4k memory is committed in 2 MiB units).
    pub const fn page_size(self) -> usize {
        match self {
            PageKind::Gib1 => 1 << 30,
            PageKind::Mib2 | PageKind::Thp => 2 << 20,
            PageKind::Small => 4 << 10,
        }
    }

    /// The sysfs directory of this kind's hugetlb pool (below the root of /sys).
    pub const fn pool_dir(self) -> &'static str {
        match self {
            PageKind::Gib1 => "sys/kernel/mm/hugepages/hugepages-1048576kB/",
            _ => "sys/kernel/mm/hugepages/hugepages-2048kB/",
        }
    }
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

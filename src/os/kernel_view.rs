//! What the kernel says this process holds: the truth behind hugeheap's own counters.

use super::files::{count_lines, field_kib, read_file};

/// What the kernel reports about this process's memory, in bytes: the truth behind
/// [`Stats`](crate::Stats)' per-kind counts (THP is advice the kernel may not follow).
///
/// ```rust,standalone_crate
/// #[global_allocator]
/// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new();
///
/// let v = vec![1u8; 64 << 20];
/// let k = hugeheap::KernelView::read();
/// // Huge pages of either kind, as the kernel counts them (0 where THP is off and no pool).
/// let huge = k.anon_huge + k.hugetlb;
/// assert!(k.rss + k.hugetlb >= 64 << 20 && k.vm_pte > 0 && huge <= k.rss + k.hugetlb);
/// println!("{k}"); // THP 64.0 MiB (AnonHugePages), hugetlb 0 B (HugetlbPages), ...
/// # drop(v);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelView {
    /// `AnonHugePages` of `/proc/self/smaps_rollup`: anonymous memory in transparent huge pages.
    pub anon_huge: usize,
    /// `HugetlbPages` of `/proc/self/status`: hugetlb memory mapped by the process.
    pub hugetlb: usize,
    /// `VmPTE` of `/proc/self/status`: page-table size.
    pub vm_pte: usize,
    /// `VmRSS` of `/proc/self/status`.
    pub rss: usize,
    /// Lines of `/proc/self/maps`: the number of mappings (VMAs).
    pub mappings: usize,
}

impl KernelView {
    /// Reads the kernel's view of this process. Allocates nothing (stack buffers).
    pub fn read() -> KernelView {
        let mut buf = [0u8; 8192];
        let mut v = KernelView::default();
        if let Some(n) = read_file(c"/proc/self/smaps_rollup", &mut buf) {
            v.anon_huge = field_kib(&buf[..n], b"AnonHugePages:").unwrap_or(0) * 1024;
        }
        if let Some(n) = read_file(c"/proc/self/status", &mut buf) {
            let s = &buf[..n];
            v.hugetlb = field_kib(s, b"HugetlbPages:").unwrap_or(0) * 1024;
            v.vm_pte = field_kib(s, b"VmPTE:").unwrap_or(0) * 1024;
            v.rss = field_kib(s, b"VmRSS:").unwrap_or(0) * 1024;
        }
        v.mappings = count_lines(c"/proc/self/maps");
        v
    }
}

impl core::fmt::Display for KernelView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use crate::units::Bytes;
        write!(
            f,
            "THP {} (AnonHugePages), hugetlb {} (HugetlbPages), page tables {} (VmPTE), RSS {} (VmRSS, \
             hugetlb not included), {} mappings",
            Bytes(self.anon_huge),
            Bytes(self.hugetlb),
            Bytes(self.vm_pte),
            Bytes(self.rss),
            self.mappings
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_view_reads_this_process() {
        let v = KernelView::read();
        assert!(v.rss > 0);
        assert!(v.mappings > 5);
    }
}

//! hugetlb pools in tests: what they can give, and resizing one for a test (root only), put
//! back as it was afterwards. Shared by the library's and the CLI's tests (`#[path]`).
#![allow(dead_code)]

use super::skip;

/// Free pages of a hugetlb pool that a new mapping could reserve now (`None` without sysfs),
/// as the library reads its pools (what the pool may still grow by counts too).
pub fn pool_free(kib: usize) -> Option<usize> {
    let kind = if kib == 1 << 20 { hugeheap::PageKind::Gib1 } else { hugeheap::PageKind::Mib2 };
    hugeheap::internal::PoolInfo::read_available(b"/", kind)
}

/// A hugetlb pool resized for a test (root only), put back as it was on drop.
pub struct PoolGuard {
    kib: usize,
    original: usize,
}

impl PoolGuard {
    fn path(kib: usize, file: &str) -> String {
        format!("/sys/kernel/mm/hugepages/hugepages-{kib}kB/{file}")
    }

    fn read(kib: usize, file: &str) -> Option<usize> {
        std::fs::read_to_string(Self::path(kib, file)).ok()?.trim().parse().ok()
    }

    /// Takes hold of the `kib` pool (`None`, with the reason printed, where it cannot be
    /// resized: no such pool, or not root).
    pub fn take(kib: usize) -> Option<PoolGuard> {
        let Some(original) = Self::read(kib, "nr_hugepages") else {
            skip(
                &format!("pool-{}", if kib == 2048 { "2m" } else { "1g" }),
                &format!("no {kib} KiB hugetlb pool on this kernel"),
            );
            return None;
        };
        if std::fs::OpenOptions::new().write(true).open(Self::path(kib, "nr_hugepages")).is_err() {
            skip("root", &format!("cannot resize the {kib} KiB hugetlb pool"));
            return None;
        }
        Some(PoolGuard { kib, original })
    }

    /// Resizes the pool so that `free` pages are available to a new mapping; returns how many
    /// are (the kernel may grant fewer).
    pub fn set_available(&self, free: usize) -> usize {
        let now = pool_free(self.kib).unwrap_or(0);
        let total = Self::read(self.kib, "nr_hugepages").unwrap_or(0);
        let want = (total + free).saturating_sub(now);
        let _ = std::fs::write(Self::path(self.kib, "nr_hugepages"), want.to_string());
        pool_free(self.kib).unwrap_or(0)
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::path(self.kib, "nr_hugepages"), self.original.to_string());
    }
}

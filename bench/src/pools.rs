//! A benchmark's hold on the hugetlb pools (`--pool-2m`, `--pool-1g`; root): sets them
//! for each contestant, those that use pools getting the pages asked for and the others the
//! pools as they were, and puts them back when dropped, whatever happens. The pools are read
//! and resized through the command's own (`hugeheap pool`).

use hugeheap::PageKind;
use hugeheap_cli::pool::sysfs;
use std::path::Path;

/// The run's hold on the hugetlb pools: sets them per contestant, restores them when dropped.
pub struct Pools {
    sys: sysfs::Pools,
    want: (usize, usize),
    old: (usize, usize),
}

impl Pools {
    /// Takes hold of the pools, to give `want` (2 MiB, 1 GiB pages) to the contestants that use
    /// them; `None` where they cannot be read.
    pub fn take(want: (usize, usize)) -> Option<Pools> {
        let sys = sysfs::Pools::at(Path::new("/"));
        let old = (sys.read(PageKind::Mib2)?.total, sys.read(PageKind::Gib1).map_or(0, |p| p.total));
        Some(Pools { sys, want, old })
    }

    /// Sets the pools for a contestant; returns a note when the kernel gave fewer pages.
    pub fn set(&self, pooled: bool) -> Option<String> {
        let (p2, p1) = if pooled { self.want } else { self.old };
        self.set_exact(p2, p1)
    }

    /// Sets the pools to `p2` 2 MiB and `p1` 1 GiB pages; returns a note when the kernel gave
    /// fewer.
    pub fn set_exact(&self, p2: usize, p1: usize) -> Option<String> {
        let mut short = Vec::new();
        for (kind, n, label) in [(PageKind::Mib2, p2, "2m"), (PageKind::Gib1, p1, "1g")] {
            let Some(now) = self.sys.read(kind).map(|p| p.total) else {
                if n > 0 {
                    short.push(format!("no {label} pool on this kernel"));
                }
                continue;
            };
            let got = if now != n { self.sys.resize(kind, n).unwrap_or(now) } else { now };
            if got < n {
                short.push(format!("{label} pool {got}/{n}"));
            }
        }
        (!short.is_empty()).then(|| short.join(", "))
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        let _ = self.sys.resize(PageKind::Gib1, self.old.1);
        let _ = self.sys.resize(PageKind::Mib2, self.old.0);
    }
}

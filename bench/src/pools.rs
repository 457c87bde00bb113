//! A benchmark's hold on the hugetlb pools (`--pool-2m`, `--pool-1g`; root): sets them
//! for each contestant, those that use pools getting the pages asked for and the others the
//! pools as they were, and puts them back when dropped, whatever happens.

const POOL_2M: &str = "/proc/sys/vm/nr_hugepages";
const POOL_1G: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";

fn read_pool(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The run's hold on the hugetlb pools: sets them per contestant, restores them when dropped.
pub struct Pools {
    want: (usize, usize),
    old: (usize, usize),
}

impl Pools {
    /// Takes hold of the pools, to give `want` (2 MiB, 1 GiB pages) to the contestants that use
    /// them; `None` where they cannot be read.
    pub fn take(want: (usize, usize)) -> Option<Pools> {
        let old = (read_pool(POOL_2M)?, read_pool(POOL_1G).unwrap_or(0));
        Some(Pools { want, old })
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
        for (path, n, label) in [(POOL_2M, p2, "2m"), (POOL_1G, p1, "1g")] {
            if read_pool(path) != Some(n) {
                let _ = std::fs::write(path, n.to_string());
            }
            let got = read_pool(path).unwrap_or(0);
            if got < n {
                short.push(format!("{label} pool {got}/{n}"));
            }
        }
        (!short.is_empty()).then(|| short.join(", "))
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        let _ = std::fs::write(POOL_1G, self.old.1.to_string());
        let _ = std::fs::write(POOL_2M, self.old.0.to_string());
    }
}

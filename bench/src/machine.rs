//! What the machine offers a run, read once at its start as `hugeheap doctor` reads it (the
//! library's own probe), plus the CPUs and the kernel's DAMON monitors: the line every report
//! opens with.

use serde::Serialize;

/// What the machine offered when the run started.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Kernel release.
    pub kernel: String,
    /// THP mode in force.
    pub thp: String,
    /// THP defrag setting in force.
    pub thp_defrag: String,
    /// 2 MiB pool: pages, free pages.
    pub pool_2m: (usize, usize),
    /// 1 GiB pool: pages, free pages.
    pub pool_1g: (usize, usize),
    /// CPUs.
    pub cpus: usize,
    /// The kernel's DAMON monitors running (their kdamond threads), see [`crate::kdamonds`].
    pub kdamonds: usize,
}

impl Machine {
    /// Reads it as `hugeheap doctor` does (the library's own probe), plus the CPUs and the
    /// kernel's DAMON monitors.
    pub fn read() -> Machine {
        let r = hugeheap_cli::doctor::examine(std::path::Path::new("/"));
        Machine {
            kernel: r.kernel,
            thp: r.thp,
            thp_defrag: r.thp_defrag,
            pool_2m: (r.pool_2m.total, r.pool_2m.free),
            pool_1g: (r.pool_1g.total, r.pool_1g.free),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            kdamonds: crate::kdamonds().len(),
        }
    }

    /// One sentence: kernel, CPUs, THP, the pools, and the kernel's DAMON monitor if it runs.
    pub fn describe(&self) -> String {
        format!(
            "Linux {}, {} CPUs, THP {} (defrag {}), hugetlb pools at start: 2 MiB {} pages ({} free), 1 GiB {} pages \
             ({} free){}.",
            self.kernel,
            self.cpus,
            self.thp,
            self.thp_defrag,
            self.pool_2m.0,
            self.pool_2m.1,
            self.pool_1g.0,
            self.pool_1g.1,
            if self.kdamonds > 0 { "; the kernel's DAMON monitor is running (kdamond)" } else { "" }
        )
    }
}

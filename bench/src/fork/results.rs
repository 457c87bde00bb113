//! What a run of the fork benchmark is asked for, and what it finds: one row per contestant
//! and size.

use super::child::Measured;
use serde::Serialize;
use std::path::PathBuf;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Heap sizes, bytes.
    pub sizes: Vec<usize>,
    /// fork() samples per contestant and size, in each round.
    pub forks: usize,
    /// Rounds at the sizes up to [`Options::ROUNDS_UP_TO`]: each contestant runs once per
    /// round, in a fresh process, the contestants taking turns; the fork and fork+exec figures
    /// are the median of the rounds' medians. One process's median follows where the machine's
    /// noise fell during its run (the same contestant differs by a quarter between runs here),
    /// so a comparison between contestants needs several.
    pub rounds: usize,
    /// fork+exec samples.
    pub execs: usize,
    /// Size at which the sustained run happens (None: no sustained run).
    pub sustained_size: Option<usize>,
    /// Sustained cycles.
    pub sustained_cycles: usize,
    /// Measure copy-on-write.
    pub cow: bool,
    /// Contestant names to run (empty: all).
    pub only: Vec<String>,
    /// Where the CSV, JSON and SVG go.
    pub out_dir: PathBuf,
    /// hugetlb pool sizes (2 MiB, 1 GiB pages) to give the contestants that use pools; the
    /// others run with the pools as they were (the run then owns the pools: root only).
    pub pools: Option<(usize, usize)>,
}

impl Options {
    /// The largest heap measured in several rounds (a larger one takes long to build, and
    /// its forks, milliseconds each, vary less).
    pub const ROUNDS_UP_TO: usize = 2 << 30;

    /// Rounds at heap size `size`.
    pub fn rounds_at(&self, size: usize) -> usize {
        if size <= Self::ROUNDS_UP_TO { self.rounds.max(1) } else { 1 }
    }

    /// The full run: sizes 0, 64M, 512M, 2G, 8G; 100 forks, 3 rounds up to 2G; sustained 1,000
    /// cycles at 512M.
    pub fn full() -> Options {
        Options {
            sizes: vec![0, 64 << 20, 512 << 20, 2 << 30, 8 << 30],
            forks: 100,
            rounds: 3,
            execs: 50,
            sustained_size: Some(512 << 20),
            sustained_cycles: 1000,
            cow: true,
            only: Vec::new(),
            out_dir: PathBuf::from("hugeheap-bench"),
            pools: None,
        }
    }

    /// A few minutes: sizes 64M and 512M, fewer samples (3 rounds), 100 sustained cycles.
    pub fn quick() -> Options {
        Options { sizes: vec![64 << 20, 512 << 20], forks: 30, execs: 15, sustained_cycles: 100, ..Options::full() }
    }
}

/// One cell of the results: a contestant at a size.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Contestant name.
    pub contestant: &'static str,
    /// Environment it ran with.
    pub env: String,
    /// Heap size asked for, bytes.
    pub size: usize,
    /// The figures, when it ran.
    pub measured: Option<Measured>,
    /// The heap's page kinds as the kernel counted them (`2m 97% thp 2%`), when it ran.
    pub got: Option<String>,
    /// It did not get the page kind its name promises (less than half of its memory).
    pub short: bool,
    /// Why it did not run or did not finish.
    pub note: Option<String>,
}

/// What `name` measured at `size` among `rows`, if it ran.
pub fn measured<'a>(rows: &'a [Row], name: &str, size: usize) -> Option<&'a Measured> {
    rows.iter().find(|r| r.contestant == name && r.size == size)?.measured.as_ref()
}

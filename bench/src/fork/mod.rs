//! The fork benchmark: hugeheap beside every alternative a user would consider, in one run, on
//! one machine. Each contestant runs in a fresh process (the shared harness), so heaps never
//! mix; see `child.rs` for the workload and the figures, `report.rs` for the table, CSV and
//! JSON, `chart.rs` for the chart; `super::pools` holds the hugetlb pools a run may own.

pub mod chart;
pub mod child;
pub mod heap;

pub mod report;
pub mod spawn;

use super::contestant::{Contestant, FORK_CONTESTANTS, Method};
use super::harness;
use super::pools::Pools;
use child::{ForkSpec, Measured};
use serde::Serialize;
use std::path::PathBuf;

/// The kind of this benchmark's child jobs (see `crate::jobs`).
pub const JOB: &str = "fork";

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Heap sizes, bytes.
    pub sizes: Vec<usize>,
    /// fork() samples per contestant and size.
    pub forks: usize,
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
    /// The full run: sizes 0, 64M, 512M, 2G, 8G; 100 forks; sustained 1,000 cycles at 512M.
    pub fn full() -> Options {
        Options {
            sizes: vec![0, 64 << 20, 512 << 20, 2 << 30, 8 << 30],
            forks: 100,
            execs: 50,
            sustained_size: Some(512 << 20),
            sustained_cycles: 1000,
            cow: true,
            only: Vec::new(),
            out_dir: PathBuf::from("hugeheap-bench"),
            pools: None,
        }
    }

    /// About a minute: sizes 64M and 512M, fewer samples, 100 sustained cycles.
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

/// Whether a heap of `size` fits: the heap, allocator overhead and copy-on-write copies, about
/// 1.6 times the heap.
fn fits(size: usize, pooled: bool) -> Result<(), String> {
    // Free for it: MemAvailable, plus the pools' free pages when it takes its heap from them.
    let (need, avail) = (size / 10 * 16, super::free_bytes("MemAvailable:", pooled));
    if need > avail {
        Err(format!("skipped: needs ~{} MiB, {} MiB available", need >> 20, avail >> 20))
    } else {
        Ok(())
    }
}

/// Runs the benchmark: every contestant at every size, then the report.
pub fn run(opts: &Options) -> std::io::Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let chosen: Vec<&Contestant> =
        FORK_CONTESTANTS.iter().filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == c.name)).collect();
    let mut plan: Vec<(&Contestant, usize)> = Vec::new();
    if chosen.iter().any(|c| c.name == "empty") {
        plan.push((chosen[0], 0));
    }
    for &size in &opts.sizes {
        for &c in chosen.iter().filter(|c| c.name != "empty") {
            if size > 0 || c.method == Method::Fork {
                plan.push((c, size));
            }
        }
    }
    let bar = super::progress(plan.len());
    let pools = opts.pools.and_then(Pools::take);
    if opts.pools.is_some() && pools.is_none() {
        eprintln!("hugeheap bench: cannot read the hugetlb pools; running with them as they are");
    }
    let machine = crate::machine::Machine::read();
    eprint!("{}", report::run_header(&machine, &chosen, opts));
    let mut rows = Vec::new();
    for (c, size) in plan {
        bar.set_message(format!("{} at {}", c.name, report::size_name(size)));
        let env = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let mut row = Row { contestant: c.name, env, size, measured: None, got: None, short: false, note: None };
        let pooled = c.uses_pools && pools.is_some();
        let pool_note = pools.as_ref().and_then(|p| p.set(pooled));
        match fits(size, pooled) {
            Err(why) => row.note = Some(why),
            Ok(()) => match run_child(&exe, c, size, opts) {
                Ok(m) => {
                    row.got = Some(report::got(&m));
                    row.short = size > 0 && m.share(c.promises) < 0.5;
                    row.measured = Some(m);
                }
                Err(why) => row.note = Some(why),
            },
        }
        if let Some(n) = pool_note {
            row.note = Some(row.note.map_or(n.clone(), |w| format!("{w}; {n}")));
        }
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(pools);
    report::write(&rows, &machine, &chosen, opts)?;
    Ok(rows)
}

fn run_child(exe: &std::path::Path, c: &Contestant, size: usize, opts: &Options) -> Result<Measured, String> {
    let spec = ForkSpec {
        size,
        forks: if c.method == Method::Fork { opts.forks } else { 0 },
        execs: opts.execs,
        sustained: if opts.sustained_size == Some(size) && c.method == Method::Fork && c.name != "empty" {
            opts.sustained_cycles
        } else {
            0
        },
        cow: opts.cow,
        method: c.method,
    };
    harness::run_child(exe, JOB, &spec, c)
}

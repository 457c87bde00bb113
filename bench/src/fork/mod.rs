//! The fork benchmark: hugeheap beside every alternative a user would consider, in one run, on
//! one machine. Each contestant runs in a fresh process (the shared harness), so heaps never
//! mix; see `child.rs` for the workload and the figures, `report.rs` for the table, CSV and
//! JSON, `chart.rs` for the chart; `super::pools` holds the hugetlb pools a run may own.

pub mod chart;
pub mod child;
pub mod heap;
pub mod report;
pub mod results;
pub mod spawn;

pub use results::{Options, Row, measured};

use super::contestant::{Contestant, FORK_CONTESTANTS, Method};
use super::harness;
use super::pools::Pools;
use child::{ForkSpec, Measured};

/// The kind of this benchmark's child jobs (see `crate::jobs`).
pub const JOB: &str = "fork";

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
        eprintln!("hugeheap-bench fork: cannot read the hugetlb pools; running with them as they are");
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

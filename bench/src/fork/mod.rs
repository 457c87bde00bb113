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

/// Runs the benchmark: every contestant at every size, in rounds (the contestants taking turns;
/// see [`Options::rounds`]), then the report.
pub fn run(opts: &Options) -> std::io::Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let chosen: Vec<&Contestant> =
        FORK_CONTESTANTS.iter().filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == c.name)).collect();
    // (contestant, size, round); a contestant's first round comes before any second one.
    let mut plan: Vec<(&Contestant, usize, usize)> = Vec::new();
    for round in 0..opts.rounds.max(1) {
        if chosen.iter().any(|c| c.name == "empty") && round < opts.rounds_at(0) {
            plan.push((chosen[0], 0, round));
        }
        let order = round_order(&chosen, round);
        for &size in opts.sizes.iter().filter(|&&s| round < opts.rounds_at(s)) {
            for &c in order.iter().filter(|c| c.name != "empty") {
                if size > 0 || c.method == Method::Fork {
                    plan.push((c, size, round));
                }
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
    let mut rows: Vec<Row> = Vec::new();
    // Each row's later rounds, until they are folded in.
    let mut later: Vec<Vec<Measured>> = Vec::new();
    for (c, size, round) in plan {
        bar.set_message(format!("{} at {} (round {})", c.name, report::size_name(size), round + 1));
        let pooled = c.uses_pools && pools.is_some();
        let pool_note = pools.as_ref().and_then(|p| p.set(pooled));
        if round > 0 {
            // A later round: the fork and fork+exec figures again, for a row that ran.
            let ran = rows.iter().position(|r| r.contestant == c.name && r.size == size && r.measured.is_some());
            if let Some(i) = ran {
                if let Ok(m) = run_child(&exe, c, size, opts, false) {
                    later[i].push(m);
                }
            }
            bar.inc(1);
            continue;
        }
        let env = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let mut row = Row { contestant: c.name, env, size, measured: None, got: None, short: false, note: None };
        match fits(size, pooled) {
            Err(why) => row.note = Some(why),
            Ok(()) => match run_child(&exe, c, size, opts, true) {
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
        later.push(Vec::new());
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(pools);
    for (row, more) in rows.iter_mut().zip(later) {
        if let Some(m) = row.measured.as_mut() {
            m.fold_rounds(&more);
        }
    }
    report::write(&rows, &machine, &chosen, opts)?;
    Ok(rows)
}

/// The contestants in the order they run in `round`: as listed in the first, shuffled (the
/// same way in every run) in the others. A process runs on the memory the one before it left,
/// and in a fixed order a contestant always follows the same neighbour: `hugeheap`, listed
/// after mimalloc-large, forked 1.14-1.4x slower right after building than `hugeheap-thp` in
/// three runs, and level with it when the two ran alone, in either order (docs/benchmarks.md,
/// results of 2026-12-06; likely the VM's free page reporting: the 2 MiB blocks of a freed
/// THP heap go back to the host, and page tables allocated from them fault there).
fn round_order<'a>(chosen: &[&'a Contestant], round: usize) -> Vec<&'a Contestant> {
    let mut order = chosen.to_vec();
    if round > 0 {
        crate::rng::Rng::new(0x5EED + round as u64).shuffle(&mut order);
    }
    order
}

/// Runs one child; `first`: the row's first round, which also measures the sustained cycles
/// and copy-on-write (once per row: they take long, and are not compared by their medians).
fn run_child(
    exe: &std::path::Path,
    c: &Contestant,
    size: usize,
    opts: &Options,
    first: bool,
) -> Result<Measured, String> {
    let spec = ForkSpec {
        size,
        forks: if c.method == Method::Fork { opts.forks } else { 0 },
        execs: opts.execs,
        sustained: if first && opts.sustained_size == Some(size) && c.method == Method::Fork && c.name != "empty" {
            opts.sustained_cycles
        } else {
            0
        },
        cow: first && opts.cow,
        method: c.method,
    };
    harness::run_child(exe, JOB, &spec, c)
}

//! The allocation benchmark: ordinary allocation work, each contestant in a fresh process (the
//! shared harness), repeated, the contestants interleaved within each repetition so that drift
//! on a shared machine hits them alike. Figures: median time, its ratio to jemalloc and to
//! mimalloc, peak RSS (VmHWM, with HugetlbPages added) and RSS when the workload ends.

pub mod report;
pub mod sample;
pub mod workloads;

pub use sample::{Cell, Sample};

use super::contestant::{ALLOC_CONTESTANTS, Contestant};
use super::harness;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The kind of this benchmark's child jobs (see `crate::jobs`).
pub const JOB: &str = "alloc";

/// What an allocation-benchmark child is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocSpec {
    /// The workload's name.
    pub workload: String,
    /// Its scale.
    pub scale: f64,
}

/// Settings: the engine's.
pub type Options = crate::engine::Settings;

/// Runs one workload in this (child) process and measures it.
pub fn child_run(spec: &AllocSpec) -> Sample {
    let (_, _, f) = workloads::WORKLOADS.iter().find(|w| w.0 == spec.workload).expect("workload");
    let t = Instant::now();
    let sum = f(spec.scale);
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hugetlb = super::status_bytes(&status, "HugetlbPages:");
    Sample {
        secs,
        peak: super::status_bytes(&status, "VmHWM:") + hugetlb,
        end: super::status_bytes(&status, "VmRSS:") + hugetlb,
    }
}

/// Runs the benchmark, prints the tables and writes `alloc.{csv,json,txt}`.
pub fn run(o: &Options) -> std::io::Result<Vec<Cell>> {
    let exe = std::env::current_exe()?;
    let ws: Vec<&'static str> = workloads::WORKLOADS
        .iter()
        .map(|w| w.0)
        .filter(|w| o.workloads.is_empty() || o.workloads.iter().any(|x| x == w))
        .collect();
    let cs: Vec<&Contestant> =
        ALLOC_CONTESTANTS.iter().filter(|c| o.only.is_empty() || o.only.iter().any(|x| x == c.name)).collect();
    let mut cells: Vec<Cell> = ws.iter().flat_map(|&w| cs.iter().map(move |c| Cell::new(w, c.name, None))).collect();
    crate::engine::interleave(&mut cells, o.reps, |cell| {
        let c = cs.iter().find(|c| c.name == cell.contestant).expect("contestant");
        let spec = AllocSpec { workload: cell.workload.to_string(), scale: o.scale };
        match harness::run_child::<Sample>(&exe, JOB, &spec, c) {
            Ok(s) => cell.samples.push(s),
            Err(e) => cell.error = Some(e),
        }
    });
    let text = report::table(&cells, &ws, &cs.iter().map(|c| c.name).collect::<Vec<_>>());
    crate::engine::write_results(&o.out_dir, "alloc", &text, &cells, &cells, "secs,peak_bytes,end_bytes", |s| {
        format!("{:.6},{},{}", s.secs, s.peak, s.end)
    })?;
    Ok(cells)
}

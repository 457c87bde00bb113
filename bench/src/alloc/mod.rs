//! The allocation benchmark: ordinary allocation work, each contestant in a fresh process (the
//! shared harness), repeated, the contestants interleaved within each repetition so that drift
//! on a shared machine hits them alike. Figures: median time, its ratio to jemalloc and to
//! mimalloc, peak RSS (VmHWM, with HugetlbPages added) and RSS when the workload ends.

pub mod workloads;

use super::contestant::{ALLOC_CONTESTANTS, Contestant};
use super::harness;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
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

/// One measurement.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds of the workload.
    pub secs: f64,
    /// Peak RSS + hugetlb, bytes.
    pub peak: usize,
    /// RSS + hugetlb at the end, bytes.
    pub end: usize,
}

/// Results of one workload for one contestant.
pub type Cell = super::Cell<Sample>;

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
    let text = table(&cells, &ws, &cs.iter().map(|c| c.name).collect::<Vec<_>>());
    crate::engine::write_results(&o.out_dir, "alloc", &text, &cells, &cells, "secs,peak_bytes,end_bytes", |s| {
        format!("{:.6},{},{}", s.secs, s.peak, s.end)
    })?;
    Ok(cells)
}

fn table(cells: &[Cell], ws: &[&str], cs: &[&str]) -> String {
    let get = |w: &str, c: &str| cells.iter().find(|x| x.workload == w && x.contestant == c);
    let mut out = String::new();
    let _ = writeln!(out, "median time, ms (hugeheap's ratio to jemalloc and mimalloc: < 1 is faster)");
    let _ = write!(out, "{:<13}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>12}");
    }
    let _ = writeln!(out, " {:>9} {:>9}", "hh/je", "hh/mi");
    let mut logs: Vec<(f64, usize)> = vec![(0.0, 0); cs.len()];
    for w in ws {
        let _ = write!(out, "{w:<13}");
        for (i, c) in cs.iter().enumerate() {
            match get(w, c).and_then(|x| x.median(|s| s.secs)) {
                Some(t) => {
                    let _ = write!(out, " {:>12.1}", t * 1e3);
                    logs[i].0 += t.ln();
                    logs[i].1 += 1;
                }
                None => {
                    let _ = write!(out, " {:>12}", "failed");
                }
            }
        }
        let t = |c: &str| get(w, c).and_then(|x| x.median(|s| s.secs));
        let ratio = |b: &str| t("hugeheap").zip(t(b)).map_or("-".into(), |(h, b)| format!("{:.2}", h / b));
        let _ = writeln!(out, " {:>9} {:>9}", ratio("jemalloc"), ratio("mimalloc"));
    }
    let _ = write!(out, "{:<13}", "geomean");
    for (s, n) in &logs {
        let _ = write!(out, " {:>12.1}", if *n > 0 { (s / *n as f64).exp() * 1e3 } else { f64::NAN });
    }
    let _ = writeln!(out);
    for (title, f) in [("\npeak RSS, MiB (VmHWM + HugetlbPages)", 0), ("\nRSS at the end of the workload, MiB", 1)] {
        let _ = writeln!(out, "{title}");
        let _ = write!(out, "{:<13}", "workload");
        for c in cs {
            let _ = write!(out, " {c:>12}");
        }
        let _ = writeln!(out);
        for w in ws {
            let _ = write!(out, "{w:<13}");
            for c in cs {
                let v = get(w, c).and_then(|x| x.median(|s| if f == 0 { s.peak as f64 } else { s.end as f64 }));
                let _ =
                    write!(out, " {:>12}", v.map_or("-".into(), |b| format!("{:.0}", crate::figures::mib(b as usize))));
            }
            let _ = writeln!(out);
        }
    }
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    out
}

//! The allocation benchmark: ordinary allocation work, each contestant in a fresh process
//! (this binary re-executed with `HUGEHEAP_ALLOC_CHILD=workload:scale`), repeated, the
//! contestants interleaved within each repetition so that drift on a shared machine hits them
//! alike. Figures: median time, its ratio to jemalloc and to mimalloc, peak RSS (VmHWM, with
//! HugetlbPages added) and RSS when the workload ends.

pub mod workloads;

use crate::switch::{ALLOC_VAR, Which};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The variable that makes a process an allocation-benchmark child.
pub const CHILD_VAR: &str = "HUGEHEAP_ALLOC_CHILD";
const TAG: &str = "HUGEHEAP_ALLOC_RESULT ";

/// A contestant: name, allocator, environment.
pub type Contestant = (&'static str, Which, &'static [(&'static str, &'static str)]);

/// The contestants.
pub const CONTESTANTS: &[Contestant] = &[
    ("glibc", Which::System, &[]),
    ("jemalloc", Which::Jemalloc, &[]),
    ("mimalloc", Which::Mimalloc, &[]),
    ("hugeheap", Which::Hugeheap, &[("HUGEHEAP_PAGES", "auto")]),
    ("hugeheap-4k", Which::Hugeheap, &[("HUGEHEAP_PAGES", "4k")]),
];

/// Settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Repetitions (the median is reported).
    pub reps: usize,
    /// Work scale (1.0: about a second per workload under glibc).
    pub scale: f64,
    /// Workloads to run (empty: all).
    pub workloads: Vec<String>,
    /// Contestants to run (empty: all).
    pub only: Vec<String>,
    /// Output directory.
    pub out_dir: PathBuf,
}

/// One measurement.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds of the workload.
    pub secs: f64,
    /// Peak RSS + hugetlb, bytes.
    pub peak: usize,
    /// RSS + hugetlb at the end, bytes.
    pub end: usize,
}

/// Results of one workload for one contestant.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// Workload.
    pub workload: &'static str,
    /// Contestant.
    pub contestant: &'static str,
    /// All samples.
    pub samples: Vec<Sample>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Cell {
    fn median(&self, f: impl Fn(&Sample) -> f64) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().map(f).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

fn kib(text: &str, key: &str) -> usize {
    hugeheap::internal::field_kib(text.as_bytes(), key.as_bytes()).unwrap_or(0) * 1024
}

/// If this process is an allocation-benchmark child, runs it and returns true.
pub fn child_main_if_requested() -> bool {
    let Ok(spec) = std::env::var(CHILD_VAR) else { return false };
    let (name, scale) = spec.split_once(':').expect("workload:scale");
    let scale: f64 = scale.parse().expect("scale");
    let (_, _, f) = workloads::WORKLOADS.iter().find(|w| w.0 == name).expect("workload");
    let t = Instant::now();
    let sum = f(scale);
    let secs = t.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hugetlb = kib(&status, "HugetlbPages:");
    let peak = kib(&status, "VmHWM:") + hugetlb;
    let end = kib(&status, "VmRSS:") + hugetlb;
    println!("{TAG}{secs} {peak} {end} {sum}");
    true
}

fn run_child(
    exe: &std::path::Path,
    workload: &str,
    c: &(&str, Which, &[(&str, &str)]),
    scale: f64,
) -> Result<Sample, String> {
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUGEHEAP_") || k.starts_with("MIMALLOC_") || k == "_RJEM_MALLOC_CONF" {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD_VAR, format!("{workload}:{scale}")).env(ALLOC_VAR, c.1.env_value()).envs(c.2.iter().copied());
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix(TAG)).ok_or_else(|| {
        format!("failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""))
    })?;
    let f: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    Ok(Sample { secs: f[0], peak: f[1] as usize, end: f[2] as usize })
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
        CONTESTANTS.iter().filter(|c| o.only.is_empty() || o.only.iter().any(|x| x == c.0)).collect();
    let mut cells: Vec<Cell> = ws
        .iter()
        .flat_map(|&w| cs.iter().map(move |c| Cell { workload: w, contestant: c.0, samples: Vec::new(), error: None }))
        .collect();
    let bar = ProgressBar::new((ws.len() * cs.len() * o.reps) as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}").expect("template"));
    for w in &ws {
        for rep in 0..o.reps {
            for c in &cs {
                bar.set_message(format!("{w} {} #{}", c.0, rep + 1));
                let cell = cells.iter_mut().find(|x| x.workload == *w && x.contestant == c.0).expect("cell");
                match run_child(&exe, w, c, o.scale) {
                    Ok(s) => cell.samples.push(s),
                    Err(e) => cell.error = Some(e),
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let text = table(&cells, &ws, &cs.iter().map(|c| c.0).collect::<Vec<_>>());
    print!("{text}");
    std::fs::create_dir_all(&o.out_dir)?;
    std::fs::write(o.out_dir.join("alloc.txt"), &text)?;
    std::fs::write(o.out_dir.join("alloc.json"), serde_json::to_string_pretty(&cells).map_err(std::io::Error::other)?)?;
    let mut csv = String::from("workload,contestant,rep,secs,peak_bytes,end_bytes\n");
    for c in &cells {
        for (i, s) in c.samples.iter().enumerate() {
            let _ = writeln!(csv, "{},{},{},{:.6},{},{}", c.workload, c.contestant, i, s.secs, s.peak, s.end);
        }
    }
    std::fs::write(o.out_dir.join("alloc.csv"), csv)?;
    eprintln!("hugeheap bench --alloc: wrote {}/alloc.{{csv,json,txt}}", o.out_dir.display());
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
                let _ = write!(out, " {:>12}", v.map_or("-".into(), |b| format!("{:.0}", b / 1048576.0)));
            }
            let _ = writeln!(out);
        }
    }
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    out
}

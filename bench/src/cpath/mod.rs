//! `hugeheap bench cpath`: allocation speed and memory on the path most users take, the C API
//! through `LD_PRELOAD`. Each workload is a program that allocates through `malloc` and
//! friends: allocation work written in C (`workloads.c`, built here with `cc`) and real
//! programs (python3 and ruby on small-object scripts, `sort` of a large file). Each runs as a
//! fresh process under each contestant — glibc (nothing preloaded), the Debian packages of
//! jemalloc, mimalloc and tcmalloc, and `libhugeheap.so`, also in 4 KiB pages (`hh-4k`, not a
//! peer: the same allocator without the kernel's cost of fresh huge pages) — the contestants
//! interleaved within each repetition, so that drift on a shared machine hits them alike.
//! Figures: median wall time and peak RSS (the kernel's `ru_maxrss` for the process, read by a
//! small launcher, `launch.c`), and beside them the CPU time in the program and in the kernel
//! and the memory the kernel prepared for it (pages of 4 KiB and 2 MiB faulted in, huge pages
//! filled by collapsing 4 KiB ones), which tell a difference in the allocator's own work from
//! one in the kernel's page clearing. Every contestant's output must be identical to glibc's, or its
//! cell says so. A contestant whose library is missing is skipped, with the command that
//! installs it.

pub mod contestants;
pub mod report;
pub mod sample;
pub mod workloads;

use contestants::{Contestant, contestants};
pub use sample::{Cell, Sample};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
pub use workloads::workload_names;
use workloads::{Workload, build};

/// Settings: the engine's, and the library to preload.
#[derive(Clone, Debug)]
pub struct Options {
    /// Repetitions, scale, workloads, contestants, output directory.
    pub run: crate::engine::Settings,
    /// The libhugeheap.so to preload.
    pub lib: PathBuf,
}

/// Runs `w` under `c` through the launcher: wall time, peak RSS, CPU times and faults, and
/// what it printed.
fn run_one(w: &Workload, c: &Contestant, launch: &Path, rss_file: &Path) -> Result<(Sample, Vec<u8>), String> {
    let mut cmd = Command::new(launch);
    cmd.arg(rss_file).args(&w.argv).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if super::harness::allocator_var(&k) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(w.env.iter().map(|(k, v)| (k, v)));
    cmd.envs(c.env.iter().copied());
    if let Some(lib) = &c.lib {
        cmd.env("LD_PRELOAD", lib);
    }
    let _ = std::fs::remove_file(rss_file);
    let t = Instant::now();
    let out = cmd.output().map_err(|e| format!("could not start {}: {e}", launch.display()))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{}: {}", out.status, stderr.lines().last().unwrap_or("")));
    }
    let sample = std::fs::read_to_string(rss_file)
        .ok()
        .and_then(|s| Sample::from_launcher(&s, secs))
        .ok_or_else(|| format!("the launcher wrote no figures to {}", rss_file.display()))?;
    Ok((sample, out.stdout))
}

/// Runs the benchmark, prints the table and writes `cpath.{csv,json,txt}`.
pub fn run(o: &Options) -> std::io::Result<Vec<Cell>> {
    let dir = o.run.out_dir.join("cpath-work");
    let built = build(&dir).map_err(std::io::Error::other)?;
    let rss_file = dir.join("maxrss");
    let ws: Vec<Workload> = workloads::workloads(&dir, &built.workloads, o.run.scale)?
        .into_iter()
        .filter(|w| o.run.workloads.is_empty() || o.run.workloads.iter().any(|x| x == w.name))
        .collect();
    let cs: Vec<Contestant> = contestants(&o.lib)
        .into_iter()
        .filter(|c| o.run.only.is_empty() || o.run.only.iter().any(|x| x == c.name))
        .collect();
    let mut cells: Vec<Cell> = Vec::new();
    for w in &ws {
        for c in &cs {
            let error = w.missing.clone().or_else(|| c.missing.clone()).map(|m| format!("SKIPPED: {m}"));
            cells.push(Cell::new(w.name, c.name, error));
        }
    }
    for line in cells.iter().filter_map(|c| c.error.as_deref()).collect::<std::collections::BTreeSet<_>>() {
        eprintln!("hugeheap-bench cpath: {line}");
    }
    // Pages hugeheap takes from a hugetlb pool are not in ru_maxrss: the report says so.
    let pooled = crate::pool_free_pages(2048) + crate::pool_free_pages(1 << 20);
    // The first output of a workload is the reference each contestant's must match: glibc's,
    // which runs first, or, when `--only` leaves it out, the first contestant's.
    let mut reference: Option<(&str, &str, Vec<u8>)> = None;
    crate::engine::interleave(&mut cells, o.run.reps, |cell| {
        let w = ws.iter().find(|w| w.name == cell.workload).expect("workload");
        let c = cs.iter().find(|c| c.name == cell.contestant).expect("contestant");
        match run_one(w, c, &built.launch, &rss_file) {
            Ok((s, out)) => {
                match &reference {
                    Some((rw, who, r)) if *rw == w.name && *r != out => {
                        cell.error = Some(format!("output differs from {who}'s"));
                        return;
                    }
                    Some((rw, ..)) if *rw == w.name => {}
                    _ => reference = Some((w.name, c.name, out)),
                }
                cell.samples.push(s);
            }
            Err(e) => cell.error = Some(e),
        }
    });
    let names: Vec<&str> = cs.iter().map(|c| c.name).collect();
    let root = std::path::Path::new("/");
    let reporting =
        hugeheap_cli::doctor::free_page_reporting(root).then(|| hugeheap_cli::doctor::reporting_wait_ms(root));
    let text = report::table(&cells, &ws, &names, pooled, reporting);
    let json = serde_json::json!({ "workloads": ws, "contestants": cs, "cells": cells });
    crate::engine::write_results(
        &o.run.out_dir,
        "cpath",
        &text,
        &json,
        &cells,
        "secs,peak_bytes,user_secs,sys_secs,faults,thp_faults,thp_collapses",
        |s| {
            let known = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
            let (thp, collapses) = (known(s.thp_faults), known(s.collapses));
            format!("{:.6},{},{:.6},{:.6},{},{thp},{collapses}", s.secs, s.peak, s.user, s.sys, s.faults)
        },
    )?;
    Ok(cells)
}

//! `hugeheap bench cpath`: allocation speed and memory on the path most users take, the C API
//! through `LD_PRELOAD`. Each workload is a program that allocates through `malloc` and
//! friends: allocation work written in C (`workloads.c`, built here with `cc`) and real
//! programs (python3 and ruby on small-object scripts, `sort` of a large file). Each runs as a
//! fresh process under each contestant — glibc (nothing preloaded), the Debian packages of
//! jemalloc, mimalloc and tcmalloc, and `libhugeheap.so` — the contestants interleaved within
//! each repetition, so that drift on a shared machine hits them alike. Figures: median wall
//! time and peak RSS (the kernel's `ru_maxrss` for the process, read by a small launcher, `launch.c`); every contestant's output must
//! be identical to glibc's, or its cell says so. A contestant whose library is missing is
//! skipped, with the command that installs it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

/// The C workloads' source and the launcher that reports a command's peak RSS, built by
/// [`build`].
const WORKLOADS_C: &str = include_str!("workloads.c");
const LAUNCH_C: &str = include_str!("launch.c");

/// A contestant: a library to preload (none for glibc) and how to install it.
#[derive(Clone, Debug, Serialize)]
pub struct Contestant {
    /// Short name.
    pub name: &'static str,
    /// The library preloaded, if any.
    pub lib: Option<PathBuf>,
    /// Why it cannot run here (its library is missing), with the command that installs it.
    pub missing: Option<String>,
}

/// The contestants in table order: glibc, the peers, hugeheap (`lib`).
pub fn contestants(lib: &Path) -> Vec<Contestant> {
    let mut v = vec![Contestant { name: "glibc", lib: None, missing: None }];
    for peer in &crate::peers::PEERS {
        let (lib, missing) = match peer.find() {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        v.push(Contestant { name: peer.name, lib, missing });
    }
    v.push(Contestant { name: "hugeheap", lib: Some(lib.to_path_buf()), missing: None });
    v
}

/// A workload: a program and its arguments, built from the scale.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Short name.
    pub name: &'static str,
    /// What kind of program it stands for.
    pub what: &'static str,
    /// The command line (program first).
    pub argv: Vec<String>,
    /// Extra environment, the same for every contestant.
    pub env: Vec<(String, String)>,
    /// Why it cannot run here, if it cannot.
    pub missing: Option<String>,
}

/// The C workloads (name, what it stands for), in `workloads.c`.
pub const C_WORKLOADS: [(&str, &str); 6] = [
    ("churn", "1 thread, small objects of mixed lifetimes, realloc growth (a bignum calculator, a compiler)"),
    ("pairs", "same-size malloc/free pairs, 16 B to 1 KiB (glibc's bench-malloc)"),
    ("tight", "4 threads, malloc/free of random small sizes in tight loops"),
    ("server", "4 threads hand requests to each other, freed in random order (a server)"),
    ("threads", "short-lived threads, each leaving blocks to the next"),
    ("large", "buffers of 64 KiB to 8 MiB, written through, grown by realloc"),
];

/// Real programs: (name, what, program, package).
const PROGRAMS: [(&str, &str, &str, &str); 3] = [
    (
        "python3",
        "python3 builds, sorts and walks 300k small dicts and tuples (PYTHONMALLOC=malloc)",
        "python3",
        "python3",
    ),
    ("ruby", "ruby builds, sorts and walks 300k small hashes and arrays", "ruby", "ruby"),
    ("sort", "sort(1) of a 2-million-line file (LC_ALL=C)", "sort", "coreutils"),
];

const PYTHON: &str = r#"
import sys
n = int(300000 * float(sys.argv[1]))
d = {}
for i in range(n):
    d[str(i) * 3] = (i, [i, i + 1, i + 2], {"k": i, "s": str(i)})
items = sorted(d.items(), key=lambda kv: kv[0][::-1])
s = 0
for k, (a, b, c) in items:
    s = (s * 31 + a + len(k) + b[2] + len(c["s"])) % (1 << 61)
print(s)
"#;

const RUBY: &str = r#"
n = (300000 * ARGV[0].to_f).to_i
d = {}
n.times { |i| d[i.to_s * 3] = [i, [i, i + 1, i + 2], { "k" => i, "s" => i.to_s }] }
items = d.sort_by { |k, _| k.reverse }
s = 0
items.each { |k, (a, b, c)| s = (s * 31 + a + k.length + b[2] + c["s"].length) % (1 << 61) }
puts s
"#;

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
    /// The libhugeheap.so to preload.
    pub lib: PathBuf,
    /// Output directory.
    pub out_dir: PathBuf,
}

/// The names of every workload, C first.
pub fn workload_names() -> Vec<&'static str> {
    C_WORKLOADS.iter().map(|w| w.0).chain(PROGRAMS.iter().map(|p| p.0)).collect()
}

/// One run of one workload under one contestant.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Wall time, seconds.
    pub secs: f64,
    /// Peak RSS, bytes.
    pub peak: usize,
}

/// Results of one workload for one contestant.
pub type Cell = super::Cell<Sample>;

/// The built programs: the workloads and the launcher.
pub struct Built {
    /// `workloads.c`, built.
    pub workloads: PathBuf,
    /// `launch.c`, built.
    pub launch: PathBuf,
}

/// Builds `workloads.c` (with the malloc builtins off, so no allocation is elided) and
/// `launch.c` into `dir`.
pub fn build(dir: &Path) -> Result<Built, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let one = |name: &str, text: &str, flags: &[&str]| -> Result<PathBuf, String> {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, text).map_err(|e| format!("{}: {e}", src.display()))?;
        let bin = dir.join(name);
        let st = Command::new("cc")
            .args(["-O2", "-pthread"])
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .status()
            .map_err(|e| format!("cannot run cc ({e}): apt-get install gcc"))?;
        if st.success() { Ok(bin) } else { Err(format!("cc {} failed: {st}", src.display())) }
    };
    let no_builtins = ["-fno-builtin-malloc", "-fno-builtin-free", "-fno-builtin-calloc", "-fno-builtin-realloc"];
    Ok(Built { workloads: one("workloads", WORKLOADS_C, &no_builtins)?, launch: one("launch", LAUNCH_C, &[])? })
}

/// The workloads at `scale`, their programs and inputs written into `dir`.
pub fn workloads(dir: &Path, bin: &Path, scale: f64) -> std::io::Result<Vec<Workload>> {
    let mut v: Vec<Workload> = C_WORKLOADS
        .iter()
        .map(|&(name, what)| Workload {
            name,
            what,
            argv: vec![bin.display().to_string(), name.into(), format!("{scale}")],
            env: Vec::new(),
            missing: None,
        })
        .collect();
    for (name, what, program, package) in PROGRAMS {
        let found = super::programs::installed(program, "--version");
        let missing = (!found).then(|| format!("{program} not found: apt-get install {package}"));
        let (argv, env) = match name {
            "python3" => {
                let p = dir.join("objects.py");
                std::fs::write(&p, PYTHON)?;
                (vec!["python3".into(), p.display().to_string(), format!("{scale}")], vec![("PYTHONMALLOC", "malloc")])
            }
            "ruby" => {
                let p = dir.join("objects.rb");
                std::fs::write(&p, RUBY)?;
                (vec!["ruby".into(), p.display().to_string(), format!("{scale}")], vec![])
            }
            _ => {
                let p = dir.join("lines.txt");
                write_lines(&p, (2_000_000.0 * scale) as usize)?;
                (vec!["sort".into(), p.display().to_string()], vec![("LC_ALL", "C")])
            }
        };
        let env = env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.push(Workload { name, what, argv, env, missing });
    }
    Ok(v)
}

/// A file of `n` pseudo-random lines (words of 4 to 40 letters, a number), the same every time.
fn write_lines(path: &Path, n: usize) -> std::io::Result<()> {
    let mut rng = super::rng::Rng::new(0x5eed);
    let mut s = String::with_capacity(n * 30);
    for i in 0..n {
        let len = 4 + (rng.next_u64() % 37) as usize;
        for _ in 0..len {
            s.push((b'a' + (rng.next_u64() % 26) as u8) as char);
        }
        let _ = writeln!(s, " {i}");
    }
    std::fs::write(path, s)
}

/// Runs `w` under `c` through the launcher: wall time, peak RSS and what it printed.
fn run_one(w: &Workload, c: &Contestant, launch: &Path, rss_file: &Path) -> Result<(Sample, Vec<u8>), String> {
    let mut cmd = Command::new(launch);
    cmd.arg(rss_file).args(&w.argv).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if super::harness::allocator_var(&k) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(w.env.iter().map(|(k, v)| (k, v)));
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
    let kib: usize = std::fs::read_to_string(rss_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("the launcher wrote no peak RSS to {}", rss_file.display()))?;
    Ok((Sample { secs, peak: kib * 1024 }, out.stdout))
}

/// Runs the benchmark, prints the table and writes `cpath.{csv,json,txt}`.
pub fn run(o: &Options) -> std::io::Result<Vec<Cell>> {
    let dir = o.out_dir.join("cpath-work");
    let built = build(&dir).map_err(std::io::Error::other)?;
    let rss_file = dir.join("maxrss");
    let ws: Vec<Workload> = workloads(&dir, &built.workloads, o.scale)?
        .into_iter()
        .filter(|w| o.workloads.is_empty() || o.workloads.iter().any(|x| x == w.name))
        .collect();
    let cs: Vec<Contestant> =
        contestants(&o.lib).into_iter().filter(|c| o.only.is_empty() || o.only.iter().any(|x| x == c.name)).collect();
    let mut cells: Vec<Cell> = Vec::new();
    for w in &ws {
        for c in &cs {
            let error = w.missing.clone().or_else(|| c.missing.clone()).map(|m| format!("SKIPPED: {m}"));
            cells.push(Cell::new(w.name, c.name, error));
        }
    }
    for line in cells.iter().filter_map(|c| c.error.as_deref()).collect::<std::collections::BTreeSet<_>>() {
        eprintln!("hugeheap bench cpath: {line}");
    }
    // Pages hugeheap takes from a hugetlb pool are not in ru_maxrss: the report says so.
    let pooled = crate::pool_free_pages(2048) + crate::pool_free_pages(1 << 20);
    let bar = super::progress(ws.len() * cs.len() * o.reps);
    for w in &ws {
        // The first output is the reference each contestant's must match: glibc's, which runs
        // first, or, when `--only` leaves it out, the first contestant's.
        let mut reference: Option<(&str, Vec<u8>)> = None;
        for rep in 0..o.reps {
            // Each repetition starts one contestant later, so that none always runs after the
            // same one: a run finds the memory the one before it freed (on a VM that reports
            // free memory to its host, still backed for a few seconds: fast to touch).
            for c in cs.iter().cycle().skip(rep % cs.len()).take(cs.len()) {
                bar.set_message(format!("{} {} #{}", w.name, c.name, rep + 1));
                bar.inc(1);
                let cell = cells.iter_mut().find(|x| x.workload == w.name && x.contestant == c.name).expect("cell");
                if cell.error.is_some() {
                    continue;
                }
                match run_one(w, c, &built.launch, &rss_file) {
                    Ok((s, out)) => {
                        match &reference {
                            None => reference = Some((c.name, out)),
                            Some((who, r)) if *r != out => {
                                cell.error = Some(format!("output differs from {who}'s"));
                                continue;
                            }
                            Some(_) => {}
                        }
                        cell.samples.push(s);
                    }
                    Err(e) => cell.error = Some(e),
                }
            }
        }
    }
    bar.finish_and_clear();
    let names: Vec<&str> = cs.iter().map(|c| c.name).collect();
    let reporting = hugeheap_cli::doctor::free_page_reporting(std::path::Path::new("/"));
    let text = table(&cells, &ws, &names, pooled, reporting);
    print!("{text}");
    std::fs::create_dir_all(&o.out_dir)?;
    std::fs::write(o.out_dir.join("cpath.txt"), &text)?;
    let json = serde_json::json!({ "workloads": ws, "contestants": cs, "cells": cells });
    std::fs::write(o.out_dir.join("cpath.json"), serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?)?;
    let mut csv = String::from("workload,contestant,rep,secs,peak_bytes\n");
    for c in &cells {
        for (i, s) in c.samples.iter().enumerate() {
            let _ = writeln!(csv, "{},{},{},{:.6},{}", c.workload, c.contestant, i, s.secs, s.peak);
        }
    }
    std::fs::write(o.out_dir.join("cpath.csv"), csv)?;
    eprintln!("hugeheap bench cpath: wrote {}/cpath.{{csv,json,txt}}", o.out_dir.display());
    Ok(cells)
}

/// The peers hugeheap is measured against.
const PEER_NAMES: [&str; 4] = ["glibc", "jemalloc", "mimalloc", "tcmalloc"];

/// The text report: time and peak RSS per workload and contestant, hugeheap's ratio to the
/// fastest peer and to jemalloc's RSS, geometric means, and the targets checked; `pooled`: the
/// free hugetlb pool pages there were when the run began (its RSS figures are then not
/// comparable); `reporting`: the machine is a VM that hands free memory back to its host
/// (`doctor::free_page_reporting`), which makes hugeheap's fresh huge pages slow to touch.
pub fn table(cells: &[Cell], ws: &[Workload], cs: &[&str], pooled: usize, reporting: bool) -> String {
    let get = |w: &str, c: &str| cells.iter().find(|x| x.workload == w && x.contestant == c);
    let secs = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.secs));
    let peak = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.peak as f64));
    let mut out = String::new();
    let _ = writeln!(out, "C path (LD_PRELOAD): median wall time, ms; hh/best: hugeheap over the fastest peer");
    if reporting {
        let _ = writeln!(
            out,
            "(this VM's balloon reports free memory to its host: each fresh huge page hugeheap touches faults on \
             the host, where the peers' 4 KiB pages mostly come from memory the guest still holds; `hugeheap doctor`)"
        );
    }
    let _ = write!(out, "{:<9}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>9}");
    }
    let _ = writeln!(out, " {:>8} {:>9}", "hh/best", "best");
    let mut logs = vec![(0.0f64, 0usize); cs.len()];
    let mut worst: Option<(f64, &str)> = None;
    for w in ws {
        let _ = write!(out, "{:<9}", w.name);
        for (i, c) in cs.iter().enumerate() {
            match secs(w.name, c) {
                Some(t) => {
                    let _ = write!(out, " {:>9.1}", t * 1e3);
                    logs[i].0 += t.ln();
                    logs[i].1 += 1;
                }
                None => {
                    let _ =
                        write!(out, " {:>9}", if get(w.name, c).is_some_and(|x| x.error.is_some()) { "-" } else { "" });
                }
            }
        }
        let best =
            PEER_NAMES.iter().filter_map(|p| secs(w.name, p).map(|t| (t, *p))).min_by(|a, b| a.0.total_cmp(&b.0));
        match (secs(w.name, "hugeheap"), best) {
            (Some(h), Some((b, who))) => {
                let _ = writeln!(out, " {:>8.2} {who:>9}", h / b);
                if worst.is_none_or(|(r, _)| h / b > r) {
                    worst = Some((h / b, w.name));
                }
            }
            _ => {
                let _ = writeln!(out, " {:>8} {:>9}", "-", "-");
            }
        }
    }
    let _ = write!(out, "{:<9}", "geomean");
    for (s, n) in &logs {
        if *n > 0 {
            let _ = write!(out, " {:>9.1}", (s / *n as f64).exp() * 1e3);
        } else {
            let _ = write!(out, " {:>9}", "-");
        }
    }
    let _ = writeln!(out, "  (over the workloads each ran)");

    let _ = writeln!(out, "\npeak RSS, MiB (ru_maxrss); hh/je: hugeheap over jemalloc");
    if pooled > 0 {
        let _ = writeln!(
            out,
            "(NOT comparable: the hugetlb pools hold {pooled} free pages, and hugetlb memory is not in ru_maxrss; \
             empty them, echo 0 > /proc/sys/vm/nr_hugepages, to compare)"
        );
    }
    let _ = write!(out, "{:<9}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>9}");
    }
    let _ = writeln!(out, " {:>8}", "hh/je");
    for w in ws {
        let _ = write!(out, "{:<9}", w.name);
        for c in cs {
            let v = peak(w.name, c);
            let _ = write!(out, " {:>9}", v.map_or("-".into(), |b| format!("{:.1}", crate::figures::mib(b as usize))));
        }
        let r = peak(w.name, "hugeheap").zip(peak(w.name, "jemalloc")).map(|(h, j)| h / j);
        let _ = writeln!(out, " {:>8}", r.map_or("-".into(), |r| format!("{r:.2}")));
    }

    // The targets: geometric-mean time at most mimalloc's (over the workloads both ran), no
    // workload over 1.10x the fastest peer, peak RSS at most 1.1x jemalloc's from 16 MiB.
    let _ = writeln!(out);
    let both: Vec<&Workload> =
        ws.iter().filter(|w| secs(w.name, "hugeheap").is_some() && secs(w.name, "mimalloc").is_some()).collect();
    if !both.is_empty() {
        let g =
            |c: &str| (both.iter().map(|w| secs(w.name, c).unwrap_or(1.0).ln()).sum::<f64>() / both.len() as f64).exp();
        let r = g("hugeheap") / g("mimalloc");
        let _ =
            writeln!(out, "geomean time, hugeheap / mimalloc: {r:.2} ({})", if r <= 1.0 { "met" } else { "NOT met" });
    }
    if let Some((r, w)) = worst {
        let verdict = if r <= 1.10 { "met" } else { "NOT met" };
        let _ = writeln!(out, "worst workload against the fastest peer: {w} {r:.2}x (target 1.10x: {verdict})");
    }
    let big: Vec<String> = ws
        .iter()
        .filter_map(|w| {
            let (h, j) = peak(w.name, "hugeheap").zip(peak(w.name, "jemalloc"))?;
            (crate::figures::mib(j as usize) >= 16.0 && h > 1.1 * j).then(|| format!("{} {:.2}x", w.name, h / j))
        })
        .collect();
    let verdict = match (pooled, big.is_empty()) {
        (0, true) => "none".to_string(),
        (0, false) => big.join(", "),
        _ => "not checked (hugetlb pools present)".to_string(),
    };
    let _ = writeln!(out, "peak RSS over 1.1x jemalloc's on workloads of 16 MiB or more: {verdict}");
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    let _ = writeln!(out, "\nworkloads:");
    for w in ws {
        let _ = writeln!(out, "  {:<9} {}", w.name, w.what);
    }
    out
}

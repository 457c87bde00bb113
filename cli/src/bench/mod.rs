//! The fork benchmark: hugeheap beside every alternative a user would consider, in one run, on
//! one machine. Each contestant runs in a fresh process (this binary, re-executed with
//! `HUGEHEAP_BENCH_CHILD` set), so heaps never mix; see `child.rs` for the workload and the
//! figures, `report.rs` for the table, CSV, JSON and chart.

mod child;
mod report;

use crate::switch::{ALLOC_VAR, Which};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;

/// The variable that makes a process a benchmark child; its value is the JSON `ChildSpec`.
pub const CHILD_VAR: &str = "HUGEHEAP_BENCH_CHILD";
/// The prefix of a child's result line on stdout.
pub const RESULT_TAG: &str = "HUGEHEAP_BENCH_RESULT ";

/// How a contestant starts a program from its big heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// fork(), and fork + exec.
    Fork,
    /// posix_spawn (no fork-without-exec).
    PosixSpawn,
    /// vfork + exec (no fork-without-exec).
    Vfork,
    /// A helper started before the heap grew forks for the parent (no fork-without-exec).
    Helper,
}

/// What a child is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Heap bytes to build.
    pub size: usize,
    /// fork() samples.
    pub forks: usize,
    /// fork+exec (or spawn) samples.
    pub execs: usize,
    /// Sustained fork+exec cycles (0: none).
    pub sustained: usize,
    /// Measure copy-on-write.
    pub cow: bool,
    /// How programs are started.
    pub method: Method,
}

/// Sustained fork+exec while the heap is written.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sustained {
    /// Cycles run.
    pub cycles: usize,
    /// Median fork+exec over the first tenth of the cycles (at most 100), ms.
    pub exec_start_ms: f64,
    /// Median over the last tenth, ms.
    pub exec_end_ms: f64,
    /// AnonHugePages + HugetlbPages before, bytes.
    pub huge_start: usize,
    /// ... and after.
    pub huge_end: usize,
    /// VmPTE before, bytes.
    pub vm_pte_start: usize,
    /// ... and after.
    pub vm_pte_end: usize,
}

/// Copy-on-write cost.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cow {
    /// Time the parent took to rewrite a tenth of its objects while the child lived, ms.
    pub ms: f64,
    /// Bytes rewritten.
    pub rewritten: usize,
    /// System free memory (incl. free pool pages) consumed meanwhile, bytes.
    pub extra_bytes: usize,
    /// How the child ended.
    pub child: String,
}

/// What a child measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Time to build the heap, s.
    pub build_s: f64,
    /// Bytes in the heap's objects.
    pub heap_bytes: usize,
    /// fork() median, ms.
    pub fork_med_ms: Option<f64>,
    /// fork() p90, ms.
    pub fork_p90_ms: Option<f64>,
    /// fork+exec+wait (or spawn+wait) median, ms.
    pub exec_med_ms: Option<f64>,
    /// ... p90.
    pub exec_p90_ms: Option<f64>,
    /// VmPTE, bytes.
    pub vm_pte: usize,
    /// AnonHugePages, bytes.
    pub anon_huge: usize,
    /// HugetlbPages, bytes.
    pub hugetlb: usize,
    /// Of which in 2 MiB pages (from /proc/self/smaps), bytes.
    #[serde(default)]
    pub hugetlb_2m: usize,
    /// Of which in 1 GiB pages, bytes.
    #[serde(default)]
    pub hugetlb_1g: usize,
    /// VmRSS, bytes.
    pub rss: usize,
    /// Lines of /proc/self/maps.
    pub mappings: usize,
    /// Sustained figures, at the sustained size.
    pub sustained: Option<Sustained>,
    /// Copy-on-write figures.
    pub cow: Option<Cow>,
}

/// The page kind a contestant's name promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Promise {
    /// Nothing in particular (4 KiB pages are what it gets).
    Nothing,
    /// Transparent huge pages.
    Thp,
    /// hugetlb pages, 2 MiB or 1 GiB.
    Hugetlb,
    /// hugetlb 1 GiB pages.
    Gib1,
    /// Huge pages of any kind.
    Huge,
}

impl Promise {
    /// The share of the heap (0..=1) in the promised kind, from the kernel's counters.
    pub fn share(self, m: &Measured) -> f64 {
        let total = (m.rss + m.hugetlb).max(1) as f64;
        let bytes = match self {
            Promise::Nothing => return 1.0,
            Promise::Thp => m.anon_huge,
            Promise::Hugetlb => m.hugetlb,
            Promise::Gib1 => m.hugetlb_1g,
            Promise::Huge => m.anon_huge + m.hugetlb,
        };
        bytes as f64 / total
    }

    /// What the name promises, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Promise::Nothing => "nothing",
            Promise::Thp => "THP",
            Promise::Hugetlb => "hugetlb pages",
            Promise::Gib1 => "1 GiB pages",
            Promise::Huge => "huge pages",
        }
    }
}

/// A contestant: an allocator, its environment, a way to start programs.
#[derive(Clone, Debug, Serialize)]
pub struct Contestant {
    /// Short name.
    pub name: &'static str,
    /// Its allocator.
    #[serde(skip)]
    pub alloc: Which,
    /// Extra environment.
    pub env: &'static [(&'static str, &'static str)],
    /// How it starts programs.
    pub method: Method,
    /// The page kind its name promises.
    pub promises: Promise,
    /// It may take memory from hugetlb pools (`--pool-2m` / `--pool-1g` are set for it).
    pub uses_pools: bool,
}

const fn c(
    name: &'static str,
    alloc: Which,
    env: &'static [(&'static str, &'static str)],
    method: Method,
    promises: Promise,
    uses_pools: bool,
) -> Contestant {
    Contestant { name, alloc, env, method, promises, uses_pools }
}

/// Every contestant, in table order. `empty` is the floor: the same process with no heap.
pub const CONTESTANTS: &[Contestant] = &[
    c("empty", Which::System, &[], Method::Fork, Promise::Nothing, false),
    c("glibc", Which::System, &[], Method::Fork, Promise::Nothing, false),
    c("glibc-thp", Which::System, &[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")], Method::Fork, Promise::Thp, false),
    c(
        "glibc-hugetlb",
        Which::System,
        &[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=2")],
        Method::Fork,
        Promise::Hugetlb,
        true,
    ),
    c("jemalloc", Which::Jemalloc, &[], Method::Fork, Promise::Nothing, false),
    c(
        "jemalloc-thp",
        Which::Jemalloc,
        &[("_RJEM_MALLOC_CONF", "thp:always,metadata_thp:always")],
        Method::Fork,
        Promise::Thp,
        false,
    ),
    c("jemalloc-hpa", Which::Jemalloc, &[("_RJEM_MALLOC_CONF", "hpa:true")], Method::Fork, Promise::Thp, false),
    c(
        "mimalloc-large",
        Which::Mimalloc,
        &[("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"), ("MIMALLOC_LARGE_OS_PAGES", "1")],
        Method::Fork,
        Promise::Huge,
        true,
    ),
    // Like glibc-hugetlb and mimalloc-large, the hugetlb contestants may use the whole pool
    // (no copy-on-write room; the default keeps half of a pool free, see docs/tuning.md).
    c(
        "hugeheap",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "auto"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Huge,
        true,
    ),
    c(
        "hugeheap-1g",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "1g"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Gib1,
        true,
    ),
    c(
        "hugeheap-2m",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "2m"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Hugetlb,
        true,
    ),
    c("hugeheap-thp", Which::Hugeheap, &[("HUGEHEAP_PAGES", "thp")], Method::Fork, Promise::Thp, false),
    c("hugeheap-4k", Which::Hugeheap, &[("HUGEHEAP_PAGES", "4k")], Method::Fork, Promise::Nothing, false),
    c("posix_spawn", Which::System, &[], Method::PosixSpawn, Promise::Nothing, false),
    c("vfork+exec", Which::System, &[], Method::Vfork, Promise::Nothing, false),
    c("spawn-helper", Which::System, &[], Method::Helper, Promise::Nothing, false),
];

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

/// If this process is a child of either benchmark, runs it and returns true.
pub fn child_main_if_requested() -> bool {
    if crate::allocbench::child_main_if_requested() {
        return true;
    }
    let Ok(spec) = std::env::var(CHILD_VAR) else { return false };
    let spec: ChildSpec = serde_json::from_str(&spec).expect("child spec");
    child::run(&spec);
    true
}

/// A /proc/meminfo field (`MemAvailable:`, `MemFree:`) in bytes, plus, with `pools`, the free
/// pages of both hugetlb pools.
pub(crate) fn free_bytes(field: &str, pools: bool) -> usize {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut bytes = hugeheap::internal::field_kib(meminfo.as_bytes(), field.as_bytes()).unwrap_or(0) * 1024;
    if pools {
        for (dir, size) in [("hugepages-2048kB", 2usize << 20), ("hugepages-1048576kB", 1 << 30)] {
            let free = std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/{dir}/free_hugepages"))
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(0);
            bytes += free * size;
        }
    }
    bytes
}

/// Whether a heap of `size` fits: the heap, allocator overhead and copy-on-write copies, about
/// 1.6 times the heap.
fn fits(size: usize, pooled: bool) -> Result<(), String> {
    // Free for it: MemAvailable, plus the pools' free pages when it takes its heap from them.
    let (need, avail) = (size / 10 * 16, free_bytes("MemAvailable:", pooled));
    if need > avail {
        Err(format!("skipped: needs ~{} MiB, {} MiB available", need >> 20, avail >> 20))
    } else {
        Ok(())
    }
}

const POOL_2M: &str = "/proc/sys/vm/nr_hugepages";
const POOL_1G: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";

fn read_pool(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The run's hold on the hugetlb pools: sets them per contestant, restores them when dropped.
struct Pools {
    want: (usize, usize),
    old: (usize, usize),
}

impl Pools {
    fn take(want: (usize, usize)) -> Option<Pools> {
        let old = (read_pool(POOL_2M)?, read_pool(POOL_1G).unwrap_or(0));
        Some(Pools { want, old })
    }

    /// Sets the pools for a contestant; returns a note when the kernel gave fewer pages.
    fn set(&self, pooled: bool) -> Option<String> {
        let (p2, p1) = if pooled { self.want } else { self.old };
        let mut short = Vec::new();
        for (path, n, label) in [(POOL_2M, p2, "2m"), (POOL_1G, p1, "1g")] {
            if read_pool(path) != Some(n) {
                let _ = std::fs::write(path, n.to_string());
            }
            let got = read_pool(path).unwrap_or(0);
            if got < n {
                short.push(format!("{label} pool {got}/{n}"));
            }
        }
        (!short.is_empty()).then(|| short.join(", "))
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        let _ = std::fs::write(POOL_1G, self.old.1.to_string());
        let _ = std::fs::write(POOL_2M, self.old.0.to_string());
    }
}

/// Runs the benchmark: every contestant at every size, then the report.
pub fn run(opts: &Options) -> std::io::Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let chosen: Vec<&Contestant> =
        CONTESTANTS.iter().filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == c.name)).collect();
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
    let bar = ProgressBar::new(plan.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let pools = opts.pools.and_then(Pools::take);
    if opts.pools.is_some() && pools.is_none() {
        eprintln!("hugeheap bench: cannot read the hugetlb pools; running with them as they are");
    }
    let machine = report::Machine::read();
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
                    row.short = size > 0 && c.promises.share(&m) < 0.5;
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
    let spec = ChildSpec {
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
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUGEHEAP_") || k.starts_with("MIMALLOC_") || k == "GLIBC_TUNABLES" || k == "_RJEM_MALLOC_CONF"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD_VAR, serde_json::to_string(&spec).expect("json")).env(ALLOC_VAR, c.alloc.env_value());
    cmd.envs(c.env.iter().copied());
    let out = cmd.output().map_err(|e| format!("could not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = stderr.lines().find(|l| l.contains("Invalid conf") || l.contains("invalid conf")) {
        return Err(format!("option refused: {}", line.trim()));
    }
    match stdout.lines().find_map(|l| l.strip_prefix(RESULT_TAG)) {
        Some(json) if out.status.success() => serde_json::from_str(json).map_err(|e| format!("bad result: {e}")),
        _ => {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            Err(format!("failed ({}): {last}", out.status))
        }
    }
}

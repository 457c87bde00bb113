//! The benchmarks' command line (clap): `hugeheap-bench fork|alloc|cpath|programs`, also
//! reached as `hugeheap bench ...` and, for fork and alloc, as `cargo bench --bench fork|alloc`.

use crate::contestant::FORK_CONTESTANTS;
use crate::{alloc, fork};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// hugeheap's benchmarks: hugeheap beside the allocators people use instead.
#[derive(Parser, Debug)]
#[command(name = "hugeheap-bench", version, about)]
pub struct BenchCli {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// fork() latency and its costs: hugeheap beside glibc, jemalloc, mimalloc and the spawn
    /// methods.
    Fork(ForkArgs),
    /// Allocation speed and memory on ordinary work: hugeheap beside glibc, jemalloc, mimalloc.
    Alloc(AllocArgs),
    /// Allocation speed and memory through the C API (LD_PRELOAD): C workloads, python3, ruby
    /// and sort, hugeheap beside glibc and the Debian packages of jemalloc, mimalloc, tcmalloc.
    Cpath(CpathArgs),
    /// Real programs that fork from a big heap, plain and under hugeheap: Redis, Python, Perl,
    /// PostgreSQL (each skipped, with the install command, when missing).
    Programs(ProgramsArgs),
}

/// Options both benchmarks take.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// A few minutes: fewer sizes or a smaller scale, fewer samples.
    #[arg(long)]
    pub quick: bool,
    /// Contestants to run, comma-separated (default: all; see --list).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the contestants and exit.
    #[arg(long)]
    pub list: bool,
    /// Directory for the results. Default: `hugeheap-bench` in the cargo target directory when
    /// run by `cargo bench`, else in the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of the fork benchmark.
#[derive(Args, Debug, Clone)]
pub struct ForkArgs {
    /// Options both benchmarks take.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Heap sizes, comma-separated (e.g. 0,64M,512M,2G,8G).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Option<Vec<usize>>,
    /// fork() samples per contestant and size (at least 100 for the published figures).
    #[arg(long)]
    pub forks: Option<usize>,
    /// Rounds up to 2 GiB heaps: each contestant once per round, in turns; the figures are the
    /// median of the rounds' medians (default 3).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// fork+exec samples per contestant and size.
    #[arg(long)]
    pub execs: Option<usize>,
    /// Heap size of the sustained run (fork+exec, then fork-without-exec cycles while a thread
    /// writes), or 0 for none.
    #[arg(long, value_parser = parse_size)]
    pub sustained_size: Option<usize>,
    /// Cycles of the sustained run.
    #[arg(long)]
    pub sustained_cycles: Option<usize>,
    /// Skip the copy-on-write measurement.
    #[arg(long)]
    pub no_cow: bool,
    /// Give the contestants that use hugetlb pools this many 2 MiB pages (root; the others run
    /// with the pools as they were, and the pools are restored afterwards).
    #[arg(long)]
    pub pool_2m: Option<usize>,
    /// Likewise for 1 GiB pages.
    #[arg(long)]
    pub pool_1g: Option<usize>,
}

/// Options of the allocation benchmark.
#[derive(Args, Debug, Clone)]
pub struct AllocArgs {
    /// Options both benchmarks take.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Repetitions, scale, workloads.
    #[command(flatten)]
    pub work: WorkArgs,
}

/// The options both allocation benchmarks (`alloc`, `cpath`) take.
#[derive(Args, Debug, Clone)]
pub struct WorkArgs {
    /// Repetitions per workload and contestant (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Work scale (1.0 is about a second per workload under glibc).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Workloads to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
}

impl WorkArgs {
    /// The workloads asked for, checked against `names`; with `quick`, three repetitions and
    /// a quarter of the work. Returns (reps, scale, workloads).
    fn resolve(&self, names: &[&str], quick: bool) -> std::io::Result<(usize, f64, Vec<String>)> {
        if let Some(w) = self.workloads.iter().find(|w| !names.contains(&w.as_str())) {
            return Err(std::io::Error::other(format!("unknown workload {w:?} (one of {})", names.join(", "))));
        }
        let reps = if quick { 3 } else { self.reps.max(1) };
        let scale = if quick { self.scale * 0.25 } else { self.scale };
        Ok((reps, scale, self.workloads.clone()))
    }
}

/// Options of `hugeheap bench cpath`.
#[derive(Args, Debug, Clone)]
pub struct CpathArgs {
    /// Fewer repetitions and a quarter of the work (a few minutes).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions, scale, workloads.
    #[command(flatten)]
    pub work: WorkArgs,
    /// Contestants to run, comma-separated: glibc, jemalloc, mimalloc, tcmalloc, hugeheap, hh-4k
    /// (hugeheap in 4 KiB pages).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The library and the results directory.
    #[command(flatten)]
    pub preload: PreloadArgs,
}

/// The options of the benchmarks that preload libhugeheap.so into other programs (`cpath`,
/// `programs`).
#[derive(Args, Debug, Clone)]
pub struct PreloadArgs {
    /// The libhugeheap.so to preload (default: as `hugeheap run` finds it).
    #[arg(long)]
    pub lib: Option<PathBuf>,
    /// Directory for the results (as for the other benchmarks).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl PreloadArgs {
    /// The library to preload and the directory for the results.
    fn resolve(&self) -> std::io::Result<(PathBuf, PathBuf)> {
        let lib = hugeheap_cli::run::find_lib(self.lib.as_deref()).map_err(std::io::Error::other)?;
        Ok((lib, self.out.clone().unwrap_or_else(crate::default_out_dir)))
    }
}

/// Options of `hugeheap bench programs`.
#[derive(Args, Debug, Clone)]
pub struct ProgramsArgs {
    /// Smaller data, fewer runs (minutes instead of half an hour).
    #[arg(long)]
    pub quick: bool,
    /// Programs to run, comma-separated: redis, python, perl, postgres, gunicorn, unicorn (default:
    /// all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The library and the results directory.
    #[command(flatten)]
    pub preload: PreloadArgs,
}

fn parse_size(s: &str) -> Result<usize, String> {
    hugeheap::internal::parse_size(s.as_bytes()).ok_or_else(|| format!("{s:?} is not a size (e.g. 512M, 4G)"))
}

impl CommonArgs {
    fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(crate::default_out_dir)
    }

    /// Prints the contestants (with `--list`); true if it did.
    fn list(&self, names: &[&crate::contestant::Contestant]) -> bool {
        if self.list {
            for c in names {
                let env = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                println!("{:<15} {:<9} {:?} {env}", c.name, c.alloc.env_value(), c.method);
            }
        }
        self.list
    }

    /// An error for a name in `--only` that is not among `names`.
    fn check_only(&self, names: &[&str]) -> std::io::Result<()> {
        match self.only.iter().find(|n| !names.contains(&n.as_str())) {
            Some(unknown) => Err(std::io::Error::other(format!("unknown contestant {unknown:?} (see --list)"))),
            None => Ok(()),
        }
    }
}

/// Runs `hugeheap bench fork`.
pub fn bench_fork(a: &ForkArgs) -> std::io::Result<()> {
    if a.common.list(&FORK_CONTESTANTS.iter().collect::<Vec<_>>()) {
        return Ok(());
    }
    a.common.check_only(&FORK_CONTESTANTS.iter().map(|c| c.name).collect::<Vec<_>>())?;
    let mut o = if a.common.quick { fork::Options::quick() } else { fork::Options::full() };
    if let Some(s) = &a.sizes {
        o.sizes = s.clone();
    }
    o.forks = a.forks.unwrap_or(o.forks);
    o.rounds = a.rounds.unwrap_or(o.rounds);
    o.execs = a.execs.unwrap_or(o.execs);
    o.only = a.common.only.clone();
    if let Some(s) = a.sustained_size {
        o.sustained_size = (s > 0).then_some(s);
    }
    o.sustained_cycles = a.sustained_cycles.unwrap_or(o.sustained_cycles);
    o.cow = !a.no_cow;
    o.out_dir = a.common.out_dir();
    if a.pool_2m.is_some() || a.pool_1g.is_some() {
        o.pools = Some((a.pool_2m.unwrap_or(0), a.pool_1g.unwrap_or(0)));
    }
    fork::run(&o).map(|_| ())
}

/// Runs `hugeheap bench alloc`.
pub fn bench_alloc(a: &AllocArgs) -> std::io::Result<()> {
    use crate::contestant::ALLOC_CONTESTANTS;
    if a.common.list(&ALLOC_CONTESTANTS.iter().collect::<Vec<_>>()) {
        return Ok(());
    }
    a.common.check_only(&ALLOC_CONTESTANTS.iter().map(|c| c.name).collect::<Vec<_>>())?;
    let names: Vec<&str> = alloc::workloads::WORKLOADS.iter().map(|w| w.0).collect();
    let (reps, scale, workloads) = a.work.resolve(&names, a.common.quick)?;
    let o = alloc::Options { reps, scale, workloads, only: a.common.only.clone(), out_dir: a.common.out_dir() };
    alloc::run(&o).map(|_| ())
}

/// Runs `hugeheap bench cpath`.
pub fn bench_cpath(a: &CpathArgs) -> std::io::Result<()> {
    use crate::cpath;
    let names = cpath::workload_names();
    let (reps, scale, workloads) = a.work.resolve(&names, a.quick)?;
    let known = cpath::contestants::NAMES;
    if let Some(c) = a.only.iter().find(|c| !known.contains(&c.as_str())) {
        return Err(std::io::Error::other(format!("unknown contestant {c:?} (one of {})", known.join(", "))));
    }
    let (lib, out_dir) = a.preload.resolve()?;
    let o =
        cpath::Options { run: crate::engine::Settings { reps, scale, workloads, only: a.only.clone(), out_dir }, lib };
    cpath::run(&o).map(|_| ())
}

/// Runs `hugeheap bench programs`.
pub fn bench_programs(a: &ProgramsArgs) -> std::io::Result<()> {
    const PROGRAMS: [&str; 6] = ["redis", "python", "perl", "postgres", "gunicorn", "unicorn"];
    if let Some(p) = a.only.iter().find(|p| !PROGRAMS.contains(&p.as_str())) {
        return Err(std::io::Error::other(format!("unknown program {p:?} (one of {})", PROGRAMS.join(", "))));
    }
    let (lib, out_dir) = a.preload.resolve()?;
    let o = crate::programs::Options { quick: a.quick, only: a.only.clone(), lib, out_dir };
    crate::programs::run(&o).map(|_| ())
}

/// Runs a `hugeheap bench` subcommand.
pub fn bench(c: &BenchCommand) -> std::io::Result<()> {
    match c {
        BenchCommand::Fork(a) => bench_fork(a),
        BenchCommand::Alloc(a) => bench_alloc(a),
        BenchCommand::Cpath(a) => bench_cpath(a),
        BenchCommand::Programs(a) => bench_programs(a),
    }
}

/// The `main` of the bench targets (`cargo bench --bench fork|alloc`): the same engine and
/// options as `hugeheap-bench fork|alloc`. Cargo passes `--bench` to bench targets; it is
/// dropped.
pub fn bench_target_main(name: &str) {
    if crate::jobs::child_main_if_requested() {
        return;
    }
    let args = ["hugeheap-bench", name]
        .into_iter()
        .map(String::from)
        .chain(std::env::args().skip(1).filter(|a| a != "--bench"));
    let cli = BenchCli::parse_from(args);
    if let Err(e) = bench(&cli.command) {
        eprintln!("{name} bench: {e}");
        std::process::exit(1);
    }
}

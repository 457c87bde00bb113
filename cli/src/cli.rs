//! Command-line arguments (clap), shared by the `hugeheap` binary and the bench target.

use crate::bench::{self, Options};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// hugeheap: an allocator whose heap lives in huge pages, so fork() stays fast.
#[derive(Parser, Debug)]
#[command(name = "hugeheap", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a program on hugeheap (LD_PRELOAD of libhugeheap.so), with no change to it.
    Run(RunArgs),
    /// Can this machine give huge pages now, and how to turn on the rest.
    Doctor(DoctorArgs),
    /// The fork benchmark: hugeheap beside glibc, jemalloc, mimalloc and the spawn methods.
    Bench(BenchArgs),
}

/// Options of `hugeheap run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Page kinds, best first: auto, or a comma list of 1g,2m,thp,4k (sets HUGEHEAP_PAGES).
    #[arg(long)]
    pub pages: Option<String>,
    /// Print the page kinds found at start and where the heap lived at exit (HUGEHEAP_VERBOSE=1).
    #[arg(long, short)]
    pub verbose: bool,
    /// Cap on the heap, e.g. 4G (sets HUGEHEAP_MAX_HEAP).
    #[arg(long)]
    pub max_heap: Option<String>,
    /// Path of libhugeheap.so (default: HUGEHEAP_LIB, then next to this program).
    #[arg(long)]
    pub lib: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

/// Options of `hugeheap doctor`.
#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Read /proc and /sys under this directory instead of / (for tests and inspection of
    /// copied trees).
    #[arg(long, hide = true)]
    pub root: Option<PathBuf>,
}

/// Options of the fork benchmark.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// About a minute: heaps of 64M and 512M, fewer samples.
    #[arg(long)]
    pub quick: bool,
    /// Heap sizes, comma-separated (e.g. 0,64M,512M,2G,8G).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Option<Vec<usize>>,
    /// fork() samples per contestant and size (at least 100 for the published figures).
    #[arg(long)]
    pub forks: Option<usize>,
    /// fork+exec samples per contestant and size.
    #[arg(long)]
    pub execs: Option<usize>,
    /// Contestants to run, comma-separated (default: all; see --list).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the contestants and exit.
    #[arg(long)]
    pub list: bool,
    /// Heap size of the sustained run (fork+exec cycles while a thread writes), or 0 for none.
    #[arg(long, value_parser = parse_size)]
    pub sustained_size: Option<usize>,
    /// Cycles of the sustained run.
    #[arg(long)]
    pub sustained_cycles: Option<usize>,
    /// Skip the copy-on-write measurement.
    #[arg(long)]
    pub no_cow: bool,
    /// Directory for the results (fork.* or alloc.*). Default: `hugeheap-bench` in the cargo
    /// target directory when run by `cargo bench`, else in the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Give the contestants that use hugetlb pools this many 2 MiB pages (root; the others run
    /// with the pools as they were, and the pools are restored afterwards).
    #[arg(long)]
    pub pool_2m: Option<usize>,
    /// Likewise for 1 GiB pages.
    #[arg(long)]
    pub pool_1g: Option<usize>,
    /// Run the allocation-speed benchmark instead (glibc, jemalloc, mimalloc, hugeheap).
    #[arg(long)]
    pub alloc: bool,
    /// Allocation benchmark: repetitions per workload and contestant (median reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Allocation benchmark: work scale (1.0 is about a second per workload).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Allocation benchmark: workloads to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
}

/// Where the results go: `--out`, else `hugeheap-bench` beside cargo's build products when
/// this is a bench target (`<target>/<profile>/deps/<bench>`: cargo runs benches from the
/// package's directory, so a relative default would land in `cli/target`), else in the current
/// directory.
fn out_dir(a: &BenchArgs) -> PathBuf {
    if let Some(o) = &a.out {
        return o.clone();
    }
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(|e| e.parent()).filter(|d| d.ends_with("deps"));
    match deps.and_then(|d| d.parent()?.parent()) {
        Some(target) => target.join("hugeheap-bench"),
        None => PathBuf::from("hugeheap-bench"),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    hugeheap::internal::parse_size(s.as_bytes()).ok_or_else(|| format!("{s:?} is not a size (e.g. 512M, 4G)"))
}

/// Runs `hugeheap bench` with these arguments.
pub fn bench(a: &BenchArgs) -> std::io::Result<()> {
    if a.alloc {
        let names: Vec<&str> = crate::allocbench::workloads::WORKLOADS.iter().map(|w| w.0).collect();
        if let Some(w) = a.workloads.iter().find(|w| !names.contains(&w.as_str())) {
            return Err(std::io::Error::other(format!("unknown workload {w:?} (one of {})", names.join(", "))));
        }
        let o = crate::allocbench::Options {
            reps: if a.quick { 3 } else { a.reps.max(1) },
            scale: if a.quick { a.scale * 0.25 } else { a.scale },
            workloads: a.workloads.clone(),
            only: a.only.clone(),
            out_dir: out_dir(a),
        };
        return crate::allocbench::run(&o).map(|_| ());
    }
    if a.list {
        for c in bench::CONTESTANTS {
            let env = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            println!("{:<15} {:<9} {:?} {env}", c.name, c.alloc.env_value(), c.method);
        }
        return Ok(());
    }
    let mut o = if a.quick { Options::quick() } else { Options::full() };
    if let Some(s) = &a.sizes {
        o.sizes = s.clone();
    }
    o.forks = a.forks.unwrap_or(o.forks);
    o.execs = a.execs.unwrap_or(o.execs);
    o.only = a.only.clone();
    if let Some(s) = a.sustained_size {
        o.sustained_size = (s > 0).then_some(s);
    }
    o.sustained_cycles = a.sustained_cycles.unwrap_or(o.sustained_cycles);
    o.cow = !a.no_cow;
    o.out_dir = out_dir(a);
    if let Some(unknown) = o.only.iter().find(|n| !bench::CONTESTANTS.iter().any(|c| c.name == n.as_str())) {
        return Err(std::io::Error::other(format!("unknown contestant {unknown:?} (see --list)")));
    }
    if a.pool_2m.is_some() || a.pool_1g.is_some() {
        o.pools = Some((a.pool_2m.unwrap_or(0), a.pool_1g.unwrap_or(0)));
    }
    bench::run(&o).map(|_| ())
}

/// The `main` of the bench targets (`cargo bench --bench fork|alloc`): the same engine and
/// options as `hugeheap bench`; `alloc` forces the allocation benchmark. Cargo passes
/// `--bench` to bench targets; it is dropped.
pub fn bench_target_main(name: &str, alloc: bool) {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        bench: BenchArgs,
    }
    if bench::child_main_if_requested() {
        return;
    }
    let args = std::iter::once(name.to_string()).chain(std::env::args().skip(1).filter(|a| a != "--bench"));
    let mut a = Args::parse_from(args);
    a.bench.alloc |= alloc;
    if let Err(e) = self::bench(&a.bench) {
        eprintln!("{name} bench: {e}");
        std::process::exit(1);
    }
}

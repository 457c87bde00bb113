//! `cargo bench --bench alloc [-- OPTIONS]`: the allocation-speed benchmark (the engine of
//! `hugeheap bench --alloc`; options such as `--quick`, `--reps`, `--scale`, `--workloads`).

use clap::Parser;
use hugeheap_cli::cli::BenchArgs;

#[global_allocator]
static A: hugeheap_cli::switch::Switch = hugeheap_cli::switch::Switch;

#[derive(Parser)]
#[command(name = "alloc", about = "The allocation benchmark (see `hugeheap bench --help`)")]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() {
    if hugeheap_cli::bench::child_main_if_requested() {
        return;
    }
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let mut a = Args::parse_from(args);
    a.bench.alloc = true;
    if let Err(e) = hugeheap_cli::cli::bench(&a.bench) {
        eprintln!("alloc bench: {e}");
        std::process::exit(1);
    }
}

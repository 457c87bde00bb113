//! `hugeheap-bench`: the benchmarks (`hugeheap bench ...` runs this program).

use clap::Parser;
use hugeheap_bench::args::{BenchCli, bench};

// Each contestant runs in a fresh process of this binary, on the allocator the harness names.
#[global_allocator]
static A: hugeheap_bench::switch::Switch = hugeheap_bench::switch::Switch;

fn main() {
    if hugeheap_bench::jobs::child_main_if_requested() {
        return;
    }
    let cli = BenchCli::parse();
    if let Err(e) = bench(&cli.command) {
        eprintln!("hugeheap-bench: {e}");
        std::process::exit(1);
    }
}

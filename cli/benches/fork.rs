//! `cargo bench --bench fork [-- OPTIONS]`: the fork benchmark (the same engine and options as
//! `hugeheap bench`). Cargo passes `--bench` to bench targets; it is accepted and ignored.

use clap::Parser;
use hugeheap_cli::cli::BenchArgs;

#[global_allocator]
static A: hugeheap_cli::switch::Switch = hugeheap_cli::switch::Switch;

#[derive(Parser)]
#[command(name = "fork", about = "The fork benchmark (see `hugeheap bench --help`)")]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() {
    if hugeheap_cli::bench::child_main_if_requested() {
        return;
    }
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let a = Args::parse_from(args);
    if let Err(e) = hugeheap_cli::cli::bench(&a.bench) {
        eprintln!("fork bench: {e}");
        std::process::exit(1);
    }
}

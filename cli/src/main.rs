//! The `hugeheap` command.

use clap::Parser;
use hugeheap_cli::cli::{Cli, Command};

#[global_allocator]
static A: hugeheap_cli::switch::Switch = hugeheap_cli::switch::Switch;

fn main() {
    if hugeheap_cli::bench::child_main_if_requested() {
        return;
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(a) => hugeheap_cli::cli::bench(a),
    };
    if let Err(e) = result {
        eprintln!("hugeheap: {e}");
        std::process::exit(1);
    }
}

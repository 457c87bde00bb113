//! The `hugeheap` command.

use clap::Parser;
use hugeheap_cli::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(b) => {
            eprintln!("hugeheap bench: {}", hugeheap_cli::bench::exec(&b.args));
            std::process::exit(127);
        }
        Command::Doctor(a) => hugeheap_cli::doctor::run(a.root.clone(), a.json),
        Command::Pool(a) => {
            let req = hugeheap_cli::pool::Request {
                heap: a.heap,
                children: a.children,
                release: a.release,
                persist: a.persist,
                write: a.write,
                root: a.root.clone(),
                prefix: a.prefix.clone(),
            };
            match hugeheap_cli::pool::run(&req) {
                Ok(text) => {
                    print!("{text}");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("hugeheap pool: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::LibPath => match hugeheap_cli::run::find_lib(None) {
            Ok(lib) => {
                println!("{}", lib.display());
                Ok(())
            }
            Err(e) => Err(std::io::Error::other(e)),
        },
        Command::Run(a) => {
            let err = match hugeheap_cli::run::find_lib(a.lib.as_deref()) {
                Ok(lib) => hugeheap_cli::run::exec(&lib, &a.options, &a.cmd),
                Err(e) => e,
            };
            eprintln!("hugeheap run: {err}");
            std::process::exit(127);
        }
    };
    if let Err(e) = result {
        eprintln!("hugeheap: {e}");
        std::process::exit(1);
    }
}

//! The `hugeheap` command's arguments (clap).

use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use hugeheap::internal::OPTIONS;
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
    /// Print the path of the libhugeheap.so `run` preloads (writing out the copy this command
    /// carries, if that is the one), for LD_PRELOAD set by hand: a systemd unit, a Dockerfile.
    LibPath,
    /// hugetlb pools: show them, reserve what a heap needs with its forked children's
    /// copy-on-write counted (root), make them last across reboots, give them back.
    Pool(PoolArgs),
    /// Benchmarks: fork latency, allocation speed (Rust and C paths), real programs. They are
    /// a program of their own, `hugeheap-bench`, run from beside this one or from PATH (`cargo
    /// install --path bench` in a checkout; `cargo bench --bench fork` there runs it too).
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
}

/// What `hugeheap bench` hands to `hugeheap-bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The benchmark and its options (`hugeheap bench fork --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<std::ffi::OsString>,
}

/// The `HUGEHEAP_*` settings given as flags: one flag per row of the library's option table
/// (`--pages 2m,thp`, `--max-heap 4G`, ..., `--verbose`), each checked by the row's own parser.
#[derive(Debug, Clone, Default)]
pub struct OptionFlags {
    /// The variables to set, with their values.
    pub vars: Vec<(&'static str, String)>,
    /// `--verbose` was given.
    pub verbose: bool,
}

impl Args for OptionFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for row in &OPTIONS {
            let help = format!("{} (sets {}; accepts {})", row.summary, row.env, row.accepts);
            let arg = clap::Arg::new(row.flag).long(row.flag).help(help);
            cmd = cmd.arg(match row.value_name {
                Some(v) => arg.value_name(v).value_parser(row_parser(row.env)),
                None => arg.action(clap::ArgAction::SetTrue),
            });
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for OptionFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = OptionFlags::default();
        for row in &OPTIONS {
            match row.value_name {
                Some(_) => {
                    if let Some(v) = m.get_one::<String>(row.flag) {
                        flags.vars.push((row.env, v.clone()));
                    }
                }
                None => flags.verbose |= m.get_flag(row.flag),
            }
        }
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// A clap value parser that accepts what the option table's row for `env` accepts.
fn row_parser(env: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |v: &str| {
        let row = OPTIONS.iter().find(|r| r.env == env).expect("a row of the table");
        // A scratch configuration for the row's parser to write into.
        let mut scratch = hugeheap::internal::Config::DEFAULT;
        if (row.apply)(&mut scratch, v.as_bytes()) {
            Ok(v.to_string())
        } else {
            Err(format!("expected {}", row.accepts))
        }
    }
}

/// Options of `hugeheap run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The HUGEHEAP_* settings.
    #[command(flatten)]
    pub options: OptionFlags,
    /// Path of libhugeheap.so (default: HUGEHEAP_LIB, then one in ../lib from this program,
    /// then the copy this program carries; `hugeheap lib-path` prints which).
    #[arg(long)]
    pub lib: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

/// Options of `hugeheap pool`.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Reserve pages for a heap of this size (such as 512M, 4G), with the copies forked
    /// children and HUGEHEAP_COW_RESERVE ask for; 1 GiB pages where the kernel finds them.
    #[arg(long = "for", value_name = "SIZE", value_parser = heap_size, conflicts_with = "release")]
    pub heap: Option<usize>,
    /// Forked children that keep the heap alive at once (fork without exec: worker pools,
    /// prefork servers, snapshots).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "heap")]
    pub children: usize,
    /// Put the pools back as they were before the first `--for` since boot.
    #[arg(long)]
    pub release: bool,
    /// Print the sysctl.d, kernel command-line and systemd lines that keep the pools as they
    /// are now across reboots.
    #[arg(long)]
    pub persist: bool,
    /// With --persist: write the files (/etc/sysctl.d/90-hugeheap.conf and, for 1 GiB pages,
    /// /etc/systemd/system/hugeheap-pools.service) instead of printing them.
    #[arg(long, requires = "persist")]
    pub write: bool,
    /// With --write: the root the files go under (an image being built).
    #[arg(long, value_name = "DIR", default_value = "/", requires = "write")]
    pub prefix: PathBuf,
    /// Read and resize the pools under this directory instead of / (for tests).
    #[arg(long, hide = true, default_value = "/")]
    pub root: PathBuf,
}

/// A heap size for `--for`: what `HUGEHEAP_MAX_HEAP` accepts, above zero.
fn heap_size(v: &str) -> Result<usize, String> {
    match hugeheap::internal::parse_size(v.as_bytes()) {
        Some(0) => Err("a heap of 0 bytes needs no pool".into()),
        Some(n) => Ok(n),
        None => Err("expected a size such as 512M, 4G, 1T (suffixes K, M, G, T; powers of 1024)".into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["hugeheap", "run"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Command::Run(a) => Ok(a),
            c => panic!("parsed as {c:?}"),
        }
    }

    #[test]
    fn option_flags_become_the_variables_of_the_option_table() {
        let a = run_args(&["--pages", "2m,thp", "--max-heap", "4G", "--verbose", "--", "prog", "--pages"]).unwrap();
        assert_eq!(a.options.vars, [("HUGEHEAP_PAGES", "2m,thp".to_string()), ("HUGEHEAP_MAX_HEAP", "4G".to_string())]);
        assert!(a.options.verbose);
        assert_eq!(a.cmd, ["prog", "--pages"], "the program's own arguments are its own");
    }

    #[test]
    fn a_bad_value_is_refused_with_what_the_row_accepts() {
        let e = run_args(&["--pages", "3m", "--", "prog"]).unwrap_err().to_string();
        let row = OPTIONS.iter().find(|r| r.env == "HUGEHEAP_PAGES").unwrap();
        assert!(e.contains(row.accepts), "{e}");
        assert!(run_args(&["--", "prog"]).unwrap().options.vars.is_empty());
    }

    #[test]
    fn bench_hands_every_argument_on() {
        let cli = Cli::try_parse_from(["hugeheap", "bench", "fork", "--quick", "--help"]).unwrap();
        let Command::Bench(b) = cli.command else { panic!("not bench") };
        assert_eq!(b.args, ["fork", "--quick", "--help"]);
    }
}

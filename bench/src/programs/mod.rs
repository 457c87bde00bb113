//! `hugeheap bench programs`: real programs that fork from a big heap, run as installed
//! ("plain") and under hugeheap (LD_PRELOAD of libhugeheap.so, as `hugeheap run` does), in one
//! run, their outputs checked identical: Redis saving under write traffic ([`redis`]), a Python
//! `multiprocessing` fork pool and Perl forked workers ([`scripts`]), PostgreSQL's backend per
//! connection ([`postgres`]), the prefork servers gunicorn and unicorn with recycled workers
//! ([`prefork`]). A program that is not installed is skipped, with the reason and the
//! command that installs it.
//!
//! hugeheap runs twice: on THP, as most users get it (the hugetlb pools emptied for the run),
//! and with a 2 MiB pool sized for the program; both with the default settings. The pools are
//! the run's only while it lasts (root) and are put back afterwards; without root the pool
//! setups are skipped and the rest run with the pools as they are.

pub mod postgres;
pub mod prefork;
pub mod redis;
pub mod report;
pub mod scripts;
pub mod setup;

use setup::PoolHold;
pub use setup::{Options, Section, installed};

/// Runs the chosen programs and writes the report.
pub fn run(opts: &Options) -> std::io::Result<Vec<Section>> {
    let wanted = |p: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == p);
    let pools = PoolHold::take();
    if !pools.holds_pools() {
        eprintln!(
            "hugeheap-bench programs: not root: the pool setups are skipped, the others run with the pools as they are"
        );
    }
    let mut sections = Vec::new();
    let mut say = |s: Section| {
        eprint!("{}", report::markdown(std::slice::from_ref(&s)));
        sections.push(s);
    };
    if wanted("redis") {
        say(redis::run(opts, &pools));
    }
    if wanted("python") {
        say(scripts::python(opts, &pools));
    }
    if wanted("perl") {
        say(scripts::perl(opts, &pools));
    }
    if wanted("postgres") {
        say(postgres::run(opts, &pools));
    }
    if wanted("gunicorn") {
        say(prefork::gunicorn(opts, &pools));
    }
    if wanted("unicorn") {
        say(prefork::unicorn(opts, &pools));
    }
    drop(pools);
    report::write(&sections, opts)?;
    Ok(sections)
}

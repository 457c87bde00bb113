//! Interpreters whose forked workers read a big shared heap: a Python `multiprocessing` fork
//! pool and Perl forked workers. Both write every object they read (reference counts), so each
//! worker copies the pages it reads: the case where hugetlb pools used to run dry and kill the
//! workers. Measured: the fork's latency (median of 10 forks of a child that exits at once), the
//! workers' run end to end, the 2 MiB pool pages taken meanwhile, the workers' exit (a worker
//! killed makes a Python pool hang: a run that does not end in 10 minutes is killed and
//! reported as hung), and the result, compared with the plain run's.

use super::setup::{PoolHold, PoolWatch, Section, Setup, scratch};
use crate::figures::{median, mib_cell, ms};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run that takes longer is hung.
const HANG: Duration = Duration::from_secs(600);

const PYTHON: &str = r#"
import multiprocessing as mp, os, sys, time
N, WORKERS, TASKS = int(sys.argv[1]), int(sys.argv[2]), 200
data = [(i, str(i) * 10, float(i)) for i in range(N)]
def work(k):
    # Reads every object of its slice, and so writes their reference counts.
    s = 0
    for t in data[k::TASKS]:
        s += t[0] + len(t[1])
    return s
if __name__ == "__main__":
    lat = []
    for _ in range(10):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        lat.append(time.perf_counter() - t)
        os.waitpid(pid, 0)
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(WORKERS) as pool:
        res = pool.map(work, range(TASKS), chunksize=1)
    print("work_s", time.perf_counter() - t0)
    print("fork_ms", sorted(lat)[5] * 1000)
    print("result", sum(res))
    print("failed 0")
"#;

const PERL: &str = r#"
use strict; use POSIX (); use Time::HiRes qw(time);
my ($n, $workers) = @ARGV;
my %h = map { ($_ => "v" x 20 . $_) } 1 .. $n;
my @lat;
for (1 .. 10) {
    my $t = time; my $pid = fork() // die "fork: $!";
    POSIX::_exit(0) if $pid == 0;
    push @lat, time - $t; waitpid($pid, 0);
}
my $t0 = time; my @pids;
for my $w (1 .. $workers) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $s = 0; $s += length($h{$_}) for keys %h;
        open(my $f, ">", "sum.$w") or POSIX::_exit(3); print $f $s; close $f; POSIX::_exit(0);
    }
    push @pids, $pid;
}
my $failed = 0;
for my $p (@pids) { waitpid($p, 0); $failed++ if $? != 0; }
printf "work_s %.3f\nfork_ms %.3f\nfailed %d\n", time - $t0, (sort { $a <=> $b } @lat)[5] * 1000, $failed;
sub slurp { my $f; open($f, "<", $_[0]) or return "missing"; my $l = <$f>; return $l; }
my @sums = map { slurp("sum.$_") } 1 .. $workers;
print "result ", join(",", @sums), "\n";
"#;

/// What one run printed (`key value` lines), with its wall time and exit.
struct Run {
    values: HashMap<String, String>,
    wall: f64,
    pool_pages: usize,
    status: String,
}

/// Runs `program script args` under `setup` in a scratch directory, killing it if it hangs.
fn run_script(setup: &Setup, lib: &Path, program: &str, script: &str, args: &[String]) -> Result<Run, String> {
    let dir = scratch(program);
    let path = dir.join("script");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    setup.apply(&mut cmd, lib);
    cmd.arg(&path).args(args).current_dir(&dir).stdout(Stdio::piped()).stderr(Stdio::piped());
    let watch = PoolWatch::start();
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut hung = false;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > HANG {
            hung = true;
            // The whole group: a hung pool's workers too.
            let _ = Command::new("pkill").args(["-KILL", "-P", &child.id().to_string()]).status();
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let wall = start.elapsed().as_secs_f64();
    let pool_pages = watch.used();
    let _ = std::fs::remove_dir_all(&dir);
    let values = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let status = if hung {
        format!("hung ({HANG:?}, killed)")
    } else if out.status.success() {
        "ok".into()
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        format!("{} ({})", out.status, err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim())
    };
    Ok(Run { values, wall, pool_pages, status })
}

/// A section for an interpreter: each setup `runs` times; the medians, and every run's exit.
#[allow(clippy::too_many_arguments)]
fn section(
    program: &str,
    name: &str,
    workload: String,
    script: &str,
    args: Vec<String>,
    runs: usize,
    pool_pages: usize,
    opts: &super::setup::Options,
    pools: &PoolHold,
) -> Section {
    let mut section = Section {
        program: name.into(),
        workload,
        columns: ["setup", "fork", "workers, end to end", "whole run", "pool pages taken", "runs that ended well"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    if !super::setup::installed(program, "--version") {
        section.notes.push(format!("skipped: {program} is not installed (apt install {program})"));
        return section;
    }
    let mut results: Vec<(String, String)> = Vec::new();
    for setup in [Setup::plain(), Setup::hugeheap_thp(), Setup::hugeheap_pool(pool_pages)] {
        let mut cells = || -> Result<Vec<String>, String> {
            pools.set_for(&setup)?;
            let (mut fork, mut work, mut wall, mut pool, mut good) = (vec![], vec![], vec![], 0, 0);
            let mut statuses = Vec::new();
            for _ in 0..runs {
                let r = run_script(&setup, &opts.lib, program, script, &args)?;
                let num = |k: &str| r.values.get(k).and_then(|v| v.parse::<f64>().ok());
                let ended_well = r.status == "ok" && num("failed") == Some(0.0);
                if ended_well {
                    good += 1;
                    fork.push(num("fork_ms").unwrap_or(f64::NAN));
                    work.push(num("work_s").unwrap_or(f64::NAN));
                    wall.push(r.wall);
                    results.push((setup.name.clone(), r.values.get("result").cloned().unwrap_or_default()));
                } else {
                    let failed = r.values.get("failed").map_or(String::new(), |f| format!(", {f} workers failed"));
                    statuses.push(format!("{}{failed}", r.status));
                }
                pool = pool.max(r.pool_pages);
            }
            let mut ended = format!("{good} of {runs}");
            if !statuses.is_empty() {
                ended.push_str(&format!(": {}", statuses.join("; ")));
            }
            let secs = |v: &mut Vec<f64>| if v.is_empty() { "-".into() } else { format!("{:.2} s", median(v)) };
            Ok(vec![
                if fork.is_empty() { "-".into() } else { ms(median(&mut fork)) },
                secs(&mut work),
                secs(&mut wall),
                if setup.pool_2m == Some(0) { "-".into() } else { format!("{pool} ({})", mib_cell(pool * (2 << 20))) },
                ended,
            ])
        };
        section.rows.push((setup.name.clone(), cells()));
    }
    let first = results.first().map(|r| r.1.clone());
    let same = results.iter().all(|r| Some(&r.1) == first.as_ref());
    section.notes.push(format!(
        "The workers' result {} in all {} runs that ended well.",
        if same { "is identical" } else { "DIFFERS" },
        results.len()
    ));
    section
}

/// The Python section: ~1 GiB of objects (a tenth with `--quick`), a fork pool of 2 workers
/// mapping 200 tasks over it; a 2 MiB pool 2.5 times the heap.
pub fn python(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    let (n, runs) = if opts.quick { (600_000, 1) } else { (6_000_000, 1) };
    // ~180 bytes an object (tuple, str, float, int).
    let heap_pages = n * 180 / (2 << 20);
    section(
        "python3",
        "Python",
        format!(
            "{n} objects (~{} MiB; pymalloc, its arenas in the map zone under hugeheap), multiprocessing fork pool of 2 mapping 200 \
             tasks that read every object; {runs} run(s)",
            (n * 180) >> 20
        ),
        PYTHON,
        vec![n.to_string(), "2".into()],
        runs,
        heap_pages * 5 / 2,
        opts,
        pools,
    )
}

/// The Perl section: a hash of 1.8 M keys (a tenth with `--quick`), 4 forked workers that each
/// read all of it, 3 runs; a 2 MiB pool 3.3 times the heap.
pub fn perl(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    let n = if opts.quick { 180_000 } else { 1_800_000 };
    // ~130 bytes a key (hash entry, key, value).
    let heap_pages = n * 130 / (2 << 20);
    section(
        "perl",
        "Perl",
        format!("a hash of {n} keys (~{} MiB), 4 forked workers that each read all of it; 3 runs", (n * 130) >> 20),
        PERL,
        vec![n.to_string(), "4".into()],
        3,
        heap_pages * 10 / 3,
        opts,
        pools,
    )
}

//! Forked children that keep a heap in hugetlb pages, under the default settings: however many
//! of them write, none dies of SIGBUS and none hangs, with a 2 MiB pool too small to cover
//! them all (the children move out of the pool instead; see src/pageheap/family.rs). A C
//! program with N writing children, a Python `multiprocessing` fork pool, and Perl workers,
//! each with its own tight pool. Root only (the pool is resized); skipped, and said, without.

mod common;

use common::{PoolGuard, build, hugeheap, lib, pool_free, skip};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests here resize the same pool.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a program may run before it counts as hung. A guard against hanging forever, not
/// a timing check: the runs take seconds, and a hung pool never finishes.
const HANG: Duration = Duration::from_secs(600);

/// Runs `cmd` under `hugeheap run` (default settings), killing it if it hangs.
fn run_guarded(cmd: &[&str], dir: &Path) -> Output {
    let mut child = hugeheap()
        .args(["run", "--verbose", "--lib"])
        .arg(lib())
        .arg("--")
        .args(cmd)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hugeheap run");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > HANG {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{cmd:?} hung for {HANG:?} (killed)\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value after `key ` on a line of `text`.
fn value(text: &[u8], key: &str) -> Option<usize> {
    String::from_utf8_lossy(text).lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// Sets the 2 MiB pool to `pages` free pages; `None` (skipped, said) where that cannot be.
fn tight_pool(pages: usize) -> Option<PoolGuard> {
    let pool = PoolGuard::take(2048)?;
    let got = pool.set_available(pages);
    if got < pages {
        skip("pool-2m", &format!("the 2 MiB pool could get only {got} of {pages} free pages"));
        return None;
    }
    Some(pool)
}

/// The pool's free pages are back to `pages` once every process of the run has exited (a
/// child's copy-on-write pages were given back, nothing leaked).
fn pool_back_to(pages: usize) {
    assert_eq!(pool_free(2048), Some(pages), "the pool's free pages after the run");
}

#[test]
fn writing_children_with_a_tight_pool_all_live() {
    let _serial = serial();
    let Some(prog) = build("children.c", "cc", &[]) else { return };
    // 128 MiB of objects, of which 80 MiB in hugetlb pages: 80 free pages, and the
    // copy-on-write reserve lets the heap take 40 and keeps 40 for one child that writes;
    // from the second on, there is no room.
    const POOL: usize = 80;
    let Some(_pool) = tight_pool(POOL) else { return };
    for n in 1..=4 {
        let out = run_guarded(&[prog.to_str().unwrap(), &n.to_string(), "128"], Path::new("."));
        assert_success(&out, &format!("{n} writing children"));
        assert!(String::from_utf8_lossy(&out.stdout).contains("children ok"));
        let hugetlb = value(&out.stdout, "hugetlb_kib").expect("hugetlb_kib printed");
        assert!(hugetlb >= 40 * 2048, "{n} children: the heap held only {hugetlb} KiB of hugetlb pages");
        pool_back_to(POOL);
    }
}

/// Runs `script` with `interpreter` (skipped, said, where it is missing) against a 2 MiB pool
/// of `pool` free pages: it must exit 0, print `ok_line`, report at least `min_kib` of hugetlb
/// pages (else nothing was tested), and leave the pool as it found it.
fn script_with_tight_pool(interpreter: [&str; 2], script: &str, pool: usize, ok_line: &str, min_kib: usize) {
    let [program, version] = interpreter;
    if Command::new(program).arg(version).output().is_err() {
        skip(program, &format!("{program} is not installed"));
        return;
    }
    let Some(_pool) = tight_pool(pool) else { return };
    let dir = common::tmp(&format!("{program}-tight-pool"));
    std::fs::write(dir.join("script"), script).unwrap();
    let out = run_guarded(&[program, "script"], &dir);
    assert_success(&out, program);
    assert!(String::from_utf8_lossy(&out.stdout).contains(ok_line));
    let hugetlb = value(&out.stdout, "hugetlb_kib").expect("hugetlb_kib printed");
    assert!(
        hugetlb >= min_kib,
        "the heap held only {hugetlb} KiB of hugetlb pages (at least {min_kib} to test anything)"
    );
    pool_back_to(pool);
}

#[test]
fn python_fork_pool_with_a_tight_pool_completes() {
    let _serial = serial();
    let script = r#"
import multiprocessing as mp, sys
data = [str(i) * 5 for i in range(2_000_000)]
def work(k):
    # Reads every object of its slice, and so writes their reference counts.
    return sum(len(s) for s in data[k::40])
if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        got = sum(pool.map(work, range(40), chunksize=1))
    assert got == sum(len(s) for s in data), got
    status = open("/proc/self/status").read()
    hugetlb = next(l.split()[1] for l in status.splitlines() if l.startswith("HugetlbPages:"))
    print("pool ok")
    print("hugetlb_kib", hugetlb)
"#;
    // A ~200 MiB heap and 190 free pages (~1.9 times the heap): the heap takes about half,
    // and two workers that each copy what they read need more than the rest.
    script_with_tight_pool(["python3", "--version"], script, 190, "pool ok", 80 * 2048);
}

#[test]
fn perl_reading_workers_with_a_tight_pool_all_exit_0() {
    let _serial = serial();
    // A hash of 600 k keys; 4 forked workers each read all of it (Perl writes the reference
    // counts of what it reads), and exit 0 if their sums agree.
    let script = r#"
my %h = map { ($_ => "v" x 20 . $_) } 1 .. 600_000;
my @pids;
for my $w (1 .. 4) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) { my $n = 0; $n += length($h{$_}) for keys %h; exit($n > 0 ? 0 : 3); }
    push @pids, $pid;
}
my $bad = 0;
for my $p (@pids) { waitpid($p, 0); $bad++ if $? != 0; print "worker status $?\n" if $? != 0; }
open(my $st, "<", "/proc/self/status"); my ($kib) = map { /HugetlbPages:\s+(\d+)/ ? $1 : () } <$st>;
print "hugetlb_kib $kib\n";
print $bad ? "workers failed\n" : "workers ok\n";
exit($bad ? 1 : 0);
"#;
    script_with_tight_pool(["perl", "-v"], script, 120, "workers ok", 1);
}

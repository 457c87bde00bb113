//! Told when THP cannot keep up: a C program whose thread writes all over a THP heap while
//! the main thread forks and execs back to back is told once, on stderr, that copy-on-write
//! splits its huge pages faster than hugeheap restores them, with the pool to reserve; the
//! same program forking every few seconds has its split pages restored between forks and is
//! told nothing.

mod common;

use common::{build, hugeheap, lib, skip};
use hugeheap::internal::{OsInfo, ThpMode};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADVICE: &str = "splits this program's THP huge pages faster than hugeheap restores them";

/// How long the loop may run before the advice counts as missing: a guard against waiting
/// forever, not a timing check (it comes after a few sweeps, seconds apart).
const GIVE_UP: Duration = Duration::from_secs(300);

fn keepup(args: &[&str]) -> Option<Command> {
    if !matches!(OsInfo::probe().thp, ThpMode::Always | ThpMode::Madvise) {
        skip("thp", "THP is off (never): no huge page splits");
        return None;
    }
    let prog = build("keepup.c", "cc", &[])?;
    let mut c = hugeheap();
    // THP only: a pool's pages never split.
    c.args(["run", "--verbose", "--pages", "thp", "--lib"]).arg(lib()).arg("--").arg(prog).args(args);
    Some(c)
}

#[test]
fn forks_in_a_loop_under_writes_are_told_once_with_the_pool_to_reserve() {
    let Some(mut c) = keepup(&["256", "loop"]) else { return };
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(ADVICE) {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    let start = Instant::now();
    let told = loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break true;
        }
        if start.elapsed() > GIVE_UP || child.try_wait().unwrap().is_some() {
            break false;
        }
    };
    // `hugeheap run` execs the program: the child is the program. SIGTERM ends its loop.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    assert!(told, "no advice after {:?} of forks under writes:\n{err}", start.elapsed());
    let lines: Vec<_> = err.lines().filter(|l| l.contains(ADVICE)).collect();
    assert_eq!(lines.len(), 1, "said once:\n{err}");
    assert!(lines[0].contains("hugeheap pool --for ") && lines[0].contains("x 2 MiB pages"), "{}", lines[0]);
    assert!(err.contains("found split"), "the exit report counts the split pages:\n{err}");
}

#[test]
fn forks_a_few_seconds_apart_are_restored_between_them_and_not_told() {
    let Some(mut c) = keepup(&["96", "spaced", "5", "3"]) else { return };
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    assert!(!err.contains(ADVICE), "told, though the pages were restored between forks:\n{err}");
    // Not vacuous: the writes did split pages (the program writes over the heap while each
    // child lives), and the helper restored them.
    let restored: usize = err
        .split(" huge pages found split, ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no re-collapse figures in the exit report:\n{err}"));
    assert!(restored > 0, "nothing was split and restored:\n{err}");
}

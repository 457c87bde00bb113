//! Helpers shared by the tests that run programs under `hugeheap run`: the library, C
//! programs built from tests/c, and the checks on their output.
#![allow(dead_code)]

pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[path = "../../../tests/common/skip.rs"]
mod skip_impl;
pub use skip_impl::skip;
#[path = "../../../tests/common/pools.rs"]
mod pools_impl;
#[allow(unused_imports)] // not every test binary resizes a pool
pub use pools_impl::{PoolGuard, pool_free};

/// The `hugeheap` command under test: this build's, or `HUGEHEAP_TEST_BIN` (an installed
/// one: `scripts/deb` runs the drop-in tests against the packaged files).
pub fn hugeheap() -> Command {
    Command::new(std::env::var_os("HUGEHEAP_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hugeheap").into()))
}

/// libhugeheap.so: the copy the `hugeheap` command carries (built by its build script from
/// this checkout), written out to a directory of the tests' own, so that what is tested is
/// what the command preloads and a stale library from an earlier build never is; or
/// `HUGEHEAP_TEST_LIB` (an installed one).
pub fn lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(p) = std::env::var_os("HUGEHEAP_TEST_LIB") {
            return PathBuf::from(p);
        }
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/preload-test");
        std::fs::create_dir_all(&own).expect("create target/preload-test");
        hugeheap_cli::embedded::write_to(&own).expect("write libhugeheap.so")
    })
}

/// A copy of [`lib`] in the tests' temporary directory, which every user can read: for the
/// runs as another user, whatever the checkout's permissions.
pub fn lib_for_anyone() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let to = tmp("anyone").join("libhugeheap.so");
        std::fs::copy(lib(), &to).expect("copy libhugeheap.so");
        to
    })
}

/// Whether the tests run as root.
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `setpriv`'s arguments that run a program as user and group 65534 (`nobody`), for the runs
/// as an unprivileged user when the tests run as root; empty when they run as another user
/// already. `None` (said) where `setpriv` is missing or `prog` or [`lib_for_anyone`] is out of
/// that user's reach.
pub fn unprivileged(prog: &Path) -> Option<&'static [&'static str]> {
    if !root() {
        return Some(&[]);
    }
    const SETPRIV: &[&str] = &["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    let reach = Command::new("setpriv")
        .args(SETPRIV)
        .args(["sh", "-c", "test -x \"$0\" && test -r \"$1\""])
        .arg(prog)
        .arg(lib_for_anyone())
        .status();
    if !reach.is_ok_and(|s| s.success()) {
        skip("user", &format!("setpriv missing, or {} out of user 65534's reach", prog.display()));
        return None;
    }
    Some(SETPRIV)
}

/// The number in a `name=N` word of `text`: what the test programs print.
pub fn word_value(text: &str, name: &str) -> Option<i64> {
    text.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

pub fn tmp(name: &str) -> PathBuf {
    // The process id alone repeats (pid_max is 32768 here, and a fork benchmark goes through
    // it): a directory left by an earlier run with the same id would hand this one its files.
    // The time of the first call makes the name this process's own; the tests of one binary
    // share it.
    static RUN: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let run = RUN
        .get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let d = std::env::temp_dir().join(format!("hugeheap-preload-{}-{run}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles a test program from tests/c with `cc` (or `c++`). Tests of one binary build the
/// same program at once: each compiles to a name of its own and renames it into place, so none
/// runs a file another compiler is still writing.
pub fn build(src: &str, compiler: &str, extra: &[&str]) -> Option<PathBuf> {
    let srcp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(src);
    let out = tmp("bin").join(src.split('.').next().unwrap());
    let own = out.with_extension(format!("{:?}.tmp", std::thread::current().id()).replace(['(', ')'], ""));
    let st =
        Command::new(compiler).args(["-O1", "-g", "-Wall", "-pthread", "-o"]).arg(&own).arg(&srcp).args(extra).status();
    match st {
        Ok(s) if s.success() => {
            std::fs::rename(&own, &out).expect("rename the built program into place");
            Some(out)
        }
        Ok(s) => panic!("{compiler} {src} failed: {s}"),
        Err(e) => {
            skip(compiler, &format!("cannot build {src}: no {compiler} ({e})"));
            None
        }
    }
}

pub fn under_hugeheap(prog: &Path, extra_env: &[(&str, &str)]) -> Output {
    hugeheap()
        .args(["run", "--verbose", "--lib"])
        .arg(lib())
        .arg("--")
        .arg(prog)
        .envs(extra_env.iter().copied())
        .output()
        .unwrap()
}

pub fn assert_ran_on_hugeheap(out: &Output, ok_line: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    assert!(stdout.contains(ok_line), "{stdout}");
    assert_eq!(stderr.matches("hugeheap: pages=").count(), 1, "exactly one start-up line:\n{stderr}");
    assert!(stderr.contains("hugeheap: at exit"), "exit stats:\n{stderr}");
}

/// Copies this build's `hugeheap` command to `exe`, and returns once the copy runs. A child
/// another test thread forked while the copy was open for writing holds that descriptor until
/// it execs, and exec of the copy fails meanwhile (ETXTBSY). Once the copy has run, no writer
/// is left: the copy's own descriptor is closed.
pub fn copy_command(exe: &Path) {
    std::fs::copy(env!("CARGO_BIN_EXE_hugeheap"), exe)
        .unwrap_or_else(|e| panic!("copy the command to {}: {e}", exe.display()));
    for attempt in 0.. {
        match Command::new(exe).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 1000 => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            r => {
                r.expect("run the copied command");
                break;
            }
        }
    }
}

//! Environment variables, read in a child process each: every bad value gets its one line on
//! stderr and the default; the cap turns into null returns the program survives; verbose
//! prints the start line and the exit stats; retain=0 gives free huge pages back at once.

mod common;

use common::*;
use hugeheap::HugeAlloc;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

/// The child's body, for the mode its parent asked for.
fn body() {
    let mode = child_mode().expect("in the child");
    match mode.as_str() {
        "work" => {
            let v: Vec<Vec<u8>> = (0..10_000).map(|i| vec![i as u8; 64]).collect();
            println!("@ok={}", v.len());
        }
        "grow" => {
            // 32 MiB: past the size below which a heap in 4 KiB pages is not worth a word.
            let v: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8; 64 << 10]).collect();
            println!("@ok={}", v.len());
        }
        "cap" => {
            let mut big: Vec<u8> = Vec::new();
            let refused = big.try_reserve_exact(200 << 20).is_err();
            // The program goes on: smaller allocations still succeed.
            let small: Vec<Vec<u8>> = (0..100).map(|_| vec![7u8; 100_000]).collect();
            let s = hugeheap::stats();
            // SAFETY: getauxval has no preconditions.
            let secure = unsafe { libc::getauxval(libc::AT_SECURE) };
            println!("@refused={} small={} committed={} secure={secure}", refused, small.len(), s.committed);
        }
        "retain" => {
            let big = vec![1u8; 256 << 20];
            drop(big);
            let s = hugeheap::stats();
            println!("@released_total={} released_now={}", s.released_total, s.released_now);
            // After the decay (1 s by default), the next use of the page heap gives them back.
            std::thread::sleep(std::time::Duration::from_millis(1300));
            drop(vec![2u8; 4 << 20]);
            println!("@released_later={}", hugeheap::stats().released_total);
        }
        "thp-off" => {
            // A program that switches THP off for itself after start, as Redis does.
            let early = vec![1u8; 16 << 20];
            // SAFETY: prctl with PR_SET_THP_DISABLE changes only this process's THP setting.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) }, 0);
            let late = vec![2u8; 256 << 20];
            let s = hugeheap::stats();
            println!(
                "@why_thp={:?} k4k={} kthp={} anon_huge={}",
                s.fallback(hugeheap::PageKind::Thp).reason,
                s.bytes(hugeheap::PageKind::Small),
                s.bytes(hugeheap::PageKind::Thp),
                s.kernel.anon_huge
            );
            drop((early, late));
        }
        other => panic!("unknown mode {other}"),
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_values_warn_once_each_and_keep_defaults() {
    if as_child(body) {
        return;
    }
    let out = child(
        "work",
        &[
            ("HUGEHEAP_PAGES", "fast"),
            ("HUGEHEAP_MAX_HEAP", "lots"),
            ("HUGEHEAP_RETAIN", "-3"),
            ("HUGEHEAP_VERBOSE", "maybe"),
        ],
    );
    assert_ok(&out);
    assert_eq!(child_values(&out)["ok"], "10000");
    let err = stderr_of(&out);
    for (var, accepted) in [
        ("HUGEHEAP_PAGES=\"fast\"", "auto, or a comma list of 1g,2m,thp,4k"),
        ("HUGEHEAP_MAX_HEAP=\"lots\"", "a size of at least 2M"),
        ("HUGEHEAP_RETAIN=\"-3\"", "a size such as"),
        ("HUGEHEAP_VERBOSE=\"maybe\"", "0, 1, or pid:N"),
    ] {
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(var)).collect();
        assert_eq!(lines.len(), 1, "{var} in:\n{err}");
        assert!(
            lines[0].starts_with("hugeheap: ")
                && lines[0].contains(accepted)
                && lines[0].ends_with("using the default"),
            "{}",
            lines[0]
        );
    }
    // Verbose stayed at its default (off): no start line.
    assert!(!err.contains("hugeheap: pages="), "{err}");
}

#[test]
fn verbose_prints_start_line_and_exit_stats() {
    if as_child(body) {
        return;
    }
    let out = child("work", &[("HUGEHEAP_VERBOSE", "1"), ("HUGEHEAP_PAGES", "thp,4k")]);
    assert_ok(&out);
    let err = stderr_of(&out);
    let start: Vec<&str> = err.lines().filter(|l| l.starts_with("hugeheap: pages=")).collect();
    assert_eq!(start.len(), 1, "{err}");
    assert!(start[0].contains("pages=thp,4k") && start[0].contains("thp="), "{}", start[0]);
    assert!(err.contains("hugeheap: at exit") && err.contains("in use") && err.contains("committed as"), "{err}");
    assert!(err.contains("kernel says  THP "), "the kernel's view beside hugeheap's: {err}");
}

#[test]
fn max_heap_cap_returns_null_and_program_goes_on() {
    if as_child(body) {
        return;
    }
    let out = child("cap", &[("HUGEHEAP_MAX_HEAP", "64M")]);
    assert_ok(&out);
    let v = child_values(&out);
    assert_eq!(v["refused"], "true", "{v:?}");
    assert_eq!(v["small"], "100");
    assert!(v["committed"].parse::<usize>().unwrap() <= 64 << 20, "{v:?}");
    // Said once, on stderr, even without HUGEHEAP_VERBOSE: the program may die of the null.
    let err = stderr_of(&out);
    let said =
        "hugeheap: the heap reached its cap, HUGEHEAP_MAX_HEAP=64M; allocations that need more memory return NULL";
    assert_eq!(err.matches(said).count(), 1, "{err}");
}

#[test]
fn a_chain_that_gets_no_huge_pages_says_so_once() {
    if as_child(body) {
        return;
    }
    // 1 GiB pages only, and a copy-on-write reserve no pool here can satisfy (100x what the
    // process would hold): the heap ends in 4 KiB pages, whatever the machine has.
    let out = child("grow", &[("HUGEHEAP_PAGES", "1g"), ("HUGEHEAP_COW_RESERVE", "10000"), ("HUGEHEAP_VERBOSE", "1")]);
    assert_ok(&out);
    let err = stderr_of(&out);
    let said: Vec<&str> = err.lines().filter(|l| l.starts_with("hugeheap: no huge pages for the heap")).collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains("HUGEHEAP_PAGES=1g") && said[0].contains("4 KiB pages") && said[0].contains("hugeheap doctor")
    );
    // Verbose says what was passed over and what was used instead.
    assert!(
        err.lines().any(|l| l.starts_with("hugeheap: 1g pages not used") && l.ends_with("4k pages instead")),
        "{err}"
    );
    // Without verbose, the one line stays (it changes what the program gets); 4k by choice is quiet.
    let quiet = child("grow", &[("HUGEHEAP_PAGES", "1g"), ("HUGEHEAP_COW_RESERVE", "10000")]);
    assert_eq!(stderr_of(&quiet).matches("hugeheap: no huge pages for the heap").count(), 1);
    // A small process (under 8 MiB of heap: a wrapper's helper shell) says nothing: it forks
    // fast in 4 KiB pages, and a pyenv shim runs a dozen of them before the program.
    let small = child("work", &[("HUGEHEAP_PAGES", "1g"), ("HUGEHEAP_COW_RESERVE", "10000")]);
    assert!(!stderr_of(&small).contains("hugeheap:"), "{}", stderr_of(&small));
    let chosen = child("work", &[("HUGEHEAP_PAGES", "4k")]);
    assert!(!stderr_of(&chosen).contains("hugeheap:"), "{}", stderr_of(&chosen));
}

#[test]
fn verbose_for_another_pid_is_quiet() {
    if as_child(body) {
        return;
    }
    let out = child("work", &[("HUGEHEAP_VERBOSE", "pid:1")]);
    assert_ok(&out);
    assert!(!stderr_of(&out).contains("hugeheap:"), "{}", stderr_of(&out));
}

#[test]
fn retain_zero_without_decay_gives_free_huge_pages_back_at_once() {
    if as_child(body) {
        return;
    }
    let out = child("retain", &[("HUGEHEAP_RETAIN", "0"), ("HUGEHEAP_DECAY", "0"), ("HUGEHEAP_PAGES", "thp")]);
    assert_ok(&out);
    let v = child_values(&out);
    assert!(v["released_total"].parse::<usize>().unwrap() >= 256 << 20, "{v:?}");
}

#[test]
fn default_decay_keeps_free_pages_for_a_second_then_gives_back_beyond_retain() {
    if as_child(body) {
        return;
    }
    let out = child("retain", &[("HUGEHEAP_PAGES", "thp")]);
    assert_ok(&out);
    let v = child_values(&out);
    assert_eq!(v["released_total"], "0", "freed pages are young: {v:?}");
    // Past the decay, all but the 8 MiB retained go back.
    let later = v["released_later"].parse::<usize>().unwrap();
    assert!((240 << 20..=260 << 20).contains(&later), "{v:?}");
}

#[test]
fn secure_execution_ignores_the_variables() {
    use std::os::unix::fs::PermissionsExt;
    if as_child(body) {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("root", "making a setuid binary needs root");
        return;
    }
    // A setuid-root copy of this test binary, run by `nobody`: the kernel sets AT_SECURE.
    let dir = std::env::temp_dir().join(format!("hugeheap-secure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("env-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let run = |mode: u32| {
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([test_name().as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .current_dir(&dir)
            .env(CHILD_VAR, "cap")
            .env("HUGEHEAP_MAX_HEAP", "64M")
            .env("HUGEHEAP_PAGES", "fast")
            .env("HUGEHEAP_VERBOSE", "1")
            .output();
        match out {
            Ok(out) => Some(out),
            Err(e) => {
                skip("setpriv", &format!("cannot run setpriv ({e})"));
                None
            }
        }
    };
    let (Some(plain), Some(setuid)) = (run(0o755), run(0o4755)) else { return };
    let _ = std::fs::remove_dir_all(&dir);
    assert_ok(&plain);
    assert_ok(&setuid);
    // Not secure: the variables apply (warning, start line, the cap refuses 200 MiB).
    let (p, s) = (child_values(&plain), child_values(&setuid));
    assert_eq!(p["secure"], "0", "{p:?}");
    assert_eq!(p["refused"], "true", "{p:?}");
    assert!(stderr_of(&plain).contains("HUGEHEAP_PAGES=\"fast\" is not valid"), "{}", stderr_of(&plain));
    if s["secure"] != "1" {
        skip("setuid", "the kernel did not run the setuid copy in secure mode (nosuid mount?)");
        return;
    }
    // Secure: as if none were set — no message, no cap.
    assert_eq!(s["refused"], "false", "the cap applied under AT_SECURE: {s:?}");
    assert!(!stderr_of(&setuid).contains("hugeheap:"), "{}", stderr_of(&setuid));
}

#[test]
fn thp_switched_off_by_the_program_is_seen_and_said() {
    if as_child(body) {
        return;
    }
    let out = child("thp-off", &[("HUGEHEAP_PAGES", "thp,4k"), ("HUGEHEAP_VERBOSE", "1")]);
    assert_ok(&out);
    let v = child_values(&out);
    let err = stderr_of(&out);
    assert_eq!(v["why_thp"], "Some(ThpDisabled)", "{v:?}\n{err}");
    // What came after the prctl is in 4 KiB pages, and the kernel's figures say so.
    assert!(v["k4k"].parse::<usize>().unwrap() >= 256 << 20, "{v:?}");
    assert!(v["anon_huge"].parse::<usize>().unwrap() <= v["kthp"].parse::<usize>().unwrap(), "{v:?}");
    // Said once, with the fixes: the option for programs under libhugeheap.so, the flag for
    // a program's own call.
    let said: Vec<&str> = err.lines().filter(|l| l.contains("PR_SET_THP_DISABLE")).collect();
    assert!(
        !said.is_empty()
            && said.iter().all(|l| l.contains("HUGEHEAP_THP_OFF=keep-heap") && l.contains("EXCEPT_ADVISED")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("hugeheap: thp pages not used")), "{err}");
}

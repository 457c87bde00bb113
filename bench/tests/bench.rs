//! The fork benchmark engine, run for real on a small heap: every contestant asked for is in
//! the table (with figures or with its reason), and the CSV, JSON, text and SVG are written.

#[path = "../../tests/common/skip.rs"]
mod skip_impl;

use skip_impl::skip;
use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hugeheap-bench"))
}

#[test]
fn small_run_writes_every_output() {
    let dir = std::env::temp_dir().join(format!("hugeheap-bench-test-{}", std::process::id()));
    let out = bench()
        .args(["fork", "--sizes", "16M", "--forks", "5", "--rounds", "2", "--execs", "3", "--sustained-size", "16M"])
        .args([
            "--sustained-cycles",
            "10",
            "--only",
            "empty,glibc,jemalloc,mimalloc-large,hugeheap,hugeheap-4k,posix_spawn,vfork+exec,spawn-helper",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in [
        "glibc ",
        "jemalloc ",
        "mimalloc-large ",
        "hugeheap ",
        "hugeheap-4k ",
        "posix_spawn ",
        "vfork+exec ",
        "spawn-helper ",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{stdout}"));
        assert!(!line.contains("failed"), "{line}");
    }
    assert!(stdout.contains("floor (an empty process): fork "), "{stdout}");
    assert!(stdout.contains("got"), "{stdout}");
    assert!(stdout.contains("sustained: fork+exec cycles"), "{stdout}");
    assert!(stdout.contains("sustained: fork without exec"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fork.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    // empty once, 5 fork contestants and 3 spawn methods at 16M.
    assert_eq!(rows.len(), 9, "{json}");
    let hh = rows.iter().find(|r| r["contestant"] == "hugeheap").unwrap();
    assert!(hh["measured"]["fork_med_ms"].as_f64().unwrap() > 0.0);
    // Two rounds: each row's fork figures are the median of two processes'; the empty process
    // is a row like the others.
    for r in rows {
        assert_eq!(r["measured"]["rounds"].as_u64(), Some(2), "{r}");
    }
    assert!(stdout.contains("each the median of 2 rounds' medians"), "{stdout}");
    assert!(hh["measured"]["cow"]["rewritten"].as_u64().unwrap() > 1 << 20);
    for mode in ["sustained", "sustained_nox"] {
        let s = &hh["measured"][mode];
        assert_eq!(s["cycles"].as_u64(), Some(10), "{mode}: {s}");
        assert!(s["exec_start_ms"].as_f64().unwrap() > 0.0 && s["writes_per_s"].as_f64().unwrap() > 0.0, "{mode}: {s}");
    }
    let spawn = rows.iter().find(|r| r["contestant"] == "posix_spawn").unwrap();
    assert!(spawn["measured"]["fork_med_ms"].is_null() && spawn["measured"]["exec_med_ms"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(dir.join("fork.csv")).unwrap();
    assert_eq!(csv.lines().count(), 10);
    let svg = std::fs::read_to_string(dir.join("fork.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("hugeheap") && svg.contains("<polyline"), "chart");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_contestant_is_an_error() {
    let out = bench().args(["fork", "--only", "tcmalloc"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown contestant \"tcmalloc\""));
}

#[test]
fn list_names_every_contestant() {
    let out = bench().args(["fork", "--list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 17, "{text}");
    assert!(text.contains("HUGEHEAP_COLLAPSE=0"), "{text}");
    assert!(text.contains("GLIBC_TUNABLES=glibc.malloc.hugetlb=2") && text.contains("_RJEM_MALLOC_CONF=hpa:true"));
}

/// The C-path benchmark, run small: every workload runs under glibc and hugeheap (in its own
/// pages and in 4 KiB ones) with the same output (a differing output or a failure would show in its cell), the peers are there or
/// skipped with their install command, and the files are written.
#[test]
fn cpath_small_run_checks_outputs_and_writes_files() {
    let dir = std::env::temp_dir().join(format!("hugeheap-cpath-test-{}", std::process::id()));
    let out = bench().args(["cpath", "--reps", "1", "--scale", "0.01", "--out"]).arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for w in ["churn", "pairs", "tight", "server", "trace", "threads", "large", "python3", "ruby", "sort"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{w} "))).unwrap_or_else(|| panic!("{w}:\n{stdout}"));
        if let Some(why) = stdout.lines().find(|l| l.starts_with(&format!("{w} glibc: SKIPPED"))) {
            skip(w, why);
            continue;
        }
        assert!(!line.contains(" - "), "{w} has a cell that did not run: {line}\n{stdout}");
    }
    // A cell that failed is reported as "WORKLOAD CONTESTANT: why".
    for c in ["glibc", "hugeheap", "hh-4k"] {
        let failed = |l: &&str| l.split_whitespace().nth(1) == Some(format!("{c}:").as_str()) && !l.contains("SKIPPED");
        if let Some(l) = stdout.lines().find(failed) {
            panic!("{c} failed a workload: {l}");
        }
    }
    assert!(!stdout.contains("output differs"), "{stdout}");
    // A peer that is missing says how to install it.
    for l in stdout.lines().filter(|l| l.contains("SKIPPED")) {
        assert!(l.contains("apt-get install"), "{l}");
    }
    for f in ["cpath.txt", "cpath.csv", "cpath.json"] {
        assert!(dir.join(f).is_file(), "{f} not written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

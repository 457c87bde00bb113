//! A program's own small anonymous mappings under `libhugeheap.so` (`HUGEHEAP_MMAP`): what the
//! kernel promises still holds (a C program checks it, plain and under hugeheap), and the
//! memory interpreters map themselves is in huge pages (Ruby's heap pages, CPython's arenas),
//! with their output unchanged.

mod common;

use common::{build, hugeheap, lib, skip, word_value};
use std::process::{Command, Output};

fn thp_on() -> bool {
    use hugeheap::internal::{OsInfo, ThpMode};
    matches!(OsInfo::probe().thp, ThpMode::Always | ThpMode::Madvise)
}

/// `args` under `hugeheap run` on THP (a pool, where the machine has one, would take the heap
/// out of the anonymous memory measured here).
fn under(args: &[&str], env: &[(&str, &str)]) -> Output {
    hugeheap()
        .args(["run", "--pages", "thp", "--lib"])
        .arg(lib())
        .arg("--")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn field(out: &Output, name: &str) -> i64 {
    let text = String::from_utf8_lossy(&out.stdout);
    word_value(&text, name).unwrap_or_else(|| panic!("{name} in {text}"))
}

fn assert_ok(out: &Output, what: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().any(|l| l == "ok"),
        "{what}: {:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mappings_keep_the_kernels_promises_and_go_to_huge_pages() {
    let Some(prog) = build("map_zone.c", "cc", &[]) else { return };
    let plain = Command::new(&prog).output().unwrap();
    assert_ok(&plain, "plain");
    let p = prog.to_str().unwrap();
    let zone = under(&[p], &[]);
    assert_ok(&zone, "HUGEHEAP_MMAP=huge");
    let kernel = under(&[p], &[("HUGEHEAP_MMAP", "kernel")]);
    assert_ok(&kernel, "HUGEHEAP_MMAP=kernel");
    // 64 arenas of 1 MiB, unmapped whole: their memory went back to the OS in every setup.
    for (out, what) in [(&plain, "plain"), (&zone, "zone"), (&kernel, "kernel")] {
        assert!(field(out, "freed_kib") >= 48 << 10, "{what}: {}", String::from_utf8_lossy(&out.stdout));
    }
    assert_eq!(field(&kernel, "huge_kib"), 0, "the kernel's own mappings stay in 4 KiB pages");
    // The zone placed a new mapping where one advised MADV_DONTFORK had been, and fork copied
    // it (the C program checks the copy).
    assert_eq!(field(&zone, "reused"), 1, "{}", String::from_utf8_lossy(&zone.stdout));
    if !thp_on() {
        skip("thp", "THP is off here: the zone's huge pages are not checked");
        return;
    }
    // The 64 MiB of arenas and the 9 MiB of pages are in THP (a chunk the kernel could not
    // give a huge page at fault is the slack).
    assert!(field(&zone, "huge_kib") >= 48 << 10, "{}", String::from_utf8_lossy(&zone.stdout));
}

/// Anonymous memory of a process, and how much of it is in huge pages (KiB), printed by the
/// interpreter itself after it built its data, with a checksum of that data.
const RUBY: &str = r#"
    h = {}
    600_000.times { |i| h["k#{i}"] = { id: i, name: "n#{i}" * (1 + i % 4), tags: [i % 7, i % 11] } }
    GC.start
    s = File.read("/proc/self/smaps_rollup")
    puts h.sum { |k, v| v[:id] + v[:name].size + v[:tags].sum }
    $stderr.puts "anon_kib=#{s[/Anonymous:\s+(\d+)/, 1]} huge_kib=#{s[/AnonHugePages:\s+(\d+)/, 1]}"
"#;

const PYTHON: &str = r#"
import sys
h = {"k%d" % i: {"id": i, "name": "n%d" % i * (1 + i % 4), "tags": (i % 7, i % 11)} for i in range(300000)}
s = open("/proc/self/smaps_rollup").read()
g = lambda k: s.split(k + ":")[1].split()[0]
print(sum(v["id"] + len(v["name"]) + sum(v["tags"]) for v in h.values()))
print("anon_kib=%s huge_kib=%s" % (g("Anonymous"), g("AnonHugePages")), file=sys.stderr)
"#;

/// Runs `cmd` plain and under hugeheap (`env`): the same output, and at least `pct`% of the
/// anonymous memory in huge pages under hugeheap.
fn check_interpreter(cmd: &[&str], env: &[(&str, &str)], pct: i64) {
    let plain = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    let hh = under(cmd, env);
    assert!(plain.status.success() && hh.status.success(), "{:?}: {}", cmd[0], String::from_utf8_lossy(&hh.stderr));
    assert_eq!(
        String::from_utf8_lossy(&hh.stdout),
        String::from_utf8_lossy(&plain.stdout),
        "{:?}: same output",
        cmd[0]
    );
    let err = String::from_utf8_lossy(&hh.stderr);
    let kib = |name: &str| word_value(&err, name).unwrap_or(0);
    let (anon, huge) = (kib("anon_kib"), kib("huge_kib"));
    assert!(anon > 0 && huge * 100 >= anon * pct, "{:?}: {huge} of {anon} KiB in huge pages\n{err}", cmd[0]);
}

#[test]
fn interpreters_own_object_memory_is_in_huge_pages() {
    if !thp_on() {
        skip("thp", "THP is off here");
        return;
    }
    if Command::new("ruby").arg("--version").output().is_ok() {
        // Ruby 3.1 maps a 16 KiB heap page at a time, and switches THP off for itself.
        check_interpreter(&["ruby", "-e", RUBY], &[], 75);
    } else {
        skip("ruby", "ruby is not installed (apt install ruby)");
    }
    if Command::new("python3").arg("--version").output().is_ok() {
        // CPython's own allocator (pymalloc) maps 1 MiB arenas (256 KiB before 3.10).
        check_interpreter(&["python3", "-c", PYTHON], &[("PYTHONMALLOC", "pymalloc")], 70);
    } else {
        skip("python3", "python3 is not installed");
    }
}

/// A zone grown past 32 MiB by a process that never forked has its next chunk populated by
/// the helper before the program reaches it; not after a fork, nor with no helper
/// (`HUGEHEAP_COLLAPSE=0`). Either way, new mappings read as zero and old ones keep what the
/// program wrote.
#[test]
fn a_growing_zone_has_its_next_chunk_populated_ahead_until_the_first_fork() {
    if !thp_on() {
        skip("thp", "THP is off here: nothing is populated ahead");
        return;
    }
    let Some(prog) = build("zone_ahead.c", "cc", &[]) else { return };
    let p = prog.to_str().unwrap();
    // Up to 120 s for the helper to do it: a guard against waiting forever on a machine too
    // busy to run it, not a timing check. Where nothing is to be populated, 300 ms in which a
    // helper would have had time to act, had it been asked.
    let (wait, short) = ([p, "120000"], [p, "300"]);
    let forked = [p, "300", "fork"];
    let no_helper = [("HUGEHEAP_COLLAPSE", "0")];
    let cases = [(&wait[..], &[][..], 1), (&forked[..], &[][..], 0), (&short[..], &no_helper[..], 0)];
    for (args, env, ahead) in cases {
        let out = under(args, env);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?} {env:?}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
        assert_eq!(field(&out, "own"), 0, "{args:?} {env:?}: the mappings are in the zone: {text}");
        assert_eq!(field(&out, "ahead"), ahead, "{args:?} {env:?}: {text}");
        assert_eq!(field(&out, "zero") + field(&out, "intact"), 2, "{args:?} {env:?}: {text}");
    }
}

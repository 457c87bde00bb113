//! Programs that switch THP off for themselves (`prctl(PR_SET_THP_DISABLE)`, as Ruby 3.1 does
//! at start-up and Redis does under THP `always`): under `libhugeheap.so` the heap keeps THP
//! while the program's own memory stays as it asked (`HUGEHEAP_THP_OFF`, default
//! `keep-heap`), and `obey` / `ignore` do what they say.
//!
//! One test: its second half switches the machine's THP mode to `always` (root) and puts it
//! back, so nothing else in this binary runs meanwhile.

mod common;

use common::redis::Redis;
use common::{build, hugeheap, lib, skip, tmp, word_value};
use std::process::Command;

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// The THP mode in force (`always`, `madvise`, `never`), as the library reads it, or `None`
/// without THP.
fn thp_mode() -> Option<String> {
    use hugeheap::internal::{OsInfo, ThpMode};
    let mode = OsInfo::probe().thp;
    (mode != ThpMode::Unknown).then(|| mode.name().to_string())
}

/// Sets the THP mode for a while (root), putting the old one back on drop, panic or not.
struct ThpModeGuard(String);

impl ThpModeGuard {
    fn set(mode: &str) -> Option<ThpModeGuard> {
        let old = thp_mode()?;
        std::fs::write(THP_ENABLED, mode).ok()?;
        Some(ThpModeGuard(old))
    }
}

impl Drop for ThpModeGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(THP_ENABLED, &self.0);
    }
}

/// What tests/c/thp_off.c printed.
#[derive(Debug)]
struct Seen {
    /// The kernel takes `PR_THP_DISABLE_EXCEPT_ADVISED`.
    except_advised: bool,
    /// `PR_GET_THP_DISABLE` after the program's call.
    get: i64,
    /// AnonHugePages outside the program's own mapping (the heap), KiB.
    heap_thp_kib: i64,
    /// AnonHugePages of the program's own 16 MiB mapping, KiB.
    own_thp_kib: i64,
}

fn run(prog: &std::path::Path, answer: &str) -> Seen {
    let out = hugeheap()
        .args(["run", "--pages", "thp", "--thp-off", answer, "--lib"])
        .arg(lib())
        .arg("--")
        .arg(prog)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{answer}: {:?} {stdout} {}", out.status, String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| word_value(&stdout, name).unwrap_or_else(|| panic!("{name} in {stdout}"));
    Seen {
        except_advised: field("except_advised") == 1,
        get: field("get"),
        heap_thp_kib: field("heap_thp_kib"),
        own_thp_kib: field("own_thp_kib"),
    }
}

/// At least this much of the program's 96 MiB heap is THP when the heap keeps it (the first
/// 32 MiB are the small phase's 4 KiB pages until the helper collapses them).
const HEAP_THP_KIB: i64 = 32 << 10;

/// The three answers under the mode `mode` (the one in force).
fn check_answers(prog: &std::path::Path, mode: &str) {
    let keep = run(prog, "keep-heap");
    let always = mode == "always";
    if keep.except_advised {
        assert_eq!(keep.get, 3, "THP off except where advised: {keep:?}");
        assert!(keep.heap_thp_kib >= HEAP_THP_KIB, "the heap keeps THP under {mode}: {keep:?}");
    } else if always {
        // No flag, THP `always`: the program's wish wins, the heap falls back.
        assert_eq!((keep.get, keep.heap_thp_kib), (1, 0), "{keep:?}");
    } else {
        // No flag, THP `madvise`: dropping the call leaves the same memory in THP.
        assert_eq!(keep.get, 0, "{keep:?}");
        assert!(keep.heap_thp_kib >= HEAP_THP_KIB, "{keep:?}");
    }
    assert_eq!(keep.own_thp_kib, 0, "the program's own memory stays out of THP under {mode}: {keep:?}");

    let obey = run(prog, "obey");
    assert_eq!((obey.get, obey.heap_thp_kib, obey.own_thp_kib), (1, 0, 0), "obey under {mode}: {obey:?}");

    let ignore = run(prog, "ignore");
    assert_eq!(ignore.get, 0, "{ignore:?}");
    assert!(ignore.heap_thp_kib >= HEAP_THP_KIB, "ignore under {mode}: {ignore:?}");
}

/// Redis under THP `always` switches THP off at start (`disable-thp yes`, its default): under
/// hugeheap its data still lands in THP, and is the same data.
fn check_redis_under_always() {
    if !common::redis::installed() {
        skip("redis", "redis-server and redis-cli are not installed (apt install redis-server)");
        return;
    }
    let dir = tmp("thp-off-redis");
    let populate = |r: &Redis| r.populate(400_000);
    let huge_kib = |r: &Redis| -> i64 {
        let s = std::fs::read(format!("/proc/{}/smaps_rollup", r.child.id())).unwrap();
        hugeheap::internal::field_kib(&s, b"AnonHugePages:").unwrap() as i64
    };
    let plain = Redis::start(&mut Command::new("redis-server"), &dir);
    let plain_digest = populate(&plain);
    let plain_huge = huge_kib(&plain);
    drop(plain);
    let mut under = hugeheap();
    under.args(["run", "--pages", "thp", "--lib"]).arg(lib()).args(["--", "redis-server"]);
    let hh = Redis::start(&mut under, &dir);
    assert_eq!(populate(&hh), plain_digest, "the same data gives the same digest");
    let hh_huge = huge_kib(&hh);
    let status = std::fs::read_to_string(format!("/proc/{}/status", hh.child.id())).unwrap();
    drop(hh);
    // Redis's call reached the kernel as THP off except where advised (or, on a kernel without
    // the flag, kept Redis's own memory as it asked: then there is nothing to check here).
    // (Plain Redis switches THP off once it has started: what jemalloc mapped before keeps it.)
    assert!(plain_huge < HEAP_THP_KIB, "plain Redis switched THP off for itself under `always`: {plain_huge} KiB");
    if status.contains("THP_enabled:\t1") {
        assert!(
            hh_huge >= 3 * HEAP_THP_KIB,
            "Redis's heap under hugeheap is in THP: {hh_huge} KiB (plain {plain_huge})"
        );
    } else {
        skip("thp-except-advised", "this kernel has no PR_THP_DISABLE_EXCEPT_ADVISED: Redis's wish wins");
    }
}

/// Ruby 3.1 switches THP off at start-up: under hugeheap the strings it builds are in THP, and
/// what it prints is what it prints plain.
fn check_ruby() {
    if Command::new("ruby").arg("--version").output().is_err() {
        skip("ruby", "ruby is not installed (apt install ruby)");
        return;
    }
    let script = r#"
        a = []
        400_000.times { |i| a << ("x" * (100 + i % 500)) + i.to_s }
        puts a.map(&:size).sum, a[12_345], a.sort_by(&:size).last(3).map(&:size).inspect
        ahp = File.read("/proc/self/smaps_rollup")[/AnonHugePages:\s+(\d+)/, 1].to_i
        $stderr.puts "anon_huge_kib=#{ahp}"
    "#;
    let plain = Command::new("ruby").args(["-e", script]).output().unwrap();
    let hh = hugeheap()
        .args(["run", "--pages", "thp", "--lib"])
        .arg(lib())
        .args(["--", "ruby", "-e", script])
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&hh.stdout), String::from_utf8_lossy(&hh.stderr));
    assert!(plain.status.success() && hh.status.success(), "{:?} {:?} {err}", plain.status, hh.status);
    assert_eq!(out, String::from_utf8_lossy(&plain.stdout), "the same output");
    let kib = |e: &str| word_value(e, "anon_huge_kib").unwrap_or_else(|| panic!("{e}"));
    assert_eq!(kib(&String::from_utf8_lossy(&plain.stderr)), 0, "plain Ruby under `madvise` has no THP");
    assert!(kib(&err) >= HEAP_THP_KIB, "Ruby's heap under hugeheap is in THP: {err}");
}

#[test]
fn a_program_that_switches_thp_off_keeps_thp_for_its_heap_only() {
    let Some(mode) = thp_mode() else {
        skip("thp", "this kernel has no THP");
        return;
    };
    if mode == "never" {
        skip("thp", "THP is `never` here");
        return;
    }
    let Some(prog) = build("thp_off.c", "cc", &[]) else { return };
    check_answers(&prog, &mode);
    if mode == "madvise" {
        check_ruby();
    }

    // THP `always`: the program's own memory would get THP if its call were dropped.
    if mode != "always" {
        let Some(_always) = ThpModeGuard::set("always") else {
            skip("root", "switching THP to `always` needs root");
            return;
        };
        check_answers(&prog, "always");
        check_redis_under_always();
    } else {
        check_redis_under_always();
    }
}

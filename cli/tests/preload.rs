//! libhugeheap.so and `hugeheap run`: C and C++ programs built here (API edge cases, threads
//! with a fork storm, operator new/delete, malloc from a constructor), and real programs
//! (python3, sort, bash, git) run with and without hugeheap, their output compared, their
//! heap read from the kernel. Programs that are not installed are skipped, and say so.

mod common;

use common::redis::Redis;
use common::{assert_ran_on_hugeheap, build, hugeheap, lib, skip, tmp, under_hugeheap};
use std::path::Path;
use std::process::{Command, Output};

#[test]
fn c_api_edge_cases() {
    let Some(prog) = build("api.c", "cc", &["-Wno-alloc-size-larger-than", "-ldl"]) else { return };
    // Without hugeheap the program must notice (glibc's usable size for 100 bytes is 104).
    let plain = Command::new(&prog).output().unwrap();
    assert!(!plain.status.success(), "api.c passes on glibc: its interposition check is broken");
    assert_ran_on_hugeheap(&under_hugeheap(&prog, &[]), "api ok");
}

#[test]
fn misuse_aborts_with_a_message() {
    use std::os::unix::process::ExitStatusExt;
    let Some(prog) = build("misuse.c", "cc", &["-Wno-free-nonheap-object", "-Wno-use-after-free"]) else { return };
    let run =
        |mode: &str| hugeheap().args(["run", "--lib"]).arg(lib()).arg("--").arg(&prog).arg(mode).output().unwrap();
    for (mode, message) in [
        ("double", "free(): double free detected"),
        ("double-later", "malloc(): a free block was freed twice or written after free"),
        ("write-after-free", "malloc(): a free block was freed twice or written after free"),
        ("double-remote", "free(): double free detected"),
        ("shared-double", "free(): double free detected"),
        ("shared-double-later", "malloc(): a free block was freed twice or written after free"),
        ("shared-write-after-free", "malloc(): a free block was freed twice or written after free"),
        ("shared-write-after-free-flush", "malloc(): a free block was freed twice or written after free"),
        ("interior", "free(): invalid pointer (not the start of a block)"),
        ("foreign", "free(): invalid pointer (not allocated by hugeheap, or already freed)"),
        ("stack", "free(): invalid pointer (not allocated by hugeheap, or already freed)"),
        ("large-interior", "free(): invalid pointer (not the start of an allocation)"),
        ("large-double", "free(): invalid pointer (not allocated by hugeheap, or already freed)"),
        ("realloc-foreign", "realloc(): invalid pointer"),
    ] {
        let out = run(mode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{mode}: {:?}\n{stderr}", out.status);
        assert!(stderr.contains(&format!("hugeheap: {message}")) && stderr.contains(": 0x"), "{mode}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"), "{mode}");
    }
    // What is not detected: a double free after the block was handed out again (it frees the
    // new owner's block, as with glibc), and correct use.
    for mode in ["late", "ok"] {
        let out = run(mode);
        assert!(out.status.success(), "{mode}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("survived {mode}")));
    }
}

#[test]
fn threads_and_fork_storm() {
    let Some(prog) = build("storm.c", "cc", &[]) else { return };
    assert_ran_on_hugeheap(&under_hugeheap(&prog, &[]), "storm ok");
}

#[test]
fn cxx_new_and_delete() {
    let Some(prog) = build("cxx.cc", "c++", &["-std=c++17"]) else { return };
    assert_ran_on_hugeheap(&under_hugeheap(&prog, &[]), "cxx ok");
}

#[test]
fn dlopen_dlclose_and_thread_exit() {
    let Some(prog) = build("dl.c", "cc", &["-ldl"]) else { return };
    let Some(dlib) = build("dlib.c", "cc", &["-shared", "-fPIC"]) else { return };
    let out =
        hugeheap().args(["run", "--verbose", "--lib"]).arg(lib()).arg("--").arg(&prog).arg(&dlib).output().unwrap();
    assert_ran_on_hugeheap(&out, "dl ok");
}

#[test]
fn malloc_from_a_constructor() {
    let Some(prog) = build("ctor.c", "cc", &[]) else { return };
    assert_ran_on_hugeheap(&under_hugeheap(&prog, &[]), "ctor ok");
}

/// Runs `cmd` plainly and under `hugeheap run`; both outputs are returned.
fn both(cmd: &[&str], dir: &Path) -> Option<(Output, Output)> {
    if Command::new(cmd[0]).arg("--version").output().is_err() {
        skip(cmd[0], &format!("{} is not installed", cmd[0]));
        return None;
    }
    let plain = Command::new(cmd[0]).args(&cmd[1..]).current_dir(dir).output().unwrap();
    let hh = hugeheap()
        .args(["run", "--verbose", "--lib"])
        .arg(lib())
        .arg("--")
        .args(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    Some((plain, hh))
}

fn same_output(plain: &Output, hh: &Output) {
    assert!(
        plain.status.success() && hh.status.success(),
        "plain {:?}, hugeheap {:?}: {}",
        plain.status,
        hh.status,
        String::from_utf8_lossy(&hh.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&plain.stdout), String::from_utf8_lossy(&hh.stdout));
    assert!(String::from_utf8_lossy(&hh.stderr).contains("hugeheap: at exit"));
}

#[test]
fn python_dict_fork_and_subprocess() {
    let script = r#"
import os, subprocess, sys
d = {i: str(i) * 3 for i in range(1_500_000)}
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, str(sum(len(v) for v in d.values())).encode())
    os._exit(0)
os.close(w)
got = os.read(r, 100).decode()
os.waitpid(pid, 0)
out = subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, text=True).stdout.strip()
status = open("/proc/self/status").read()
smaps = open("/proc/self/smaps_rollup").read()
kb = lambda text, key: int(next(l.split()[1] for l in text.splitlines() if l.startswith(key)))
huge = kb(smaps, "AnonHugePages:") + kb(status, "HugetlbPages:")
print(len(d), got, out)
print("huge_kib", huge, file=sys.stderr)
"#;
    let dir = tmp("py");
    let Some((plain, hh)) = both(&["python3", "-c", script], &dir) else { return };
    same_output(&plain, &hh);
    let huge = |o: &Output| -> usize {
        let e = String::from_utf8_lossy(&o.stderr);
        e.lines().find_map(|l| l.strip_prefix("huge_kib ")).unwrap().trim().parse().unwrap()
    };
    // The dict is ~200 MiB: with hugeheap (pymalloc's arenas in the map zone, the rest in the
    // heap) most of it is in huge pages
    // wherever the machine offers any; without, THP in `madvise` mode gives python none.
    if hugeheap::internal::OsInfo::probe().thp == hugeheap::internal::ThpMode::Never {
        eprintln!("THP is never here: huge-page coverage not asserted");
    } else {
        assert!(huge(&hh) > 100 * 1024, "python under hugeheap has {} KiB in huge pages", huge(&hh));
    }
}

#[test]
fn sort_a_large_file() {
    let dir = tmp("sort");
    let mut text = String::new();
    let mut x: u64 = 88172645463325252;
    for _ in 0..400_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{:016x} line\n", x));
    }
    std::fs::write(dir.join("in.txt"), text).unwrap();
    let Some((plain, hh)) = both(&["sort", "in.txt"], &dir) else { return };
    same_output(&plain, &hh);
}

#[test]
fn bash_script() {
    let dir = tmp("bash");
    let script = "declare -A m; for i in $(seq 1 20000); do m[$i]=$((i*i)); done; s=0; for k in \"${!m[@]}\"; do s=$((s+m[$k])); done; echo $s; echo ${#m[@]}";
    let Some((plain, hh)) = both(&["bash", "-c", script], &dir) else { return };
    same_output(&plain, &hh);
}

#[test]
fn git_on_a_small_repo() {
    let dir = tmp("git");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&dir)
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
    };
    if git(&["--version"]).is_err() {
        skip("git", "git is not installed");
        return;
    }
    git(&["init", "-q"]).unwrap();
    for i in 0..20 {
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n").repeat(100)).unwrap();
        git(&["add", "."]).unwrap();
        git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", &format!("commit {i}")]).unwrap();
    }
    let Some((plain, hh)) = both(&["git", "log", "--format=%H %s", "--stat"], &dir) else { return };
    same_output(&plain, &hh);
}

#[test]
fn run_reports_bad_arguments() {
    // A bad setting is a usage error (exit 2), checked by the option table's own parser.
    let out = hugeheap().args(["run", "--pages", "fast", "--lib"]).arg(lib()).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'fast'") && err.contains("--pages") && err.contains("1g,2m,thp,4k"), "{err}");
    let out = hugeheap().args(["run", "--max-heap", "1M", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2M"));
    let out = hugeheap().args(["run", "--lib"]).arg(lib()).args(["--", "/no/such/program"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /no/such/program"));
    let out = hugeheap().args(["run", "--lib", "/no/such/lib.so", "--", "true"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn the_library_brings_no_other_library() {
    // libhugeheap.so needs only the C library: the unwinder Rust's standard library refers to
    // is linked in (preload/build.rs), so no libgcc_s.so is loaded into the program, and its
    // mappings are not copied at each fork.
    let out = hugeheap().args(["run", "--lib"]).arg(lib()).args(["--", "cat", "/proc/self/maps"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let maps = String::from_utf8_lossy(&out.stdout);
    let libs: std::collections::BTreeSet<&str> =
        maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.contains(".so")).collect();
    assert!(libs.iter().any(|p| p.contains("libhugeheap")), "not preloaded: {libs:?}");
    // What `cat` itself loads, and hugeheap: nothing else.
    let plain = std::process::Command::new("cat").arg("/proc/self/maps").output().unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    for l in &libs {
        let name = l.rsplit('/').next().unwrap_or(l);
        assert!(name.starts_with("libhugeheap") || plain.contains(name), "libhugeheap.so brought {l} along");
    }
}

#[test]
fn exit_status_is_the_commands() {
    let out = hugeheap().args(["run", "--lib"]).arg(lib()).args(["--", "sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn verbose_speaks_for_the_program_not_for_its_wrapper() {
    // A wrapper script like a pyenv shim: command substitutions and subshells (forks that exit
    // normally), short helper programs, then `exec` of the real program in the same process.
    let Some(prog) = build("ctor.c", "cc", &[]) else { return };
    let dir = tmp("wrapper");
    let wrapper = dir.join("wrapper.sh");
    let script = format!(
        "#!/bin/bash\nv=$(echo x); ( true ); for i in 1 2 3; do w=$(cat /dev/null); done; /bin/true\nexec {} \"$@\"\n",
        prog.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    let out =
        hugeheap().args(["run", "--verbose", "--lib"]).arg(lib()).arg("--").arg("bash").arg(&wrapper).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let starts: Vec<&str> = stderr.lines().filter(|l| l.starts_with("hugeheap: pages=")).collect();
    assert_eq!(starts.len(), 1, "one start line, the program's:\n{stderr}");
    assert!(starts[0].ends_with("(ctor)"), "{}", starts[0]);
    assert_eq!(stderr.matches("hugeheap: at exit").count(), 1, "one exit report:\n{stderr}");
}

#[test]
fn every_option_has_a_run_flag_that_sets_its_variable() {
    // The flags come from the library's option table: one per row, each setting its variable.
    let out = hugeheap()
        .args(["run", "--pages", "thp", "--max-heap", "4G", "--retain", "0", "--decay", "5s", "--cow-reserve", "50"])
        .args(["--verbose", "--lib"])
        .arg(lib())
        .args(["--", "env"])
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (var, value) in [
        ("HUGEHEAP_PAGES", "thp"),
        ("HUGEHEAP_MAX_HEAP", "4G"),
        ("HUGEHEAP_RETAIN", "0"),
        ("HUGEHEAP_DECAY", "5s"),
        ("HUGEHEAP_COW_RESERVE", "50"),
    ] {
        assert!(env.lines().any(|l| l == format!("{var}={value}")), "{var} not set:\n{env}");
    }
    assert!(env.lines().any(|l| l.starts_with("HUGEHEAP_VERBOSE=pid:")), "{env}");
    let help = String::from_utf8_lossy(&hugeheap().args(["run", "--help"]).output().unwrap().stdout).into_owned();
    for row in hugeheap::internal::OPTIONS {
        assert!(help.contains(&format!("--{}", row.flag)) && help.contains(row.env), "{}:\n{help}", row.env);
    }
}

#[test]
fn programs_asking_their_malloc_get_hugeheaps_figures() {
    let Some(prog) = build("introspect.c", "cc", &[]) else { return };
    let plain = Command::new(&prog).output().unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).contains("je=absent"), "the weak jemalloc symbols resolved plainly");
    let out = hugeheap().args(["run", "--pages", "thp", "--lib"]).arg(lib()).arg("--").arg(&prog).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: std::collections::HashMap<&str, usize> = stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse::<i64>().ok()? as usize)))
        .collect();
    // glibc's questions: 20,000 blocks of 1,000 bytes (1,024-byte class) in use during.
    assert!(v["mi2_uord_during"] >= v["mi2_uord_before"] + 20_000 * 1000, "{stdout}");
    assert!(v["mi2_arena"] >= v["mi2_uord_during"] && v["mi_uord"] > 0, "{stdout}");
    // jemalloc's: the same figures through mallctl, in jemalloc's order.
    let allocated = v["je_allocated"];
    assert!(allocated >= 20_000 * 1000 && allocated <= v["je_active"], "{stdout}");
    assert!(v["je_active"] <= v["je_resident"] && v["je_resident"] <= v["je_mapped"] + (64 << 20), "{stdout}");
    assert_eq!((v["je_narenas_rc"], v["je_narenas"], v["je_unknown_rc"]), (0, 1, 2), "{stdout}");
    assert_eq!((v["je_nallocx100"], v["je_sallocx"]), (112, 1024), "{stdout}");
    assert!(v["je_printed"] > 100 && stdout.contains("trim=1") && stdout.contains("mallopt=1"), "{stdout}");
    // malloc_stats prints hugeheap's figures; mallopt says once that it has no effect.
    assert!(stderr.contains("hugeheap:") && stderr.contains("in use"), "{stderr}");
    assert_eq!(stderr.matches("mallopt(").count(), 1, "{stderr}");
}

#[test]
fn redis_info_memory_comes_from_hugeheap() {
    if !common::redis::installed() {
        skip("redis", "redis-server and redis-cli are not installed (apt install redis-server)");
        return;
    }
    let dir = tmp("redis");
    let populate = |r: &Redis| r.populate(300_000);
    let plain = Redis::start(&mut Command::new("redis-server"), &dir);
    let plain_digest = populate(&plain);
    assert_eq!(plain_digest.trim().len(), 40, "DEBUG DIGEST: {plain_digest}");
    drop(plain);
    let mut under = hugeheap();
    under.args(["run", "--pages", "thp", "--lib"]).arg(lib()).args(["--", "redis-server"]);
    let hh = Redis::start(&mut under, &dir);
    assert_eq!(populate(&hh), plain_digest, "the same data gives the same digest");
    let info = hh.info("memory");
    let n = |k: &str| info[k].parse::<usize>().unwrap_or_else(|_| panic!("{k}: {info:?}"));
    // Redis counts what it allocated itself (used_memory, by malloc_usable_size); the allocator
    // fields come from mallctl: hugeheap's own figures, in jemalloc's order.
    let (used, allocated, active, resident) =
        (n("used_memory"), n("allocator_allocated"), n("allocator_active"), n("allocator_resident"));
    assert!(used > 300_000 * 200, "{info:?}");
    assert!(allocated >= used * 9 / 10 && allocated <= used * 2, "allocated {allocated} for used {used}: {info:?}");
    assert!(allocated <= active && active <= resident, "{info:?}");
    let stats = hh.cli(&["MEMORY", "MALLOC-STATS"]);
    assert!(stats.contains("hugeheap statistics") && stats.contains("in use"), "{stats}");
}

/// `--lib` with a relative path preloads it by its absolute path: the program may change
/// directory before it execs the next one (a pyenv shim does), and a relative LD_PRELOAD entry
/// would then not be found.
#[test]
fn relative_lib_is_preloaded_by_absolute_path() {
    let dir = lib().parent().unwrap();
    let name = lib().file_name().unwrap();
    let out = hugeheap()
        .current_dir(dir)
        .args(["run", "--lib"])
        .arg(name)
        .args(["--", "sh", "-c", "cd / && exec printenv LD_PRELOAD"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with('/') && stdout.trim_end().ends_with(&*name.to_string_lossy()), "LD_PRELOAD={stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("cannot be preloaded"));
}

//! The command on its own, as `cargo install` leaves it: a copy of the `hugeheap` binary in an
//! empty directory, with no build tree beside it, finds the preload library it carries,
//! writes it once to the user's cache (and again only when the copy there is not its own), and
//! runs a program whose heap the kernel then holds in huge pages.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of the command in a directory of its own, and a cache directory for it.
fn lone_command(name: &str) -> (PathBuf, PathBuf) {
    let root = tmp(name);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("hugeheap");
    std::fs::copy(env!("CARGO_BIN_EXE_hugeheap"), &exe).unwrap();
    (exe, root.join("cache"))
}

fn command(exe: &Path, cache: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env("XDG_CACHE_HOME", cache).env_remove("HUGEHEAP_LIB").env_remove("LD_PRELOAD");
    c
}

fn lib_path(exe: &Path, cache: &Path) -> PathBuf {
    let out = command(exe, cache).arg("lib-path").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn a_lone_command_writes_its_library_once_and_replaces_a_bad_copy() {
    let (exe, cache) = lone_command("lone-lib");
    let path = lib_path(&exe, &cache);
    assert!(path.starts_with(cache.join("hugeheap")), "{} is not in the cache", path.display());
    assert_eq!(std::fs::read(&path).unwrap(), hugeheap_cli::embedded::BYTES, "the copy is the embedded library");
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(lib_path(&exe, &cache), path);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written, "a good copy is not written again");
    std::fs::write(&path, b"not a library").unwrap();
    assert_eq!(lib_path(&exe, &cache), path);
    assert_eq!(std::fs::read(&path).unwrap(), hugeheap_cli::embedded::BYTES, "a bad copy is replaced");
    let names: Vec<_> = std::fs::read_dir(cache.join("hugeheap")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left behind: {names:?}");
}

/// A build tree leaves `target/<profile>/libhugeheap.so` beside the command: the preload crate
/// built with that profile (no LTO) and perhaps stale. The command preloads its own copy
/// instead; one in `../lib`, as a package installs it, comes before that.
#[test]
fn a_library_beside_the_command_is_not_taken_and_one_in_lib_is() {
    let (exe, cache) = lone_command("beside-lib");
    let bin = exe.parent().unwrap();
    std::fs::write(bin.join("libhugeheap.so"), b"a build tree's own build").unwrap();
    let path = lib_path(&exe, &cache);
    assert!(path.starts_with(cache.join("hugeheap")), "{} is not the carried copy", path.display());
    let lib = bin.join("../lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libhugeheap.so"), b"an installed library").unwrap();
    assert_eq!(lib_path(&exe, &cache), lib.join("libhugeheap.so").canonicalize().unwrap());
}

#[test]
fn a_lone_command_runs_python_in_huge_pages() {
    if Command::new("python3").arg("--version").output().is_err() {
        skip("python3", "python3 is not installed");
        return;
    }
    use hugeheap::internal::{OsInfo, ThpMode};
    if !matches!(OsInfo::probe().thp, ThpMode::Always | ThpMode::Madvise) {
        skip("thp", "THP is off (never): the heap would be in 4 KiB pages");
        return;
    }
    let (exe, cache) = lone_command("lone-run");
    // 3 M strings, ~250 MiB: far past HUGEHEAP_HUGE_FROM, so the heap goes to huge pages: THP
    // (AnonHugePages) or, where a pool has pages, hugetlb (HugetlbPages).
    let script = "x = [str(i) * 8 for i in range(3_000_000)]\n\
                  thp = open('/proc/self/smaps_rollup').read().split('AnonHugePages:')[1].split()[0]\n\
                  tlb = open('/proc/self/status').read().split('HugetlbPages:')[1].split()[0]\n\
                  print('len', len(x), 'huge_kib', int(thp) + int(tlb))";
    let out = command(&exe, &cache).args(["run", "--", "python3", "-c", script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let huge_kib: usize = stdout.split("huge_kib ").nth(1).and_then(|v| v.trim().parse().ok()).expect(&stdout);
    assert!(stdout.contains("len 3000000"), "{stdout}");
    // The kernel's own count: most of the ~250 MiB heap is in huge pages (plain python3 has
    // none under THP `madvise`; its arenas are not advised).
    assert!(huge_kib >= 128 << 10, "huge pages {huge_kib} KiB: the heap is not in huge pages\n{stdout}");
}

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
    copy_command(&exe);
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

/// Root with a HOME in a tree another user owns (`sudo -E`, `su` without `-`, a unit that keeps
/// an inherited HOME): that user could plant links where the copy is written, or swap it before
/// a root program loads it. Here they plant, at the temporary name the command would use, a
/// link to a file of root's: root must neither write through it nor take that cache. Root
/// only; skipped, and said, otherwise.
#[test]
fn root_takes_no_cache_in_a_tree_another_user_owns() {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    let (exe, _) = lone_command("planted");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("root", "only root can be attacked through another user's HOME");
        return;
    }
    let home = tmp("planted-home");
    let cache = home.join(".cache/hugeheap");
    std::fs::create_dir_all(&cache).unwrap();
    for d in [&home, &home.join(".cache"), &cache] {
        chown(d, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let victim = tmp("planted-victim").join("secret");
    std::fs::write(&victim, b"root's own data").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The shell plants a link at the name the old command wrote first (its pid, which the
    // command keeps across exec) and execs the command; and one at the final name.
    let name = hugeheap_cli::embedded::file_name();
    symlink(&victim, cache.join(&name)).unwrap();
    let script = format!(
        "ln -s '{}' '{}/.{name}.'$$'.tmp' && exec '{}' lib-path",
        victim.display(),
        cache.display(),
        exe.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HUGEHEAP_LIB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&victim).unwrap() == b"root's own data", "root wrote through a planted link");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(!path.starts_with(&home), "root took a cache in another user's tree: {}", path.display());
    let dir = std::fs::symlink_metadata(path.parent().unwrap()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((dir.uid(), dir.mode() & 0o022), (0, 0), "{}", path.display());
}

/// A cache directory others can write (no sticky bit) is passed over for the next candidate.
#[test]
fn a_cache_others_can_write_is_passed_over() {
    use std::os::unix::fs::PermissionsExt;
    let (exe, cache) = lone_command("open-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = lib_path(&exe, &cache);
    assert!(!path.starts_with(&cache), "{} is in a directory anyone can write", path.display());
    assert_eq!(std::fs::read(&path).unwrap(), hugeheap_cli::embedded::BYTES);
}

/// `LD_PRELOAD` is split at spaces and colons: a HOME with a space must not become two entries
/// (the second, relative, resolved in whatever directory a later exec runs in), and a library
/// given at such a path is refused with the reason.
#[test]
fn a_path_with_a_space_never_reaches_ld_preload() {
    let (exe, _) = lone_command("space-home");
    let home = tmp("space-home").join("a b");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(&exe)
        .args(["run", "--", "sh", "-c", "printf '%s' \"$LD_PRELOAD\""])
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HUGEHEAP_LIB")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let preload = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{preload}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !preload.contains(' ') && !preload.contains(':') && Path::new(&preload).is_file(),
        "LD_PRELOAD={preload:?}"
    );
    let spaced = home.join("libhugeheap.so");
    std::fs::write(&spaced, hugeheap_cli::embedded::BYTES).unwrap();
    let out = Command::new(&exe).args(["run", "--lib"]).arg(&spaced).args(["--", "true"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("LD_PRELOAD splits paths at spaces and colons"), "{err}");
}

//! The libhugeheap.so this command carries (built and embedded by `build.rs`), written out to
//! a file when a program is to preload it: `LD_PRELOAD` needs a path.
//!
//! The copy lives in the user's cache (`$XDG_CACHE_HOME/hugeheap`, else `~/.cache/hugeheap`,
//! else `/tmp/hugeheap-<uid>`), named by a digest of its contents, so commands of different
//! versions keep different copies and never replace each other's. An existing copy is used
//! only if its bytes are the embedded ones; otherwise it is written to a temporary file in
//! the same directory and renamed over the name, so a program starting meanwhile sees the old
//! file or the new one, never half of one.
//!
//! Trust: the copy is preloaded by path, perhaps into programs that run as root, so no one but
//! this user (and root) may be able to change it between the check and the load, or steer
//! where it is written. A cache directory is taken only if every directory from `/` down to it
//! belongs to root or to this user (to root alone, when this user is root: `sudo -E` and `su`
//! keep another user's HOME) and no one else can write it (a directory anyone can write, as
//! /tmp, only with its sticky bit, which keeps others from renaming what is in it); the last
//! is this user's and writable by no one else. The copy must be a file of this user's that no
//! one else can write, opened without following a symbolic link; a new one is created
//! exclusively under a random name, never through a link, then renamed into place. A directory
//! that fails is passed over for the next candidate. So the bytes checked are the bytes
//! loaded. (A descriptor in `LD_PRELOAD`, `/proc/self/fd/N`, would name them more directly,
//! but breaks every program the preloaded one starts after closing inherited descriptors, as
//! Python's `subprocess` does by default.) A path `LD_PRELOAD` would split, at a space or a
//! colon, is passed over too.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The library's bytes.
pub static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libhugeheap.so"));

/// The file name of the written-out copy.
pub fn file_name() -> String {
    format!("libhugeheap-{}.so", env!("HUGEHEAP_LIB_DIGEST"))
}

/// This process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `LD_PRELOAD` would take `path` as one path: the dynamic loader splits its list at
/// spaces and colons.
pub fn preloadable(path: &Path) -> bool {
    !path.as_os_str().as_encoded_bytes().iter().any(|&b| b == b' ' || b == b':' || b == b'\t' || b == b'\n')
}

/// Checks that `dir` (absolute, symbolic links resolved) and every directory above it belong to
/// root or to `uid` (to root alone when `uid` is root) and that no one else can write them (a
/// directory others can write only with its sticky bit, and never the last one, which must be
/// `uid`'s own).
pub fn check_chain(dir: &Path, uid: u32) -> Result<(), String> {
    let mut at = PathBuf::new();
    let parts: Vec<_> = dir.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        let m = std::fs::symlink_metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        if !m.is_dir() {
            return Err(format!("{} is not a directory", at.display()));
        }
        let owner_ok = if last { m.uid() == uid } else { m.uid() == 0 || m.uid() == uid };
        if !owner_ok {
            return Err(format!(
                "{} belongs to uid {}, not to {}",
                at.display(),
                m.uid(),
                if last || uid == 0 { "this user" } else { "root or this user" }
            ));
        }
        let others_write = m.mode() & 0o022 != 0;
        if others_write && (last || m.mode() & 0o1000 == 0) {
            return Err(format!("{} can be written by other users", at.display()));
        }
    }
    Ok(())
}

/// Makes `dir` (mode 0700 where created) and returns its real path once it passes
/// [`check_chain`] and [`preloadable`].
fn usable_dir(dir: &Path, uid: u32) -> Result<PathBuf, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let real = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    check_chain(&real, uid)?;
    if !preloadable(&real) {
        return Err(format!("{}: LD_PRELOAD would split the path at its space or colon", real.display()));
    }
    Ok(real)
}

/// The directory the copy goes to: the first candidate that passes the checks (see the module
/// doc). The error names why each was passed over.
fn cache_dir() -> Result<PathBuf, String> {
    let uid = euid();
    let from_env = |v: &str| std::env::var_os(v).filter(|p| Path::new(p).is_absolute()).map(PathBuf::from);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = from_env("XDG_CACHE_HOME").or_else(|| from_env("HOME").map(|h| h.join(".cache"))) {
        candidates.push(d.join("hugeheap"));
    }
    candidates.push(std::env::temp_dir().join(format!("hugeheap-{uid}")));
    let mut why = Vec::new();
    for d in candidates {
        match usable_dir(&d, uid) {
            Ok(real) => return Ok(real),
            Err(e) => why.push(e),
        }
    }
    Err(format!("no cache directory only this user can write: {}", why.join("; ")))
}

/// Whether `path` is a file of `uid`'s that no one else can write, holding exactly [`BYTES`]
/// (opened without following a symbolic link).
fn holds_our_bytes(path: &Path, uid: u32) -> bool {
    let Ok(mut f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) else { return false };
    let Ok(m) = f.metadata() else { return false };
    if !m.is_file() || m.uid() != uid || m.mode() & 0o022 != 0 || m.len() != BYTES.len() as u64 {
        return false;
    }
    let mut have = Vec::with_capacity(BYTES.len());
    f.read_to_end(&mut have).is_ok() && have == BYTES
}

/// 64 random bits from the kernel, for a file name no one can guess.
fn random_name_part() -> u64 {
    let mut v = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `v`.
    let n = unsafe { libc::getrandom((&raw mut v).cast(), 8, 0) };
    if n == 8 {
        v
    } else {
        u64::from(std::process::id()) ^ std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos() as u64)
    }
}

/// Writes the library into `dir` (unless a good copy is there) and returns its path. `dir` is
/// taken as it is: callers check it ([`check_chain`]) unless it is their own.
pub fn write_to(dir: &Path) -> Result<PathBuf, String> {
    let uid = euid();
    let path = dir.join(file_name());
    if holds_our_bytes(&path, uid) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{}.{:016x}.tmp", file_name(), random_name_part()));
    // create_new: O_EXCL, which never follows a link; O_NOFOLLOW says so twice.
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f: File| f.write_all(BYTES).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

/// The path of the written-out copy in the user's cache, writing it if needed.
pub fn path() -> Result<PathBuf, String> {
    write_to(&cache_dir()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_preload_separators_are_refused() {
        assert!(preloadable(Path::new("/home/a/.cache/hugeheap/libhugeheap-1.so")));
        assert!(!preloadable(Path::new("/home/a b/.cache/hugeheap/libhugeheap-1.so")));
        assert!(!preloadable(Path::new("/home/a:b/libhugeheap.so")));
    }

    #[test]
    fn a_chain_with_a_directory_others_can_write_is_refused() {
        let root = std::env::temp_dir().join(format!("hugeheap-chain-{}", std::process::id()));
        let open = root.join("open");
        let mine = open.join("mine");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&mine).unwrap();
        let uid = euid();
        let set = |p: &Path, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let real = mine.canonicalize().unwrap();
        set(&open, 0o755);
        assert_eq!(check_chain(&real, uid), Ok(()));
        set(&open, 0o777);
        assert!(check_chain(&real, uid).unwrap_err().contains("can be written by other users"));
        set(&open, 0o1777);
        assert_eq!(check_chain(&real, uid), Ok(()), "a sticky directory, as /tmp, is fine above");
        set(&mine, 0o777);
        assert!(check_chain(&real, uid).is_err(), "the last directory is this user's alone");
        let other = if uid == 0 { 65534 } else { 0 };
        assert!(check_chain(&real, other).unwrap_err().contains("belongs to uid"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}

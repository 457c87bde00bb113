//! The libhugeheap.so this command carries (built and embedded by `build.rs`), written out to
//! a file when a program is to preload it: `LD_PRELOAD` needs a path.
//!
//! The copy lives in the user's cache (`$XDG_CACHE_HOME/hugeheap`, else `~/.cache/hugeheap`,
//! else `/tmp/hugeheap-<uid>`), named by a digest of its contents, so commands of different
//! versions keep different copies and never replace each other's. An existing copy is used
//! only if its bytes are the embedded ones; otherwise it is written to a temporary file in
//! the same directory and renamed over the name, so a program starting meanwhile sees the old
//! file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The library's bytes.
pub static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libhugeheap.so"));

/// The file name of the written-out copy.
pub fn file_name() -> String {
    format!("libhugeheap-{}.so", env!("HUGEHEAP_LIB_DIGEST"))
}

/// The directory the copy goes to: the user's cache, or a private directory in /tmp.
fn cache_dir() -> Result<PathBuf, String> {
    let from_env = |v: &str| std::env::var_os(v).filter(|p| Path::new(p).is_absolute()).map(PathBuf::from);
    if let Some(d) = from_env("XDG_CACHE_HOME").or_else(|| from_env("HOME").map(|h| h.join(".cache"))) {
        let d = d.join("hugeheap");
        if std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&d).is_ok() {
            return Ok(d);
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let d = std::env::temp_dir().join(format!("hugeheap-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", d.display())),
    }
    // A directory in /tmp someone else made, or others can write, could hand us their file.
    let m = std::fs::symlink_metadata(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(format!("{} is not a directory of this user's that only it can write", d.display()));
    }
    Ok(d)
}

/// Writes the library into `dir` (unless a copy with the same bytes is there) and returns its
/// path.
pub fn write_to(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(file_name());
    if std::fs::read(&path).is_ok_and(|b| b == BYTES) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(), std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&tmp)
        .and_then(|mut f| f.write_all(BYTES).and_then(|()| f.sync_all()))
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

//! Descriptors the library keeps open across calls. Each is close-on-exec, moved to a number
//! of at least [`HIGH_FD`] (a program that closes 0-2 and opens `/dev/null` expects to get them
//! back, and must not get one of these instead), and known by its file's identity (device and
//! inode): a program may close any descriptor (daemons close them all) and get the number back
//! for a file of its own, which the library must never read, lock or close. So before a run of
//! uses the number is checked to still name the file ([`Kept::ours`]); when it does not, the
//! number is the program's and is left alone.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The lowest descriptor number a kept file takes (when the process may have that many).
const HIGH_FD: libc::c_int = 100;

/// A descriptor of the library's, and its file's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    fd: libc::c_int,
    dev: u64,
    ino: u64,
}

impl Kept {
    /// Keeps `fd`, a close-on-exec descriptor the caller has just opened: moves it to a high
    /// number and notes its identity. `None` (the descriptor closed) when it cannot be moved
    /// above 2 or its identity cannot be had.
    pub fn keep(fd: libc::c_int) -> Option<Kept> {
        debug_assert!(fd >= 0, "a descriptor to keep");
        // SAFETY: duplicating the caller's fresh descriptor; both are ours.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        let fd = if high >= 0 {
            close(fd);
            high
        } else if fd > 2 {
            fd
        } else {
            close(fd);
            return None;
        };
        match identity(fd) {
            Some((dev, ino)) => Some(Kept { fd, dev, ino }),
            None => {
                close(fd);
                None
            }
        }
    }

    /// The descriptor's number (check [`ours`](Kept::ours) before a run of uses).
    pub fn fd(&self) -> libc::c_int {
        self.fd
    }

    /// Whether the number still names the kept file (one `fstat`).
    pub fn ours(&self) -> bool {
        identity(self.fd) == Some((self.dev, self.ino))
    }

    /// Closes the descriptor if it is still the kept file's (else the number is the
    /// program's now, and stays open).
    pub fn close(self) {
        if self.ours() {
            close(self.fd);
        }
    }
}

/// A [`Kept`] descriptor in a static, shared by threads: [`take`](KeptCell::take) lends it
/// out while it is still the file's; one thread at a time replaces a lost one
/// ([`install`](KeptCell::install)), and the others read the file the slow way meanwhile.
pub struct KeptCell {
    /// The descriptor, or [`NONE`], or [`BUSY`] while a thread installs one.
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
}

const NONE: i32 = -1;
const BUSY: i32 = -2;

impl KeptCell {
    /// Empty.
    pub const fn new() -> KeptCell {
        KeptCell { fd: AtomicI32::new(NONE), dev: AtomicU64::new(0), ino: AtomicU64::new(0) }
    }

    /// The kept descriptor, if there is one and it is still the file's; else the right to
    /// install one (`Err(true)`), or `Err(false)` when another thread is installing one.
    pub fn take(&self) -> Result<Kept, bool> {
        let fd = self.fd.load(Ordering::Acquire);
        if fd >= 0 {
            let k = Kept { fd, dev: self.dev.load(Ordering::Relaxed), ino: self.ino.load(Ordering::Relaxed) };
            if k.ours() {
                return Ok(k);
            }
        }
        // Lost (or never kept): the number, if any, is the program's now; forgotten, not closed.
        Err(fd != BUSY && self.fd.compare_exchange(fd, BUSY, Ordering::AcqRel, Ordering::Relaxed).is_ok())
    }

    /// After `take` gave the right to: installs `k` (or nothing, for `None`).
    pub fn install(&self, k: Option<Kept>) {
        debug_assert_eq!(self.fd.load(Ordering::Relaxed), BUSY, "installing without the right to");
        let Some(k) = k else {
            self.fd.store(NONE, Ordering::Release);
            return;
        };
        self.dev.store(k.dev, Ordering::Relaxed);
        self.ino.store(k.ino, Ordering::Relaxed);
        self.fd.store(k.fd, Ordering::Release);
    }
}

/// The device and inode of the file open as `fd`.
fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into our stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this module opened or was given to keep, once.
    unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_null() -> libc::c_int {
        // SAFETY: a literal path, read-only, close-on-exec.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
    }

    #[test]
    #[cfg_attr(miri, ignore = "descriptors")]
    fn a_kept_descriptor_lost_to_the_program_is_left_alone() {
        let k = Kept::keep(open_null()).expect("kept");
        assert!(k.fd() >= HIGH_FD);
        assert!(k.ours());
        let cell = KeptCell::new();
        assert_eq!(cell.take(), Err(true));
        cell.install(Some(k));
        assert_eq!(cell.take(), Ok(k));
        // The program closes it and opens a file of its own under the number.
        close(k.fd());
        // SAFETY: a literal path; the flags create nothing.
        let other = unsafe { libc::open(c"/proc/self/stat".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        // SAFETY: duplicating our own descriptor onto the freed number.
        assert_eq!(unsafe { libc::dup2(other, k.fd()) }, k.fd());
        close(other);
        assert!(!k.ours());
        assert_eq!(cell.take(), Err(true), "a lost descriptor gives the right to install another");
        assert_eq!(cell.take(), Err(false), "one thread installs at a time");
        cell.install(None);
        k.close();
        assert!(identity(k.fd()).is_some(), "the program's file under the number stays open");
        close(k.fd());
    }
}

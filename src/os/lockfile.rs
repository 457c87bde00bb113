//! A family file: an anonymous file (`memfd`) that a process makes and every process it forks
//! inherits, its first page mapped shared by all of them, with POSIX record locks taken on its
//! bytes. A record lock belongs to the process that took it, and the kernel keeps the truth of
//! it: the lock goes when its process exits, or execs (the descriptor is close-on-exec), or
//! closes a descriptor of the file; forked children do not inherit it; and a test (`F_GETLK`)
//! by another process answers from the kernel's table, whatever the page holds. So the lock is
//! how one process of a family learns whether another still runs this program, with nothing
//! it has to trust the other for. No lock is ever waited for.
//!
//! The descriptor is a [`Kept`] one: before each run of lock calls ([`LockFile::checked`]), it
//! is checked to still be the family's (the program may have closed it and opened something
//! else under its number: a lock must never land on a file of the program's).

use super::kept::Kept;
use core::ffi::CStr;

/// The bytes of the shared page: one of the kernel's.
pub const PAGE: usize = crate::units::OS_PAGE_SIZE;

/// What taking a lock found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Taken (or this process held it already).
    Taken,
    /// Another process holds it.
    Busy,
}

/// This process's descriptor of its family's file, and the file's identity.
pub struct LockFile {
    kept: Kept,
    page: usize,
}

impl LockFile {
    /// Makes the file and maps its page (zero, shared with every process forked from now on).
    /// `None` when any step fails (no memfd, no descriptor to spare, no memory).
    pub fn create(name: &CStr) -> Option<LockFile> {
        // SAFETY: name is NUL-terminated; the flags ask for a close-on-exec descriptor.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let kept = Kept::keep(fd)?;
        let fd = kept.fd();
        // SAFETY: sizing the file just made.
        if unsafe { libc::ftruncate(fd, PAGE as libc::off_t) } != 0 {
            kept.close();
            return None;
        }
        // SAFETY: mapping the file's one page shared, at an address of the kernel's choosing
        // (nothing existing is touched).
        let page = unsafe {
            libc::mmap(core::ptr::null_mut(), PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if page == libc::MAP_FAILED {
            kept.close();
            return None;
        }
        Some(LockFile { kept, page: page as usize })
    }

    /// Whether the descriptor is still the family's file.
    pub fn ours(&self) -> bool {
        self.kept.ours()
    }

    /// The file's locks, once the descriptor is checked to still be the family's (one
    /// `fstat`); `None` when it is not. Take one for a run of lock calls with no wait
    /// between them, and again after any wait.
    pub fn checked(&self) -> Option<Checked<'_>> {
        self.ours().then_some(Checked(self))
    }
}

/// A family file whose descriptor was found to be the family's (see [`LockFile::checked`]):
/// its lock calls do not check again.
#[derive(Clone, Copy)]
pub struct Checked<'a>(&'a LockFile);

impl Checked<'_> {
    /// The shared page's address ([`PAGE`] bytes, mapped for the process's life).
    pub fn page(&self) -> usize {
        self.0.page
    }

    /// Takes the write lock on byte `at` for this process, without waiting.
    pub fn try_hold(&self, at: u32) -> Hold {
        let mut fl = record(libc::F_WRLCK as i16, at);
        // SAFETY: F_SETLK with a valid flock on the family's descriptor; it never waits.
        match unsafe { libc::fcntl(self.0.kept.fd(), libc::F_SETLK, &mut fl) } {
            0 => Hold::Taken,
            _ => Hold::Busy,
        }
    }

    /// Lets go of this process's lock on byte `at` (nothing if it holds none).
    pub fn release(&self, at: u32) {
        let mut fl = record(libc::F_UNLCK as i16, at);
        // SAFETY: F_SETLK with a valid flock on the family's descriptor; unlocking never waits.
        unsafe { libc::fcntl(self.0.kept.fd(), libc::F_SETLK, &mut fl) };
    }

    /// Whether another process holds a lock on byte `at` (this process's own locks do not
    /// count); `None` when the kernel will not say.
    pub fn held_by_another(&self, at: u32) -> Option<bool> {
        let mut fl = record(libc::F_WRLCK as i16, at);
        // SAFETY: F_GETLK with a valid flock on the family's descriptor; it only reports.
        if unsafe { libc::fcntl(self.0.kept.fd(), libc::F_GETLK, &mut fl) } != 0 {
            return None;
        }
        Some(fl.l_type != libc::F_UNLCK as i16)
    }
}

/// A record of one byte at `at`, of lock type `kind`.
fn record(kind: i16, at: u32) -> libc::flock {
    // SAFETY: flock is plain data; every field that matters is set below.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = at as libc::off_t;
    fl.l_len = 1;
    fl
}

/// For tests of this module and of its users.
#[cfg(test)]
pub mod testing {
    use super::{Checked, Hold};

    /// A forked child that holds the lock on one byte of a family file until dropped (then it
    /// is killed and reaped).
    pub struct LockingChild(libc::pid_t);

    impl LockingChild {
        /// Forks a child that takes the lock on byte `hold` of `f`, after finding byte `busy`
        /// (if given) held off by its parent's lock; returns once this process sees the lock,
        /// `None` if it never does (within 3 s).
        pub fn spawn(f: Checked<'_>, hold: u32, busy: Option<u32>) -> Option<LockingChild> {
            // SAFETY: the child only takes locks and sleeps; it allocates nothing.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let ok = busy.is_none_or(|b| f.try_hold(b) == Hold::Busy) && f.try_hold(hold) == Hold::Taken;
                // SAFETY: async-signal-safe calls in the child.
                unsafe {
                    if ok {
                        libc::sleep(30);
                    }
                    libc::_exit(1);
                }
            }
            assert!(pid > 0, "fork");
            let child = LockingChild(pid);
            for _ in 0..3000 {
                if f.held_by_another(hold) == Some(true) {
                    return Some(child);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            None
        }
    }

    impl Drop for LockingChild {
        fn drop(&mut self) {
            // SAFETY: ending and reaping our own child.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, core::ptr::null_mut(), 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::LockingChild;
    use super::*;

    #[test]
    fn a_lock_is_the_holders_and_goes_with_it() {
        let file = LockFile::create(c"hugeheap-test").expect("memfd");
        let f = file.checked().expect("the descriptor just made is the file's");
        assert_eq!(f.held_by_another(3), Some(false));
        assert_eq!(f.try_hold(3), Hold::Taken);
        // Our own lock is not another's.
        assert_eq!(f.held_by_another(3), Some(false));
        // The parent's lock on byte 3 is not inherited, and holds the child off; the child's
        // lock on byte 5 shows once it has taken it.
        let child = LockingChild::spawn(f, 5, Some(3)).expect("the child's lock was never seen");
        drop(child);
        assert_eq!(f.held_by_another(5), Some(false), "the kernel dropped the lock of the child that died");
        f.release(3);
    }
}

//! Robust, process-shared mutexes (`pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` and
//! `PTHREAD_MUTEX_ROBUST`), in memory the processes of a family share. A mutex held by a
//! process that exits, or that execs another program, is released by the kernel, and the next
//! locker learns it (`EOWNERDEAD`): a held mutex is a promise its holder keeps for as long as
//! it runs this program. Allocation-free: glibc keeps robust mutexes on a list in the thread
//! descriptor.

/// What trying a robust mutex found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Try {
    /// Taken: it was free.
    Taken,
    /// Held by a live holder.
    Busy,
    /// Taken, from a holder that exited or exec'd without releasing it.
    OwnerDied,
}

/// A robust, process-shared mutex living in shared memory.
#[repr(transparent)]
pub struct RobustMutex(libc::pthread_mutex_t);

impl RobustMutex {
    /// Initialises the mutex at `m`.
    ///
    /// # Safety
    /// `m` must point to writable memory for a `pthread_mutex_t` that no one uses yet.
    pub unsafe fn init(m: *mut RobustMutex) -> bool {
        debug_assert!(!m.is_null());
        // SAFETY: attr is initialised before use and destroyed once; m is writable (caller).
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            if libc::pthread_mutexattr_init(&mut attr) != 0 {
                return false;
            }
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let ok = libc::pthread_mutex_init(&raw mut (*m).0, &attr) == 0;
            libc::pthread_mutexattr_destroy(&mut attr);
            ok
        }
    }

    /// Takes the mutex, waiting for it; a mutex whose holder died is made consistent and taken.
    /// False if it cannot be taken (not initialised).
    pub fn lock(&self) -> bool {
        let m = self.ptr();
        // SAFETY: m is an initialised mutex in shared memory that lives for the process.
        match unsafe { libc::pthread_mutex_lock(m) } {
            0 => true,
            libc::EOWNERDEAD => {
                // SAFETY: as above; this thread now holds it.
                unsafe { libc::pthread_mutex_consistent(m) };
                true
            }
            _ => false,
        }
    }

    /// Tries the mutex without waiting.
    pub fn try_lock(&self) -> Try {
        let m = self.ptr();
        // SAFETY: as for lock.
        match unsafe { libc::pthread_mutex_trylock(m) } {
            0 => Try::Taken,
            libc::EOWNERDEAD => {
                // SAFETY: as for lock.
                unsafe { libc::pthread_mutex_consistent(m) };
                Try::OwnerDied
            }
            _ => Try::Busy,
        }
    }

    /// Releases the mutex, which this thread holds.
    pub fn unlock(&self) {
        // SAFETY: as for lock; the caller holds it.
        unsafe { libc::pthread_mutex_unlock(self.ptr()) };
    }

    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        (&raw const self.0).cast_mut()
    }
}

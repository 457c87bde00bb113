//! The allocator's lock: it guards the page heap, and only slow paths take it (a second one,
//! the fork gate, keeps the helper thread off the page heap during a fork). `raw_lock` /
//! `force_unlock` / `peek` serve the fork handlers in `runtime.rs`.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set lock with back-off to `sched_yield`. It allocates nothing and has a
/// `const` constructor, which a lock inside `malloc` needs.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises every access to `value` (only the guard reaches it), so sharing
// the lock between threads is sound whenever `T` may be sent between them.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the lock, spinning briefly and then yielding the CPU.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    core::hint::spin_loop();
                    spins += 1;
                } else {
                    crate::os::thread::yield_now();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Takes the lock without a guard: for the fork `prepare` handler, paired with
    /// [`SpinLock::force_unlock`] in the `parent` and `child` handlers.
    pub fn raw_lock(&self) {
        core::mem::forget(self.lock());
    }

    /// The value, for the thread that holds the lock through [`SpinLock::raw_lock`].
    ///
    /// # Safety
    /// The caller must hold the lock through `raw_lock`, no guard may exist, and the reference
    /// must not outlive the hold.
    #[allow(clippy::mut_from_ref)] // the lock, held by the caller, makes the access unique
    pub unsafe fn get_held(&self) -> &mut T {
        debug_assert!(self.locked.load(Ordering::Relaxed));
        // SAFETY: the calling thread holds the lock through `raw_lock` and no guard exists
        // (this function's contract), so no other reference to the value exists while the
        // returned one lives.
        unsafe { &mut *self.value.get() }
    }

    /// Whether some thread holds the lock (a hint, unless no other thread can change it).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// The value, read without taking the lock: for the fork handlers of a process where no
    /// other thread can take it (they write nothing, and so leave the lock's page alone).
    ///
    /// # Safety
    /// The lock must be free, and no thread may take it while the reference lives.
    pub unsafe fn peek(&self) -> &T {
        debug_assert!(!self.locked.load(Ordering::Relaxed));
        // SAFETY: the lock is free and no thread takes it while the reference lives (this
        // function's contract), so no guard, and so no mutable reference, exists meanwhile.
        unsafe { &*self.value.get() }
    }

    /// Releases a lock taken by [`SpinLock::raw_lock`].
    ///
    /// # Safety
    /// The caller must hold the lock through `raw_lock` (in the child of a fork: the lock was
    /// held by the forking thread, which is the child's only thread), and no guard may exist.
    pub unsafe fn force_unlock(&self) {
        debug_assert!(self.locked.load(Ordering::Relaxed));
        self.locked.store(false, Ordering::Release);
    }
}

/// Access to the value while the lock is held.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so no other reference exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while the lock is held, and `&mut self` makes this
        // borrow of the guard, and so of the value, the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_serialises_increments() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 80_000);
    }

    #[test]
    fn peek_reads_a_free_lock_and_is_locked_tells_a_held_one() {
        let lock = SpinLock::new(7);
        assert!(!lock.is_locked());
        // SAFETY: the lock is free, and no other thread knows of it.
        assert_eq!(unsafe { *lock.peek() }, 7);
        let guard = lock.lock();
        assert!(lock.is_locked());
        drop(guard);
        assert!(!lock.is_locked());
    }

    #[test]
    fn raw_lock_and_force_unlock_pair() {
        let lock = SpinLock::new(1);
        lock.raw_lock();
        assert!(lock.locked.load(Ordering::Relaxed));
        // SAFETY: held through raw_lock just above, no guard exists.
        unsafe { lock.force_unlock() };
        assert_eq!(*lock.lock(), 1);
    }
}

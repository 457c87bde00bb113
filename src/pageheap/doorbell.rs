//! The re-collapse helper's doorbell: the futex word it sleeps on and whether it runs. The page
//! heap rings it when it has new work for a running helper (`nudge`); the helper's own file
//! (`collapser`) starts the helper and waits on the word. Kept apart from both so that the page
//! heap does not depend on the helper that depends on it.

use crate::os::thread;
use core::sync::atomic::{AtomicU32, Ordering};

/// 0: the helper is not started; 1: it runs.
pub static STARTED: AtomicU32 = AtomicU32::new(0);
/// Bumped by every fork and every nudge (the futex the helper sleeps on).
pub static KICK: AtomicU32 = AtomicU32::new(0);

/// Wakes the helper if it runs, without starting it: a process that has not forked gets no
/// thread (khugepaged collapses what the helper would have).
pub fn nudge() {
    if STARTED.load(Ordering::Relaxed) != 0 {
        ring();
    }
}

/// Bumps the word and wakes whoever sleeps on it.
pub fn ring() {
    KICK.fetch_add(1, Ordering::Release);
    thread::wake(&KICK);
}

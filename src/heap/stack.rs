//! Lock-free stacks whose only pop takes everything: how messages and loose blocks travel
//! between threads (inboxes, returned messages). One compare-and-swap per push, no ABA.

use core::sync::atomic::{AtomicPtr, Ordering};

/// Something with a `next` link, pushed onto lock-free stacks.
pub trait Linked {
    /// # Safety
    /// `p` must point to a live object the caller owns.
    unsafe fn set_next(p: *mut Self, next: *mut Self);
}

/// Pushes the list `head ..= tail` onto `stack` with one compare-and-swap loop (Release: the
/// list's contents are visible to the Acquire swap that takes the stack). The stack's only pop
/// takes all of it, so there is no ABA.
///
/// # Safety
/// The list must be linked from `head` to `tail` and owned by the caller until the CAS
/// publishes it.
pub unsafe fn push_list<T: Linked>(stack: &AtomicPtr<T>, head: *mut T, tail: *mut T) {
    debug_assert!(!head.is_null() && !tail.is_null());
    let mut old = stack.load(Ordering::Relaxed);
    loop {
        // SAFETY: caller's contract: tail is ours until published.
        unsafe { T::set_next(tail, old) };
        match stack.compare_exchange_weak(old, head, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => old = h,
        }
    }
}

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
        // SAFETY: `tail` is a live object the caller owns until the compare-and-swap below
        // publishes the list (this function's contract), as `set_next` asks.
        unsafe { T::set_next(tail, old) };
        match stack.compare_exchange_weak(old, head, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => old = h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct Node {
        next: *mut Node,
        value: usize,
    }

    impl Linked for Node {
        unsafe fn set_next(p: *mut Self, next: *mut Self) {
            // SAFETY: the caller owns the live node `p`.
            unsafe { (*p).next = next };
        }
    }

    /// Threads push lists of one to three nodes while the owner takes the whole stack now and
    /// then: every node arrives exactly once, its list's order kept.
    #[test]
    fn lists_pushed_from_threads_arrive_whole_and_once() {
        const THREADS: usize = 3;
        const LISTS: usize = if cfg!(miri) { 20 } else { 2000 };
        let stack = AtomicPtr::<Node>::new(core::ptr::null_mut());
        let mut seen = Vec::new();
        let take = |seen: &mut Vec<usize>| {
            let mut p = stack.swap(core::ptr::null_mut(), Ordering::Acquire);
            while !p.is_null() {
                // SAFETY: taken off the stack, the node is the taker's; each was leaked by its
                // pusher and is reclaimed once, here.
                let node = unsafe { std::boxed::Box::from_raw(p) };
                seen.push(node.value);
                p = node.next;
            }
        };
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let stack = &stack;
                s.spawn(move || {
                    for l in 0..LISTS {
                        let len = 1 + l % 3;
                        let first = (t * LISTS + l) * 4;
                        // Linked first to last, each node owned by this thread until published.
                        let nodes: Vec<*mut Node> = (0..len)
                            .map(|i| {
                                std::boxed::Box::into_raw(std::boxed::Box::new(Node {
                                    next: core::ptr::null_mut(),
                                    value: first + i,
                                }))
                            })
                            .collect();
                        for w in nodes.windows(2) {
                            // SAFETY: both nodes are this thread's, unpublished.
                            unsafe { Node::set_next(w[0], w[1]) };
                        }
                        // SAFETY: linked head to tail above, owned until this publishes them.
                        unsafe { push_list(stack, nodes[0], nodes[len - 1]) };
                    }
                });
            }
            for _ in 0..LISTS {
                take(&mut seen);
                std::thread::yield_now();
            }
        });
        take(&mut seen);
        // Each list's values follow one another in the order they were linked.
        for w in seen.windows(2) {
            if w[1] % 4 != 0 {
                assert_eq!(w[1], w[0] + 1, "a list arrived out of order or split");
            }
        }
        seen.sort_unstable();
        let want: Vec<usize> =
            (0..THREADS * LISTS).flat_map(|l| (0..1 + (l % LISTS) % 3).map(move |i| l * 4 + i)).collect();
        assert_eq!(seen, want);
    }
}

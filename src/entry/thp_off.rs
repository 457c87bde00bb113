//! A program's own `prctl(PR_SET_THP_DISABLE)`, seen by `libhugeheap.so` (which exports
//! `prctl` and calls [`prctl`]): Ruby 3.1 switches THP off at start-up, Redis does when THP is
//! `always`, and the heap hugeheap advises for THP would then stay in 4 KiB pages. What is
//! done with the call is `HUGEHEAP_THP_OFF` ([`ThpOff`]); every other `prctl` goes to the
//! kernel unchanged. Rust programs calling `prctl` themselves reach the kernel directly.
//!
//! `keep-heap` (the default) asks the kernel for exactly the program's intent minus the heap:
//! THP off except where memory was advised (`PR_THP_DISABLE_EXCEPT_ADVISED`, Linux 6.18+;
//! hugeheap advises only its heap). A kernel without it refuses the flag (`EINVAL`); then
//! under THP `madvise` the call is dropped, which leaves the same memory in THP (only advised
//! memory gets it there), and under `always` the call is passed on as made: the program's wish
//! for the rest of its memory wins, and the heap falls back (a pool, or 4 KiB pages, said at
//! the fallback with this option's name).

use crate::options::ThpOff;
use crate::os::probe::ThpMode;
use crate::os::{StackWriter, process};
use crate::runtime;
use core::ffi::{c_int, c_ulong};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

/// `prctl`'s option that switches THP off (and on) for the calling process.
const PR_SET_THP_DISABLE: c_int = 41;
/// The flag (third argument) that keeps THP for advised memory (Linux 6.18).
const PR_THP_DISABLE_EXCEPT_ADVISED: c_ulong = 1 << 1;

/// What was done with a program's call, for the one verbose line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// Passed on with `PR_THP_DISABLE_EXCEPT_ADVISED`: THP off except for the heap.
    ExceptAdvised,
    /// Dropped: the kernel has no `EXCEPT_ADVISED`, and under THP `madvise` dropping it keeps
    /// the same memory out of THP.
    DroppedSame,
    /// Dropped, as `ignore` asks.
    Dropped,
    /// Passed on as made, as `obey` asks.
    Obeyed,
    /// Passed on as made: the kernel has no `EXCEPT_ADVISED` and THP is `always`, so keeping
    /// the heap in THP would give it to all of the program's memory.
    ObeyedOldKernel,
}

impl Done {
    /// What happened, for the verbose line.
    pub const fn describe(self) -> &'static str {
        match self {
            Done::ExceptAdvised => {
                "THP stays off for its other memory, on for the heap (PR_THP_DISABLE_EXCEPT_ADVISED)"
            }
            Done::DroppedSame => {
                "dropped: this kernel has no PR_THP_DISABLE_EXCEPT_ADVISED, and under THP `madvise` only advised \
                 memory (the heap) gets THP anyway"
            }
            Done::Dropped => "dropped (HUGEHEAP_THP_OFF=ignore): THP as the machine's mode for all its memory",
            Done::Obeyed => "passed on (HUGEHEAP_THP_OFF=obey): the heap falls back to a pool or 4 KiB pages",
            Done::ObeyedOldKernel => {
                "passed on: this kernel has no PR_THP_DISABLE_EXCEPT_ADVISED and THP is `always`; the heap falls \
                 back to a pool or 4 KiB pages (HUGEHEAP_THP_OFF=ignore keeps THP for all its memory)"
            }
        }
    }
}

/// The first step for a `prctl(PR_SET_THP_DISABLE, on, flags)` call: `None` when the call
/// goes to the kernel as made (it switches THP back on, or already carries flags), else what
/// `answer` makes of it before the kernel is asked.
pub const fn plan(answer: ThpOff, on: c_ulong, flags: c_ulong) -> Option<Done> {
    if on == 0 || flags != 0 {
        return None;
    }
    Some(match answer {
        ThpOff::KeepHeap => Done::ExceptAdvised,
        ThpOff::Obey => Done::Obeyed,
        ThpOff::Ignore => Done::Dropped,
    })
}

/// What `keep-heap` does when the kernel refused `PR_THP_DISABLE_EXCEPT_ADVISED` (`EINVAL`).
pub const fn without_except_advised(thp: ThpMode) -> Done {
    match thp {
        ThpMode::Madvise => Done::DroppedSame,
        _ => Done::ObeyedOldKernel,
    }
}

/// The `prctl` system call, with glibc's return convention (-1 and `errno`).
///
/// # Safety
/// The arguments are what the program passed to `prctl`; pointer arguments of its options
/// are the program's to make valid, as with glibc's `prctl`.
unsafe fn sys_prctl(option: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> c_int {
    // SAFETY: the kernel checks every argument; whatever pointers an option takes are the
    // caller's (this function's contract), exactly as glibc's wrapper passes them.
    unsafe { libc::syscall(libc::SYS_prctl, option as c_ulong, a2, a3, a4, a5) as c_int }
}

/// Set once the verbose line was said: a program that calls again is not reported twice.
static SAID: AtomicBool = AtomicBool::new(false);

/// C `prctl`, as `libhugeheap.so` exports it: `PR_SET_THP_DISABLE` as `HUGEHEAP_THP_OFF` says
/// (see the module doc), everything else to the kernel as made.
///
/// # Safety
/// As glibc's `prctl`: the arguments an option reads as pointers must be valid for it.
pub unsafe fn prctl(option: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> c_int {
    if option != PR_SET_THP_DISABLE {
        // SAFETY: the program's call, passed on unchanged (this function's contract).
        return unsafe { sys_prctl(option, a2, a3, a4, a5) };
    }
    let (answer, thp, verbose) = runtime::thp_off_settings();
    let Some(first) = plan(answer, a2, a3) else {
        // SAFETY: the program's call, passed on unchanged (this function's contract).
        return unsafe { sys_prctl(option, a2, a3, a4, a5) };
    };
    let (done, rc) = match first {
        Done::ExceptAdvised => {
            // SAFETY: PR_SET_THP_DISABLE takes numbers only; arguments 4 and 5 must be 0.
            let rc = unsafe { sys_prctl(option, a2, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) };
            if rc == 0 || process::errno() != libc::EINVAL {
                (Done::ExceptAdvised, rc)
            } else {
                match without_except_advised(thp) {
                    Done::DroppedSame => (Done::DroppedSame, 0),
                    // SAFETY: the program's call, passed on unchanged (this function's contract).
                    other => (other, unsafe { sys_prctl(option, a2, a3, a4, a5) }),
                }
            }
        }
        Done::Dropped | Done::DroppedSame => (first, 0),
        // SAFETY: the program's call, passed on unchanged (this function's contract).
        Done::Obeyed | Done::ObeyedOldKernel => (first, unsafe { sys_prctl(option, a2, a3, a4, a5) }),
    };
    if rc == 0 && verbose && !SAID.swap(true, Ordering::Relaxed) {
        let mut w = StackWriter::<400>::new();
        let _ = writeln!(w, "hugeheap: the program switched THP off (prctl PR_SET_THP_DISABLE): {}", done.describe());
        w.flush_stderr();
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_switch_off_is_changed() {
        assert_eq!(plan(ThpOff::KeepHeap, 1, 0), Some(Done::ExceptAdvised));
        assert_eq!(plan(ThpOff::Obey, 1, 0), Some(Done::Obeyed));
        assert_eq!(plan(ThpOff::Ignore, 1, 0), Some(Done::Dropped));
        // Switching THP back on, or a call that already carries flags, goes as made.
        for answer in [ThpOff::KeepHeap, ThpOff::Obey, ThpOff::Ignore] {
            assert_eq!(plan(answer, 0, 0), None);
            assert_eq!(plan(answer, 1, PR_THP_DISABLE_EXCEPT_ADVISED), None);
        }
    }

    #[test]
    fn an_old_kernel_drops_the_call_only_where_that_changes_nothing() {
        assert_eq!(without_except_advised(ThpMode::Madvise), Done::DroppedSame);
        for mode in [ThpMode::Always, ThpMode::Never, ThpMode::Unknown] {
            assert_eq!(without_except_advised(mode), Done::ObeyedOldKernel);
        }
    }
}

//! The ways a child measures starting a process, each timed as the parent sees it: `fork()`
//! with the child leaving at once, fork + exec + wait of /bin/true, `posix_spawn`, vfork +
//! exec, a spawn helper process forked before the heap was built, and fork without exec (the
//! child living a while, as a prefork server's worker).

use std::time::Instant;

/// Seconds for `fork()` to return in the parent; the child exits at once.
pub fn fork_exit() -> f64 {
    let t = Instant::now();
    // SAFETY: the child calls only _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    let dt = t.elapsed().as_secs_f64();
    wait(pid);
    dt
}

/// Waits for child `pid`; its wait status.
pub fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

const TRUE: &std::ffi::CStr = c"/bin/true";

fn argv() -> [*const libc::c_char; 2] {
    [TRUE.as_ptr(), std::ptr::null()]
}

const ENVP: [*const libc::c_char; 1] = [std::ptr::null()];

/// Seconds for fork + exec + wait of /bin/true.
pub fn fork_exec() -> f64 {
    let argv = argv();
    let t = Instant::now();
    // SAFETY: the child calls only execve and _exit, with arrays prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execve(TRUE.as_ptr(), argv.as_ptr(), ENVP.as_ptr());
            libc::_exit(127);
        }
    }
    wait(pid);
    t.elapsed().as_secs_f64()
}

/// Seconds for posix_spawn + wait of /bin/true (glibc uses clone(CLONE_VM | CLONE_VFORK)).
pub fn posix_spawn() -> f64 {
    let argv = argv();
    let t = Instant::now();
    let mut pid = 0;
    // SAFETY: valid path, null file actions and attributes, null-terminated argv/envp.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            TRUE.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr() as _,
            ENVP.as_ptr() as _,
        )
    };
    assert_eq!(rc, 0, "posix_spawn");
    wait(pid);
    t.elapsed().as_secs_f64()
}

/// A stack for the vfork child (it runs only until execve, on its own stack).
struct ChildStack([u8; 64 << 10]);

extern "C" fn vfork_child(_arg: *mut libc::c_void) -> libc::c_int {
    let argv = argv();
    // SAFETY: the child of clone(CLONE_VM | CLONE_VFORK) calls only execve and _exit.
    unsafe {
        libc::execve(TRUE.as_ptr(), argv.as_ptr(), ENVP.as_ptr());
        libc::_exit(127)
    }
}

/// Seconds for vfork + exec + wait, as clone(CLONE_VM | CLONE_VFORK) with its own stack (the
/// safe form of vfork: the child never returns into the parent's frames).
pub fn vfork_exec() -> f64 {
    let mut stack = Box::new(ChildStack([0; 64 << 10]));
    let top = stack.0.as_mut_ptr_range().end as usize & !15;
    let t = Instant::now();
    // SAFETY: the child runs vfork_child on its own stack and execs or exits; the parent is
    // suspended until then (CLONE_VFORK), so the stack outlives the child's use of it.
    let pid = unsafe {
        libc::clone(
            vfork_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    };
    assert!(pid > 0, "clone");
    wait(pid);
    let dt = t.elapsed().as_secs_f64();
    drop(stack);
    dt
}

/// A small helper process, started before the heap is built, that runs commands for the
/// parent: one byte down a pipe asks it to fork+exec+wait /bin/true, one byte back says done.
pub struct Helper {
    to: libc::c_int,
    from: libc::c_int,
}

impl Helper {
    /// Starts the helper process.
    pub fn start() -> Helper {
        let (mut down, mut up) = ([0; 2], [0; 2]);
        // SAFETY: valid out-arrays for pipe.
        unsafe {
            assert_eq!(libc::pipe(down.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(up.as_mut_ptr()), 0);
        }
        // SAFETY: the helper child loops on read/fork/exec/wait/write and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Keep only our ends, so that the parent's exit closes the command pipe (EOF).
            // SAFETY: closing inherited descriptors we do not use.
            unsafe {
                libc::close(down[1]);
                libc::close(up[0]);
            }
            let mut b = [0u8; 1];
            loop {
                // SAFETY: reading one byte into our buffer.
                if unsafe { libc::read(down[0], b.as_mut_ptr().cast(), 1) } != 1 {
                    // SAFETY: leaving the helper.
                    unsafe { libc::_exit(0) };
                }
                fork_exec();
                // SAFETY: writing one byte from our buffer.
                unsafe { libc::write(up[1], b.as_ptr().cast(), 1) };
            }
        }
        // SAFETY: closing the helper's ends in the parent.
        unsafe {
            libc::close(down[0]);
            libc::close(up[1]);
        }
        Helper { to: down[1], from: up[0] }
    }

    /// Has the helper fork+exec+wait /bin/true; seconds until it says done.
    pub fn run(&self) -> f64 {
        let mut b = [1u8; 1];
        let t = Instant::now();
        // SAFETY: one byte each way through our pipes.
        unsafe {
            libc::write(self.to, b.as_ptr().cast(), 1);
            libc::read(self.from, b.as_mut_ptr().cast(), 1);
        }
        t.elapsed().as_secs_f64()
    }
}

/// The child of a fork without exec lives this long, as a short worker's does.
pub const NOX_CHILD_MS: u64 = 10;

/// Seconds for fork() alone, the child living [`NOX_CHILD_MS`] and reaped before returning.
pub fn fork_no_exec() -> f64 {
    let t = Instant::now();
    // SAFETY: the child only sleeps and leaves with _exit.
    let pid = unsafe { libc::fork() };
    let secs = t.elapsed().as_secs_f64();
    if pid == 0 {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: (NOX_CHILD_MS * 1_000_000) as i64 };
        // SAFETY: as above.
        unsafe {
            libc::nanosleep(&ts, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    wait(pid);
    secs
}

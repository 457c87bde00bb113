//! Messages on standard error, formatted without allocating: a stack buffer that implements
//! `fmt::Write`, the duplicate of fd 2 that exit reports use, and the abort on heap misuse.

use super::files::read_file;
use super::process::pid;
use core::fmt;

/// Writes `bytes` to standard error, ignoring failure (nothing better can be done inside
/// `malloc`).
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// Reports heap misuse found by the allocator (`hugeheap: free(): double free detected:
/// 0x...`) and aborts the process, as glibc does: going on would corrupt the heap silently.
#[cold]
#[inline(never)]
pub fn fatal_misuse(what: &str, p: usize) -> ! {
    use core::fmt::Write;
    let mut w = StackWriter::<160>::new();
    let _ = writeln!(w, "hugeheap: {what}: {p:#x}");
    w.flush_stderr();
    // SAFETY: abort has no preconditions; it does not return.
    unsafe { libc::abort() }
}

/// A duplicate of standard error (close-on-exec, numbered 64 or above, out of the way of
/// programs that expect the lowest free descriptors), for reports written at exit: programs
/// such as coreutils close fd 2 in their own exit handler, before hugeheap's runs. Falls back
/// to 2.
pub fn stderr_dup() -> i32 {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on fd 2 creates a new descriptor or fails.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 64) };
    if fd < 0 { 2 } else { fd }
}

/// Writes `bytes` to `fd`, ignoring failure.
pub fn write_fd(fd: i32, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: rest is a valid readable slice.
        let r = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if r <= 0 {
            return;
        }
        rest = &rest[r as usize..];
    }
}

/// Writes `pid N (name)` for this process (its `comm`), for messages that must say which
/// process of a program's family speaks.
pub fn write_process(w: &mut impl fmt::Write) -> fmt::Result {
    let mut comm = [0u8; 32];
    let n = read_file(c"/proc/self/comm", &mut comm).unwrap_or(0);
    let name = core::str::from_utf8(&comm[..n]).unwrap_or("?").trim_end();
    write!(w, "pid {} ({name})", pid())
}

/// A fixed buffer that implements `fmt::Write`, for formatting without allocating.
/// Output past its capacity is cut, and a cut text still ends its line when written out.
pub struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> StackWriter<N> {
    /// An empty writer.
    pub const fn new() -> Self {
        StackWriter { buf: [0; N], len: 0, cut: false }
    }
    /// What has been written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Writes the contents to standard error.
    pub fn flush_stderr(&mut self) {
        self.flush_to(2);
    }

    /// Writes the contents to `fd`.
    pub fn flush_to(&mut self, fd: i32) {
        write_fd(fd, self.finished());
        self.len = 0;
        self.cut = false;
    }

    /// The contents as written out: a cut text ends with a newline in place of its last byte.
    fn finished(&mut self) -> &[u8] {
        if self.cut && self.len > 0 {
            self.buf[self.len - 1] = b'\n';
        }
        self.as_bytes()
    }
}

impl<const N: usize> Default for StackWriter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.cut |= n < s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn stack_writer_cuts_at_capacity() {
        let mut w = StackWriter::<4>::new();
        write!(w, "abcdef").unwrap();
        assert_eq!(w.as_bytes(), b"abcd");
    }

    #[test]
    fn a_cut_text_still_ends_its_line() {
        let mut w = StackWriter::<8>::new();
        write!(w, "abcdefgh\nij").unwrap();
        assert_eq!(w.finished(), b"abcdefg\n");
        let mut w = StackWriter::<8>::new();
        writeln!(w, "abc").unwrap();
        assert_eq!(w.finished(), b"abc\n");
        w.flush_to(-1);
        assert_eq!((w.len, w.cut), (0, false));
    }
}

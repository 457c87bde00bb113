//! Reading the small files of /proc and /sys without allocating: whole files into stack
//! buffers, paths joined under a root directory (`/` for this machine; tests and `hugeheap
//! doctor --root` use copied trees), numbers and `Key: value kB` fields parsed in place.

use core::ffi::CStr;

/// The longest path [`Path`] holds, NUL included.
const PATH_MAX: usize = 512;

/// A NUL-terminated path built from pieces on the stack.
pub struct Path {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl Path {
    /// `root` followed by each of `parts`, or `None` if it does not fit. `root` is a
    /// directory, with or without its trailing `/`; the parts are joined as given.
    pub fn join(root: &[u8], parts: &[&[u8]]) -> Option<Path> {
        let mut p = Path { buf: [0; PATH_MAX], len: 0 };
        p.push(root)?;
        if p.len == 0 || p.buf[p.len - 1] != b'/' {
            p.push(b"/")?;
        }
        for part in parts {
            p.push(part)?;
        }
        Some(p)
    }

    fn push(&mut self, s: &[u8]) -> Option<()> {
        // One byte stays for the NUL.
        if self.len + s.len() >= PATH_MAX {
            return None;
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
        Some(())
    }

    /// The path as a C string.
    pub fn as_cstr(&self) -> &CStr {
        // The buffer is zeroed past `len` and parts never hold a NUL before it (a part that
        // does makes the path end there, which only names a shorter path).
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// Reads a file of at most `buf.len()` bytes into `buf`, without allocating. Returns the
/// number of bytes read, or `None` if it cannot be opened.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    read_opened(path, buf, |_| true)
}

/// Whether `fd` is a file of procfs (`PROC_SUPER_MAGIC`): /proc mounted over by another file
/// system, or missing from a chroot, is not the kernel's answer.
pub fn is_procfs(fd: libc::c_int) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    // SAFETY: statfs is plain data, filled by fstatfs.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    // SAFETY: fstatfs writes into our buffer.
    (unsafe { libc::fstatfs(fd, &mut st) } == 0) && st.f_type as i64 == PROC_SUPER_MAGIC
}

/// Reads a procfs file as [`read_file`] does; `None` also when it is not procfs's own.
pub fn read_proc_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    read_opened(path, buf, is_procfs)
}

/// Opens `path` read-only and, if `accept` takes the descriptor, reads it into `buf`; closes
/// it either way. The bytes read, or `None` (cannot be opened, or not accepted).
fn read_opened(path: &CStr, buf: &mut [u8], accept: impl FnOnce(libc::c_int) -> bool) -> Option<usize> {
    let fd = open_read(path)?;
    let n = accept(fd).then(|| read_fd(fd, buf));
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    n
}

/// Reads from `fd` until `buf` is full or the file ends; the bytes read.
fn read_fd(fd: libc::c_int, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the destination is the unfilled tail of `buf`.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    n
}

/// Opens `path` read-only and close-on-exec; the descriptor, or `None`.
pub fn open_read(path: &CStr) -> Option<libc::c_int> {
    // SAFETY: path is NUL-terminated; the flags open read-only.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    (fd >= 0).then_some(fd)
}

/// The decimal number at the start of the open file `fd`, read from offset 0 (a sysfs
/// attribute is produced afresh by each such read) up to its first newline: a one-line sysfs
/// or procfs file comes whole in one read, so no read is spent finding the end.
pub fn pread_number(fd: libc::c_int) -> Option<usize> {
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the destination is the unfilled tail of `buf`; the offset is within the file.
        let r = unsafe { libc::pread(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n, n as libc::off_t) };
        if r <= 0 {
            break;
        }
        n += r as usize;
        if buf[n - 1] == b'\n' {
            break;
        }
    }
    parse_decimal(&buf[..n])
}

/// Reads a file holding one decimal number (up to its first newline, as
/// [`pread_number`]).
pub fn read_number(path: &CStr) -> Option<usize> {
    let fd = open_read(path)?;
    let n = pread_number(fd);
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    n
}

/// Counts the lines of a file of any size, reading it through a small window.
pub fn count_lines(path: &CStr) -> usize {
    let mut lines = 0;
    let mut buf = [0u8; 4096];
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    loop {
        // SAFETY: reading into our own buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        lines += buf[..r as usize].iter().filter(|&&c| c == b'\n').count();
    }
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    lines
}

/// Parses the leading ASCII digits (after optional white space) of `s`.
pub fn parse_decimal(s: &[u8]) -> Option<usize> {
    let s = s.trim_ascii_start();
    let mut v: usize = 0;
    let mut any = false;
    for &c in s {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as usize)?;
        any = true;
    }
    any.then_some(v)
}

/// The number after `key` in a `Key:   123 kB` line of `text` (the key at a line start).
pub fn field_kib(text: &[u8], key: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + key.len() <= text.len() {
        if (i == 0 || text[i - 1] == b'\n') && text[i..].starts_with(key) {
            return parse_decimal(&text[i + key.len()..]);
        }
        i += 1;
    }
    None
}

/// The number after `key` and a space in a `key 123` line of `text` (a cgroup's
/// `memory.stat`; the key whole, at a line start).
pub fn stat_value(text: &[u8], key: &[u8]) -> Option<usize> {
    text.split(|&c| c == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?;
        rest.first().is_some_and(|&c| c == b' ').then(|| parse_decimal(rest)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decimal_reads_leading_digits() {
        assert_eq!(parse_decimal(b" 42\n"), Some(42));
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"x1"), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "opens files")]
    fn read_number_takes_the_first_line() {
        let dir = std::env::temp_dir().join(format!("hugeheap-read-number-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (text, want) in [(&b"760\n"[..], Some(760)), (b"12", Some(12)), (b"5\n6\n", Some(5)), (b"", None)] {
            let file = dir.join("n");
            std::fs::write(&file, text).unwrap();
            let path = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
            assert_eq!(read_number(&path), want, "{text:?}");
        }
        assert_eq!(read_number(c"/nonexistent/hugeheap"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn field_kib_finds_line_starts_only() {
        let s = b"Name:\tx\nVmPTE:\t   120 kB\nXVmRSS: 5 kB\nVmRSS:\t 7 kB\n";
        assert_eq!(field_kib(s, b"VmPTE:"), Some(120));
        assert_eq!(field_kib(s, b"VmRSS:"), Some(7));
        assert_eq!(field_kib(s, b"Nope:"), None);
    }

    #[test]
    fn procfs_is_told_from_other_file_systems() {
        let mut buf = [0u8; 64];
        assert!(read_proc_file(c"/proc/self/stat", &mut buf).is_some_and(|n| n > 0));
        let p = std::env::temp_dir().join(format!("hugeheap-notproc-{}", std::process::id()));
        std::fs::write(&p, b"0::/\n").unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert!(read_file(&c, &mut buf).is_some(), "an ordinary file reads");
        assert_eq!(read_proc_file(&c, &mut buf), None, "but is not procfs's answer");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn stat_value_takes_whole_keys() {
        let s = b"anon 100\nfile 900\nactive_file 300\ninactive_file 500\ntotal_active_file 7\n";
        assert_eq!(stat_value(s, b"active_file"), Some(300));
        assert_eq!(stat_value(s, b"inactive_file"), Some(500));
        assert_eq!(stat_value(s, b"file"), Some(900));
        assert_eq!(stat_value(s, b"shmem"), None);
    }

    #[test]
    fn paths_join_under_a_root() {
        let p = Path::join(b"/", &[b"sys/kernel/mm/", b"x"]).unwrap();
        assert_eq!(p.as_cstr(), c"/sys/kernel/mm/x");
        let p = Path::join(b"/tmp/tree", &[b"proc/self/status"]).unwrap();
        assert_eq!(p.as_cstr(), c"/tmp/tree/proc/self/status");
        assert!(Path::join(&[b'a'; 600], &[]).is_none());
    }
}

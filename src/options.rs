//! Run-time options: one table ([`OPTIONS`]) whose rows parse their own values, defaults set
//! in code through
//! [`crate::HugeAlloc`]'s `const` builders, overridden by `HUGEHEAP_*` environment variables.
//!
//! The environment is read once, at the first allocation, without allocating. A bad value
//! prints one line on stderr (the variable, the value, what is accepted) and the default stays.
//! In a secure-execution process (setuid, file capabilities) the variables are ignored.

use crate::os::{StackWriter, process};
use crate::pagekind::PageKind;
use crate::units::{HUGE_SIZE, SizeArg};
use core::fmt::{self, Write};

/// One row of the option table: the variable, how `hugeheap run` sets it, what it accepts,
/// its default, what it does, and the parser that applies a value. The environment reader,
/// the `hugeheap run` flags and the tables in README.md and docs/tuning.md all come from
/// [`OPTIONS`] (the tests check the docs against it).
#[derive(Clone, Copy, Debug)]
pub struct OptionRow {
    /// The environment variable.
    pub env: &'static str,
    /// The `hugeheap run` flag that sets it (`--pages`, ...).
    pub flag: &'static str,
    /// The flag's value name; `None` for a switch (`--verbose`).
    pub value_name: Option<&'static str>,
    /// What values it takes.
    pub accepts: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// One line saying what it does (README, `--help`).
    pub summary: &'static str,
    /// What it does, in full (docs/tuning.md).
    pub doc: &'static str,
    /// Applies a value to a configuration; false (and the configuration unchanged) when the
    /// value is not valid.
    pub apply: fn(&mut Config, &[u8]) -> bool,
}

/// Every run-time option, in the order they are documented.
pub const OPTIONS: [OptionRow; 10] = [
    OptionRow {
        env: "HUGEHEAP_PAGES",
        flag: "pages",
        value_name: Some("CHAIN"),
        accepts: "auto, or a comma list of 1g,2m,thp,4k (the fallback chain, best first)",
        default: "auto",
        summary: "the page kinds tried for each new chunk of heap, best first",
        doc: "Page kinds tried for each new chunk of heap; `auto` is 1g,2m,thp,4k with 1 GiB pages only \
              once the heap has reached 1 GiB. 4 KiB pages end every chain, listed or not.",
        apply: |c, v| PageChain::parse(v).map(|p| c.pages = p).is_some(),
    },
    OptionRow {
        env: "HUGEHEAP_HUGE_FROM",
        flag: "huge-from",
        value_name: Some("SIZE"),
        accepts: "a size such as 0, 32M, 256M",
        default: "32M",
        summary: "heap size from which `auto` uses huge pages (4 KiB pages below, as glibc)",
        doc: "Under `auto`, the heap is in plain 4 KiB pages (as glibc's, and left to THP's \
              `always` mode if the machine has it) until it reaches this size; from there on, \
              huge pages, and the first part joins them: into the 2 MiB pool when the heap's \
              next pieces come from it and the process has one thread, else advised and \
              collapsed into THP. A small \
              process (a forked backend, a short helper) pays no 2 MiB granularity, and gives \
              back large blocks it frees at once, as glibc does: huge pages would cost a few MiB \
              of partly used 2 MiB pages, and their fork gain is small below this size \
              (docs/tuning.md has the measurements). `0`: huge pages from the first byte.",
        apply: |c, v| parse_size(v).map(|s| c.huge_from = s).is_some(),
    },
    OptionRow {
        env: "HUGEHEAP_MAX_HEAP",
        flag: "max-heap",
        value_name: Some("SIZE"),
        accepts: "0 (none), or a size of at least 2M such as 512M, 4G, 1T (suffixes K, M, G, T; \
                  powers of 1024)",
        default: "none",
        summary: "cap on the heap; past it allocations return null (ENOMEM)",
        doc: "Cap on the bytes of heap hugeheap commits; past it allocations return null (`ENOMEM`), and \
              hugeheap says so once on stderr. Without it, the room the process's memory cgroup leaves \
              caps the heap (read at start-up and again when reached; page cache does not count), so a \
              limit gives NULL, not the OOM killer.",
        apply: |c, v| match parse_size(v) {
            Some(s) if s == 0 || s >= HUGE_SIZE => {
                c.max_heap = s;
                true
            }
            _ => false,
        },
    },
    OptionRow {
        env: "HUGEHEAP_RETAIN",
        flag: "retain",
        value_name: Some("SIZE"),
        accepts: "a size such as 0, 8M, 1G",
        default: "8M",
        summary: "free bytes kept backed before whole free huge pages go back to the OS",
        doc: "Free huge pages kept backed for reuse, however long they are free; whole free 2 MiB pages \
              beyond this go back to the OS once `HUGEHEAP_DECAY` has passed (hugetlb pages stay with \
              the process). Whatever the decay, the resident heap stays within this much (and a \
              sixteenth) above the most it ever had in use: past that, each fresh huge page faulted in \
              gives back a free one elsewhere. More keeps faults away from a program whose big blocks \
              change size, at the price of memory (measured: `hugeheap bench cpath`'s `large`, at \
              most 170 MiB live, peaks at 218 MiB with `0`, 226 MiB with `8M`, 249 MiB with `64M`, \
              in about the same time; the Rust benchmark's `large` takes 65 ms with `64M`, 81 ms \
              with `8M`). `0` with a decay: a lean heap, not the page faults of `HUGEHEAP_DECAY=0`.",
        apply: |c, v| parse_size(v).map(|s| c.retain = s).is_some(),
    },
    OptionRow {
        env: "HUGEHEAP_DECAY",
        flag: "decay",
        value_name: Some("MS"),
        accepts: "milliseconds such as 0, 250, 1000 (suffix ms or s accepted)",
        default: "1000",
        summary: "ms a free huge page beyond the retained ones stays backed",
        doc: "How long a whole free huge page beyond `HUGEHEAP_RETAIN` stays backed before it goes back \
              to the OS, so that a program that frees and reallocates big buffers does not fault them \
              in again each time. Checked when the heap is next used (no thread does it): an idle \
              program keeps its free pages until it allocates or frees again. `0`: at once.",
        apply: |c, v| parse_ms(v).map(|ms| c.decay_ms = ms).is_some(),
    },
    OptionRow {
        env: "HUGEHEAP_COW_RESERVE",
        flag: "cow-reserve",
        value_name: Some("PERCENT"),
        accepts: "a percentage such as 0, 100, 300 (a % sign is accepted; at most 10000)",
        default: "100",
        summary: "% of the hugetlb pages held kept free in the pool for copy-on-write after fork",
        doc: "hugetlb pages are taken only while the pool keeps this percentage of what the process \
              holds free, so that copy-on-write after fork finds fresh pages and forked children keep \
              theirs; past it the heap falls back to THP (`stats()` says `CowReserve`). A forked child \
              the pools cannot cover besides the live ones moves its hugetlb memory into THP before \
              the program's code runs in it, so no child dies of SIGBUS whatever this is \
              (docs/tuning.md has the rule for sizing a pool). `0`: use the whole pool and skip the \
              children's bookkeeping — for programs whose children exec at once.",
        apply: |c, v| match leading_number(v) {
            Some((pct, b"" | b"%")) if pct <= 10_000 => {
                c.cow_reserve = pct as u32;
                true
            }
            _ => false,
        },
    },
    OptionRow {
        env: "HUGEHEAP_COLLAPSE",
        flag: "collapse",
        value_name: Some("PERCENT"),
        accepts: "a percentage of one CPU, 0 to 100 (a % sign is accepted)",
        default: "10",
        summary: "CPU the helper that collapses THP split by copy-on-write may use (0: no helper)",
        doc: "After a fork, writes split the THP a child shares into 4 KiB pages, and the next fork \
              copies their page tables. A helper thread (`hugeheap-thp`, started at the first fork \
              of a process with THP or when its heap outgrows `HUGEHEAP_HUGE_FROM`, every signal blocked, unknown to the C library so that forks keep \
              its single-threaded path, holding no privilege: root's runs as nobody) collapses them \
              again once no child shares \
              them, using at most this percentage of one CPU (the small phase's pages, when the heap \
              outgrows it, at once, off the program's path; a fork before it is done finishes them \
              itself, so that the child finds them whole). Until the first fork, the helper also \
              populates the free huge pages a growing THP heap of 32 MiB or more takes next, at \
              most two ahead, and the next 2 MiB chunk of the program's own small mappings once \
              they pass 32 MiB (`HUGEHEAP_MMAP`), so that the program's own thread does not \
              wait for the kernel to clear them. `0`: no \
              helper, for programs that must stay single-threaded (`unshare(CLONE_NEWUSER)`): split pages wait for khugepaged, \
              and only the small phase's pages are collapsed, by the allocating thread of a \
              process that never forked. A program that writes all over its heap while it forks \
              back to back splits pages faster than any budget restores them (each costs a 2 MiB \
              copy): when four sweeps in a row fall behind, forks during each, hugeheap says so \
              once on stderr with the hugetlb pool that keeps its forks fast (`hugeheap pool --for \
              SIZE`).",
        apply: |c, v| match leading_number(v) {
            Some((pct, b"" | b"%")) if pct <= 100 => {
                c.collapse = pct as u32;
                true
            }
            _ => false,
        },
    },
    OptionRow {
        env: "HUGEHEAP_THP_OFF",
        flag: "thp-off",
        value_name: Some("ANSWER"),
        accepts: "keep-heap, obey or ignore",
        default: "keep-heap",
        summary: "what a program's own prctl(PR_SET_THP_DISABLE) does to the heap (libhugeheap.so)",
        doc: "Some programs switch THP off for themselves at start-up with `prctl(PR_SET_THP_DISABLE)` \
              (Ruby 3.1 always; Redis when THP is `always`), which would keep hugeheap's heap in 4 KiB \
              pages. Under `libhugeheap.so`: `keep-heap` keeps THP for the heap only, the program's \
              other memory as it asked (the kernel's `PR_THP_DISABLE_EXCEPT_ADVISED`, Linux 6.18+; on \
              older kernels with THP `madvise` the call is dropped, which is the same thing there, and \
              with THP `always` it is passed on and the heap falls back to 4 KiB pages, or a pool); \
              `obey` passes the call on as made (no THP for the heap either); `ignore` drops it (THP \
              as the machine's mode for all of the program's memory). With `HUGEHEAP_VERBOSE`, one \
              line says what was done. Rust programs calling `prctl` themselves are not affected.",
        apply: |c, v| match trim(v) {
            b"keep-heap" => {
                c.thp_off = ThpOff::KeepHeap;
                true
            }
            b"obey" => {
                c.thp_off = ThpOff::Obey;
                true
            }
            b"ignore" => {
                c.thp_off = ThpOff::Ignore;
                true
            }
            _ => false,
        },
    },
    OptionRow {
        env: "HUGEHEAP_MMAP",
        flag: "mmap",
        value_name: Some("WHERE"),
        accepts: "huge or kernel",
        default: "huge",
        summary: "where a program's own 64 KiB-1 MiB anonymous mappings go (libhugeheap.so)",
        doc: "Interpreters map their object memory themselves (CPython's 1 MiB arenas, Ruby 3.1's 16 KiB \
              heap pages cut from 32 KiB mappings), one `mmap` at a time, and the kernel backs such mappings with 4 KiB pages \
              whatever the THP mode. Under `libhugeheap.so`, `huge` places private anonymous \
              read-write mappings of 16 KiB to 1 MiB made without an address in 2 MiB chunks mapped \
              whole and advised for THP (past 32 MiB, before any fork, the helper of \
              `HUGEHEAP_COLLAPSE` populates the next chunk before the program reaches it); `munmap`, `mremap` and `mprotect` work on them as on any \
              mapping, and a chunk wholly unmapped goes back to the OS. `kernel`: every `mmap` goes \
              to the kernel as made. Off where THP is `never`.",
        apply: |c, v| match trim(v) {
            b"huge" => {
                c.map_zone = true;
                true
            }
            b"kernel" => {
                c.map_zone = false;
                true
            }
            _ => false,
        },
    },
    OptionRow {
        env: "HUGEHEAP_VERBOSE",
        flag: "verbose",
        value_name: None,
        accepts: "0, 1, or pid:N",
        default: "0",
        summary: "settings, fallbacks and exit stats on stderr",
        doc: "`1`: one line on stderr with the settings, what the machine offers and which process \
              speaks, a line for each page kind passed over and what was used instead, and the stats \
              (hugeheap's and the kernel's) at exit. The first lines wait until the heap grows past \
              8 MiB (or until exit), so the short-lived helper processes of shell wrappers stay quiet; \
              forked children do not report at exit. `pid:N`: the same in process N only (what \
              `hugeheap run --verbose` sets).",
        apply: |c, v| match trim(v) {
            b"1" | b"yes" | b"true" | b"on" => {
                c.verbose = true;
                true
            }
            b"0" | b"no" | b"false" | b"off" | b"" => {
                c.verbose = false;
                true
            }
            other => match other.strip_prefix(b"pid:").and_then(leading_number) {
                Some((pid, b"")) => {
                    c.verbose = pid == process::pid() as usize;
                    true
                }
                _ => false,
            },
        },
    },
];

/// The fallback chain of page kinds: for each new chunk of heap, the kinds are tried in order
/// and the first that can back it does. Plain 4 KiB pages end every chain, listed or not.
///
/// ```
/// use hugeheap::{PageChain, PageKind};
///
/// let chain = PageChain::parse(b"2m,thp").unwrap(); // what HUGEHEAP_PAGES accepts
/// assert_eq!(chain.kinds(), &[PageKind::Mib2, PageKind::Thp]);
/// assert_eq!(chain, PageChain::of(&[PageKind::Mib2, PageKind::Thp]));
/// assert_eq!(chain.to_string(), "2m,thp");
/// assert!(PageChain::AUTO.is_auto() && PageChain::parse(b"fast").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageChain {
    kinds: [PageKind; 4],
    len: u8,
    auto: bool,
}

impl PageChain {
    /// `auto`: 1g (once the heap is 1 GiB), 2m, thp, 4k.
    pub const AUTO: PageChain = PageChain { kinds: PageKind::ALL, len: 4, auto: true };

    /// A chain of exactly these kinds, in this order (duplicates are dropped; an empty list
    /// means `4k`).
    pub const fn of(list: &[PageKind]) -> PageChain {
        let mut kinds = [PageKind::Small; 4];
        let mut len = 0;
        let mut i = 0;
        while i < list.len() {
            let k = list[i];
            let mut dup = false;
            let mut j = 0;
            while j < len {
                if kinds[j] as u8 == k as u8 {
                    dup = true;
                }
                j += 1;
            }
            if !dup && len < 4 {
                kinds[len] = k;
                len += 1;
            }
            i += 1;
        }
        if len == 0 {
            len = 1;
        }
        PageChain { kinds, len: len as u8, auto: false }
    }

    /// The kinds, in order.
    pub fn kinds(&self) -> &[PageKind] {
        &self.kinds[..self.len as usize]
    }

    /// Whether this is `auto`.
    pub const fn is_auto(&self) -> bool {
        self.auto
    }

    /// Parses `auto` or `1g,2m,thp,4k` (any subset, any order; case-insensitive; `2mb`, `1gb`,
    /// `4kb`, `huge`, `small` and `none` are accepted too).
    pub fn parse(text: &[u8]) -> Option<PageChain> {
        if text.eq_ignore_ascii_case(b"auto") {
            return Some(PageChain::AUTO);
        }
        let mut list = [PageKind::Small; 4];
        let mut n = 0;
        for part in text.split(|&c| c == b',') {
            let part = trim(part);
            let kind = if eq_any(part, &[b"1g", b"1gb", b"1gib"]) {
                PageKind::Gib1
            } else if eq_any(part, &[b"2m", b"2mb", b"2mib", b"hugetlb"]) {
                PageKind::Mib2
            } else if eq_any(part, &[b"thp", b"transparent"]) {
                PageKind::Thp
            } else if eq_any(part, &[b"4k", b"4kb", b"4kib", b"small", b"none"]) {
                PageKind::Small
            } else {
                return None;
            };
            if list[..n].contains(&kind) {
                continue;
            }
            list[n] = kind;
            n += 1;
        }
        (n > 0).then(|| PageChain::of(&list[..n]))
    }
}

impl fmt::Display for PageChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.auto {
            return f.write_str("auto");
        }
        for (i, k) in self.kinds().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(k.name())?;
        }
        Ok(())
    }
}

fn eq_any(s: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| s.eq_ignore_ascii_case(n))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end]
}

/// The configuration in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The fallback chain of page kinds.
    pub pages: PageChain,
    /// Cap on committed heap bytes; 0 means none.
    pub max_heap: usize,
    /// Free backed bytes kept before whole huge pages go back to the OS.
    pub retain: usize,
    /// Milliseconds a free huge page beyond `retain` stays backed before it is given back.
    pub decay_ms: u32,
    /// Percent of the hugetlb pages held that must stay free in the pool (copy-on-write room).
    pub cow_reserve: u32,
    /// Percent of one CPU the re-collapse helper may use (0: none).
    pub collapse: u32,
    /// Heap size from which `auto` uses huge pages (plain 4 KiB pages below).
    pub huge_from: usize,
    /// What a program's own `prctl(PR_SET_THP_DISABLE)` does to the heap.
    pub thp_off: ThpOff,
    /// A program's own small anonymous mappings go to THP chunks (`libhugeheap.so`).
    pub map_zone: bool,
    /// Print the start-up line and the exit stats.
    pub verbose: bool,
}

/// What `libhugeheap.so` does with a program's `prctl(PR_SET_THP_DISABLE)` (`HUGEHEAP_THP_OFF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpOff {
    /// THP off for the program's memory, kept for the heap (which hugeheap advises).
    KeepHeap = 0,
    /// The call passed on as made: the heap loses THP too.
    Obey = 1,
    /// The call dropped: THP as the machine's mode for all memory.
    Ignore = 2,
}

impl ThpOff {
    /// The value's name, as `HUGEHEAP_THP_OFF` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            ThpOff::KeepHeap => "keep-heap",
            ThpOff::Obey => "obey",
            ThpOff::Ignore => "ignore",
        }
    }

    /// The value stored as `self as u8`.
    pub const fn from_u8(v: u8) -> ThpOff {
        match v {
            1 => ThpOff::Obey,
            2 => ThpOff::Ignore,
            _ => ThpOff::KeepHeap,
        }
    }
}

impl Config {
    /// The defaults of the option table (its `default` texts, which a test parses and compares).
    pub const DEFAULT: Config = Config {
        pages: PageChain::AUTO,
        max_heap: 0,
        retain: 8 << 20,
        decay_ms: 1000,
        cow_reserve: 100,
        collapse: 10,
        huge_from: 32 << 20,
        thp_off: ThpOff::KeepHeap,
        map_zone: true,
        verbose: false,
    };

    /// Applies the `HUGEHEAP_*` variables found by `lookup` over `self`, reporting each bad
    /// value through `warn` (one line each). Separated from the real environment for tests.
    pub fn with_env(
        mut self,
        lookup: impl Fn(&[u8]) -> Option<&'static [u8]>,
        mut warn: impl FnMut(&str, &[u8], &str),
    ) -> Config {
        for row in &OPTIONS {
            if let Some(v) = lookup(row.env.as_bytes()) {
                if !(row.apply)(&mut self, v) {
                    warn(row.env, v, row.accepts);
                }
            }
        }
        self
    }

    /// `self` overridden by the process environment (ignored under secure execution), with
    /// bad values reported on stderr.
    pub fn with_process_env(self) -> Config {
        if process::secure_exec() {
            return self;
        }
        self.with_env(process::env_var, |var, value, accepts| {
            let mut w = StackWriter::<512>::new();
            let shown = core::str::from_utf8(value).unwrap_or("(not UTF-8)");
            let _ = writeln!(w, "hugeheap: {var}={shown:?} is not valid (accepted: {accepts}); using the default");
            w.flush_stderr();
        })
    }
}

/// The settings, in the syntax of their variables: `pages=auto huge_from=32M max_heap=none
/// retain=8M decay=1000ms cow_reserve=100% collapse=10% thp_off=keep-heap mmap=huge`.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pages={} huge_from={} max_heap=", self.pages, SizeArg(self.huge_from))?;
        match self.max_heap {
            0 => f.write_str("none")?,
            m => write!(f, "{}", SizeArg(m))?,
        }
        write!(
            f,
            " retain={} decay={}ms cow_reserve={}% collapse={}% thp_off={} mmap={}",
            SizeArg(self.retain),
            self.decay_ms,
            self.cow_reserve,
            self.collapse,
            self.thp_off.name(),
            if self.map_zone { "huge" } else { "kernel" }
        )
    }
}

/// Parses a duration in milliseconds: digits, optionally followed by `ms` or `s` (at most
/// about 49 days).
pub fn parse_ms(text: &[u8]) -> Option<u32> {
    let (v, suffix) = leading_number(text)?;
    let v = u32::try_from(v).ok()?;
    match suffix {
        b"" | b"ms" => Some(v),
        b"s" => v.checked_mul(1000),
        _ => None,
    }
}

/// The decimal number that `text` (trimmed) starts with, and the trimmed rest. `None` without
/// digits or on overflow.
fn leading_number(text: &[u8]) -> Option<(usize, &[u8])> {
    let s = trim(text);
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut v: usize = 0;
    for &c in &s[..digits] {
        v = v.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    Some((v, trim(&s[digits..])))
}

/// Parses a size: digits with an optional K, M, G or T suffix (powers of 1024; `B`, `iB`
/// after it and any case accepted). `None` for anything else, including overflow.
pub fn parse_size(text: &[u8]) -> Option<usize> {
    let (v, suffix) = leading_number(text)?;
    let (shift, rest): (u32, &[u8]) = match suffix.first().map(|c| c.to_ascii_lowercase()) {
        None => (0, &[]),
        Some(b'b') => (0, &suffix[1..]),
        Some(b'k') => (10, &suffix[1..]),
        Some(b'm') => (20, &suffix[1..]),
        Some(b'g') => (30, &suffix[1..]),
        Some(b't') => (40, &suffix[1..]),
        _ => return None,
    };
    if !(rest.is_empty() || rest.eq_ignore_ascii_case(b"b") || rest.eq_ignore_ascii_case(b"ib"))
        || (shift == 0 && !rest.is_empty())
    {
        return None;
    }
    v.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size(b"512M"), Some(512 << 20));
        assert_eq!(parse_size(b"4G"), Some(4 << 30));
        assert_eq!(parse_size(b"4gib"), Some(4 << 30));
        assert_eq!(parse_size(b" 64 KB "), Some(64 << 10));
        assert_eq!(parse_size(b"1T"), Some(1 << 40));
        assert_eq!(parse_size(b"123"), Some(123));
        assert_eq!(parse_size(b"0"), Some(0));
        for bad in [&b""[..], b"G", b"-1", b"4X", b"4GG", b"1.5G", b"99999999999999999999", b"99999999999T", b"12bb"] {
            assert_eq!(parse_size(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_ms(b"0"), Some(0));
        assert_eq!(parse_ms(b"250"), Some(250));
        assert_eq!(parse_ms(b"250ms"), Some(250));
        assert_eq!(parse_ms(b" 2 s"), Some(2000));
        for bad in [&b""[..], b"ms", b"1.5s", b"3m", b"-1", b"99999999999"] {
            assert_eq!(parse_ms(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn chains_parse() {
        assert_eq!(PageChain::parse(b"auto"), Some(PageChain::AUTO));
        let c = PageChain::parse(b"2m, thp,2M").unwrap();
        assert_eq!(c.kinds(), &[PageKind::Mib2, PageKind::Thp]);
        assert_eq!(c.to_string(), "2m,thp");
        assert_eq!(PageChain::parse(b"4k").unwrap().kinds(), &[PageKind::Small]);
        assert_eq!(PageChain::parse(b"1G,4kb").unwrap().kinds(), &[PageKind::Gib1, PageKind::Small]);
        assert_eq!(PageChain::parse(b"3m"), None);
        assert_eq!(PageChain::parse(b""), None);
        assert_eq!(PageChain::parse(b"2m,,thp"), None);
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&[u8]) -> Option<&'static [u8]> {
        move |name| pairs.iter().find(|(k, _)| k.as_bytes() == name).map(|(_, v)| v.as_bytes())
    }

    #[test]
    fn good_values_apply() {
        let warnings = RefCell::new(Vec::new());
        let c = Config::DEFAULT.with_env(
            env_of(&[
                ("HUGEHEAP_PAGES", "thp,4k"),
                ("HUGEHEAP_MAX_HEAP", "8G"),
                ("HUGEHEAP_RETAIN", "0"),
                ("HUGEHEAP_DECAY", "2s"),
                ("HUGEHEAP_COW_RESERVE", "250%"),
                ("HUGEHEAP_VERBOSE", "1"),
            ]),
            |v, _, _| warnings.borrow_mut().push(v.to_string()),
        );
        assert!(warnings.borrow().is_empty());
        assert_eq!(c.pages.kinds(), &[PageKind::Thp, PageKind::Small]);
        assert_eq!(c.max_heap, 8 << 30);
        assert_eq!(c.retain, 0);
        assert_eq!(c.decay_ms, 2000);
        assert_eq!(c.cow_reserve, 250);
        assert!(c.verbose);
    }

    #[test]
    fn each_bad_value_warns_once_and_keeps_default() {
        let warnings = RefCell::new(Vec::new());
        let c = Config::DEFAULT.with_env(
            env_of(&[
                ("HUGEHEAP_PAGES", "fast"),
                ("HUGEHEAP_MAX_HEAP", "1M"),
                ("HUGEHEAP_RETAIN", "lots"),
                ("HUGEHEAP_DECAY", "soon"),
                ("HUGEHEAP_COW_RESERVE", "-5"),
                ("HUGEHEAP_VERBOSE", "2"),
            ]),
            |v, value, accepts| {
                warnings.borrow_mut().push(format!("{v}={} ({accepts})", String::from_utf8_lossy(value)))
            },
        );
        assert_eq!(c, Config::DEFAULT);
        let w = warnings.borrow();
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(w[0].starts_with("HUGEHEAP_PAGES=fast (auto, or a comma list"));
        assert!(w[1].starts_with("HUGEHEAP_MAX_HEAP=1M (0 (none), or a size of at least 2M"));
        assert!(w[2].starts_with("HUGEHEAP_RETAIN=lots"));
        assert!(w[3].starts_with("HUGEHEAP_DECAY=soon (milliseconds"));
        assert!(w[4].starts_with("HUGEHEAP_COW_RESERVE=-5 (a percentage"));
        assert!(w[5].starts_with("HUGEHEAP_VERBOSE=2 (0, 1, or pid:N)"));
    }

    /// The options table of a document, between its markers, as the table would write it.
    fn check_table(doc: &str, path: &str, full: bool) {
        let mut want = String::from("| variable | accepts | default | what it does |\n|---|---|---|---|\n");
        for row in OPTIONS {
            let what = if full { row.doc } else { row.summary };
            want.push_str(&format!("| `{}` | {} | {} | {} |\n", row.env, row.accepts, row.default, what));
        }
        let begin = "<!-- options: generated from OPTIONS in src/options.rs -->\n";
        let end = "<!-- end of options -->";
        let start = doc.find(begin).unwrap_or_else(|| panic!("{path} lacks the options table marker")) + begin.len();
        let stop = start + doc[start..].find(end).unwrap_or_else(|| panic!("{path}: no end marker"));
        if doc[start..stop] == want {
            return;
        }
        if std::env::var_os("HUGEHEAP_BLESS").is_some() {
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            let fresh = format!("{}{want}{}", &doc[..start], &doc[stop..]);
            std::fs::write(&file, fresh).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{path}: options table rewritten from OPTIONS");
            return;
        }
        panic!("{path}'s options table is not the table's (HUGEHEAP_BLESS=1 rewrites it); it should read:\n{want}");
    }

    /// `HUGEHEAP_BLESS=1 cargo test -p hugeheap --lib docs_tables` rewrites the tables.
    #[test]
    fn docs_tables_are_the_option_table() {
        check_table(include_str!("../docs/tuning.md"), "docs/tuning.md", true);
        check_table(include_str!("../README.md"), "README.md", false);
    }

    #[test]
    fn defaults_are_the_default_texts() {
        for row in OPTIONS {
            let mut c = Config::DEFAULT;
            let text = match row.default {
                "none" => "0",
                d => d,
            };
            assert!((row.apply)(&mut c, text.as_bytes()), "{}: default {text:?} does not parse", row.env);
            assert_eq!(c, Config::DEFAULT, "{}: the default text is not Config::DEFAULT's", row.env);
        }
    }

    #[test]
    fn every_option_row_is_read() {
        // A row added to the table without parsing code would show up here: each env var of
        // the table, given a bad value, must produce exactly one warning.
        for row in OPTIONS {
            let count = RefCell::new(0);
            let name = row.env.as_bytes();
            let _ = Config::DEFAULT
                .with_env(move |n| (n == name).then_some(&b"?bad?"[..]), |_, _, _| *count.borrow_mut() += 1);
            assert_eq!(*count.borrow(), 1, "{}", row.env);
        }
    }
}

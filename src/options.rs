//! Run-time options: one declarative table ([`OPTIONS`]), defaults set in code through
//! [`crate::HugeAlloc`]'s `const` builders, overridden by `HUGEHEAP_*` environment variables.
//!
//! The environment is read once, at the first allocation, without allocating. A bad value
//! prints one line on stderr (the variable, the value, what is accepted) and the default stays.
//! In a secure-execution process (setuid, file capabilities) the variables are ignored.

use crate::os::{self, PageKind, StackWriter};
use crate::units::SizeArg;
use core::fmt::{self, Write};

/// One row of the option table: what docs/tuning.md and README.md are checked against.
#[derive(Clone, Copy, Debug)]
pub struct OptionDoc {
    /// The environment variable.
    pub env: &'static str,
    /// What values it takes.
    pub accepts: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// One line saying what it does.
    pub doc: &'static str,
}

/// Every run-time option, in the order they are documented.
pub const OPTIONS: [OptionDoc; 6] = [
    OptionDoc {
        env: "HUGEHEAP_PAGES",
        accepts: "auto, or a comma list of 1g,2m,thp,4k (the fallback chain, best first)",
        default: "auto",
        doc: "Page kinds tried for each new chunk of heap; `auto` is 1g,2m,thp,4k with 1 GiB pages \
              only once the heap has reached 1 GiB.",
    },
    OptionDoc {
        env: "HUGEHEAP_MAX_HEAP",
        accepts: "a size such as 512M, 4G, 1T (suffixes K, M, G, T; powers of 1024)",
        default: "none (the heap grows as the program needs)",
        doc: "Cap on the bytes of heap hugeheap commits; past it allocations return null (ENOMEM).",
    },
    OptionDoc {
        env: "HUGEHEAP_RETAIN",
        accepts: "a size such as 0, 64M, 1G",
        default: "64M",
        doc: "Free huge pages kept backed for reuse; whole free 2 MiB pages beyond this go back to \
              the OS at once (hugetlb pages stay with the process).",
    },
    OptionDoc {
        env: "HUGEHEAP_DECAY",
        accepts: "milliseconds such as 0, 250, 1000 (suffix ms or s accepted)",
        default: "1000",
        doc: "How long a whole free huge page beyond HUGEHEAP_RETAIN stays backed before it goes back to \
              the OS (checked when the heap is next used; 0: at once).",
    },
    OptionDoc {
        env: "HUGEHEAP_COW_RESERVE",
        accepts: "a percentage such as 0, 100, 300 (a % sign is accepted)",
        default: "100",
        doc: "hugetlb pages are taken only while the pool keeps this percentage of what the process \
              holds free, so that copy-on-write after fork finds fresh pages and forked children \
              keep theirs; past it the heap falls back to THP. 0: use the whole pool (fork+exec only).",
    },
    OptionDoc {
        env: "HUGEHEAP_VERBOSE",
        accepts: "0, 1, or pid:N",
        default: "0",
        doc: "1: one line on stderr at start (the settings and what the machine offers), a line for \
              each page kind passed over and what was used instead, the stats at exit. pid:N: the \
              same in process N only (what `hugeheap run --verbose` sets, so that the helper \
              processes of a shell wrapper stay quiet).",
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
    /// Print the start-up line and the exit stats.
    pub verbose: bool,
}

impl Config {
    /// The defaults of the option table.
    pub const DEFAULT: Config = Config {
        pages: PageChain::AUTO,
        max_heap: 0,
        retain: 64 << 20,
        decay_ms: 1000,
        cow_reserve: 100,
        verbose: false,
    };

    /// Applies the `HUGEHEAP_*` variables found by `lookup` over `self`, reporting each bad
    /// value through `warn` (one line each). Separated from the real environment for tests.
    pub fn with_env(
        mut self,
        lookup: impl Fn(&[u8]) -> Option<&'static [u8]>,
        mut warn: impl FnMut(&str, &[u8], &str),
    ) -> Config {
        if let Some(v) = lookup(b"HUGEHEAP_PAGES") {
            match PageChain::parse(v) {
                Some(c) => self.pages = c,
                None => warn(OPTIONS[0].env, v, OPTIONS[0].accepts),
            }
        }
        if let Some(v) = lookup(b"HUGEHEAP_MAX_HEAP") {
            match parse_size(v) {
                Some(0) => self.max_heap = 0,
                Some(s) if s >= crate::units::HUGE_SIZE => self.max_heap = s,
                _ => warn(OPTIONS[1].env, v, "a size of at least 2M such as 512M, 4G, 1T (suffixes K, M, G, T)"),
            }
        }
        if let Some(v) = lookup(b"HUGEHEAP_RETAIN") {
            match parse_size(v) {
                Some(s) => self.retain = s,
                None => warn(OPTIONS[2].env, v, OPTIONS[2].accepts),
            }
        }
        if let Some(v) = lookup(b"HUGEHEAP_DECAY") {
            match parse_ms(v) {
                Some(ms) => self.decay_ms = ms,
                None => warn(OPTIONS[3].env, v, OPTIONS[3].accepts),
            }
        }
        if let Some(v) = lookup(b"HUGEHEAP_COW_RESERVE") {
            match leading_number(v) {
                Some((pct, b"" | b"%")) if pct <= 10_000 => self.cow_reserve = pct as u32,
                _ => warn(OPTIONS[4].env, v, OPTIONS[4].accepts),
            }
        }
        if let Some(v) = lookup(b"HUGEHEAP_VERBOSE") {
            match trim(v) {
                b"1" | b"yes" | b"true" | b"on" => self.verbose = true,
                b"0" | b"no" | b"false" | b"off" | b"" => self.verbose = false,
                other => match other.strip_prefix(b"pid:").and_then(leading_number) {
                    Some((pid, b"")) => self.verbose = pid == os::pid() as usize,
                    _ => warn(OPTIONS[5].env, v, OPTIONS[5].accepts),
                },
            }
        }
        self
    }

    /// `self` overridden by the process environment (ignored under secure execution), with
    /// bad values reported on stderr.
    pub fn with_process_env(self) -> Config {
        if os::secure_exec() {
            return self;
        }
        self.with_env(os::env_var, |var, value, accepts| {
            let mut w = StackWriter::<512>::new();
            let shown = core::str::from_utf8(value).unwrap_or("(not UTF-8)");
            let _ = writeln!(w, "hugeheap: {var}={shown:?} is not valid (accepted: {accepts}); using the default");
            w.flush_stderr();
        })
    }
}

/// The settings, in the syntax of their variables: `pages=auto max_heap=none retain=64M
/// decay=1000ms cow_reserve=100%`.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pages={} max_heap=", self.pages)?;
        match self.max_heap {
            0 => f.write_str("none")?,
            m => write!(f, "{}", SizeArg(m))?,
        }
        write!(f, " retain={} decay={}ms cow_reserve={}%", SizeArg(self.retain), self.decay_ms, self.cow_reserve)
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
        assert!(w[1].starts_with("HUGEHEAP_MAX_HEAP=1M (a size of at least 2M"));
        assert!(w[2].starts_with("HUGEHEAP_RETAIN=lots"));
        assert!(w[3].starts_with("HUGEHEAP_DECAY=soon (milliseconds"));
        assert!(w[4].starts_with("HUGEHEAP_COW_RESERVE=-5 (a percentage"));
        assert!(w[5].starts_with("HUGEHEAP_VERBOSE=2 (0, 1, or pid:N)"));
    }

    #[test]
    fn docs_cover_every_option() {
        let tuning = include_str!("../docs/tuning.md");
        let readme = include_str!("../README.md");
        for row in OPTIONS {
            let line = tuning.lines().find(|l| l.starts_with(&format!("| `{}`", row.env)));
            let line = line.unwrap_or_else(|| panic!("{} has no row in docs/tuning.md", row.env));
            let default = row.default.split(' ').next().unwrap();
            assert!(line.contains(default), "docs/tuning.md row of {} lacks its default {default}", row.env);
            assert!(readme.contains(row.env), "README.md does not mention {}", row.env);
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

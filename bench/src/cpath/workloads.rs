//! The C path's workloads: allocation work written in C (`workloads.c`, built here with `cc`,
//! with the launcher that reports a command's peak RSS, `launch.c`) and real programs (python3
//! and ruby on small-object scripts, `sort` of a large file), each a command line.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C workloads' source and the launcher that reports a command's peak RSS, built by
/// [`build`].
const WORKLOADS_C: &str = include_str!("workloads.c");
const LAUNCH_C: &str = include_str!("launch.c");

/// A workload: a program and its arguments, built from the scale.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Short name.
    pub name: &'static str,
    /// What kind of program it stands for.
    pub what: &'static str,
    /// The command line (program first).
    pub argv: Vec<String>,
    /// Extra environment, the same for every contestant.
    pub env: Vec<(String, String)>,
    /// Why it cannot run here, if it cannot.
    pub missing: Option<String>,
}

/// The C workloads (name, what it stands for), in `workloads.c`.
pub const C_WORKLOADS: [(&str, &str); 7] = [
    ("churn", "1 thread, small objects of mixed lifetimes, realloc growth (a bignum calculator, a compiler)"),
    ("pairs", "same-size malloc/free pairs, 16 B to 1 KiB (glibc's bench-malloc)"),
    ("tight", "4 threads, malloc/free of random small sizes in tight loops"),
    ("server", "4 threads hand requests to each other, each freed by its receiver in random order (a server)"),
    (
        "trace",
        "4 threads, young and old objects of a skewed size mix, calloc and realloc, 1 in 16 handed to another thread",
    ),
    ("threads", "short-lived threads, each leaving blocks to the next"),
    ("large", "buffers of 64 KiB to 8 MiB, written through, grown by realloc"),
];

/// Real programs: (name, what, program, package).
const PROGRAMS: [(&str, &str, &str, &str); 3] = [
    (
        "python3",
        "python3 builds, sorts and walks 300k small dicts and tuples (PYTHONMALLOC=malloc)",
        "python3",
        "python3",
    ),
    ("ruby", "ruby builds, sorts and walks 300k small hashes and arrays", "ruby", "ruby"),
    ("sort", "sort(1) of a 2-million-line file (LC_ALL=C)", "sort", "coreutils"),
];

const PYTHON: &str = r#"
import sys
n = int(300000 * float(sys.argv[1]))
d = {}
for i in range(n):
    d[str(i) * 3] = (i, [i, i + 1, i + 2], {"k": i, "s": str(i)})
items = sorted(d.items(), key=lambda kv: kv[0][::-1])
s = 0
for k, (a, b, c) in items:
    s = (s * 31 + a + len(k) + b[2] + len(c["s"])) % (1 << 61)
print(s)
"#;

const RUBY: &str = r#"
n = (300000 * ARGV[0].to_f).to_i
d = {}
n.times { |i| d[i.to_s * 3] = [i, [i, i + 1, i + 2], { "k" => i, "s" => i.to_s }] }
items = d.sort_by { |k, _| k.reverse }
s = 0
items.each { |k, (a, b, c)| s = (s * 31 + a + k.length + b[2] + c["s"].length) % (1 << 61) }
puts s
"#;

/// The names of every workload, C first.
pub fn workload_names() -> Vec<&'static str> {
    C_WORKLOADS.iter().map(|w| w.0).chain(PROGRAMS.iter().map(|p| p.0)).collect()
}

/// The built programs: the workloads and the launcher.
pub struct Built {
    /// `workloads.c`, built.
    pub workloads: PathBuf,
    /// `launch.c`, built.
    pub launch: PathBuf,
}

/// Builds `workloads.c` (with the malloc builtins off, so no allocation is elided) and
/// `launch.c` into `dir`.
pub fn build(dir: &Path) -> Result<Built, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let one = |name: &str, text: &str, flags: &[&str]| -> Result<PathBuf, String> {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, text).map_err(|e| format!("{}: {e}", src.display()))?;
        let bin = dir.join(name);
        let st = Command::new("cc")
            .args(["-O2", "-pthread"])
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .status()
            .map_err(|e| format!("cannot run cc ({e}): apt-get install gcc"))?;
        if st.success() { Ok(bin) } else { Err(format!("cc {} failed: {st}", src.display())) }
    };
    let no_builtins = ["-fno-builtin-malloc", "-fno-builtin-free", "-fno-builtin-calloc", "-fno-builtin-realloc"];
    Ok(Built { workloads: one("workloads", WORKLOADS_C, &no_builtins)?, launch: one("launch", LAUNCH_C, &[])? })
}

/// The workloads at `scale`, their programs and inputs written into `dir`.
pub fn workloads(dir: &Path, bin: &Path, scale: f64) -> std::io::Result<Vec<Workload>> {
    let mut v: Vec<Workload> = C_WORKLOADS
        .iter()
        .map(|&(name, what)| Workload {
            name,
            what,
            argv: vec![bin.display().to_string(), name.into(), format!("{scale}")],
            env: Vec::new(),
            missing: None,
        })
        .collect();
    for (name, what, program, package) in PROGRAMS {
        let found = crate::programs::installed(program, "--version");
        let missing = (!found).then(|| format!("{program} not found: apt-get install {package}"));
        let (argv, env) = match name {
            "python3" => {
                let p = dir.join("objects.py");
                std::fs::write(&p, PYTHON)?;
                (vec!["python3".into(), p.display().to_string(), format!("{scale}")], vec![("PYTHONMALLOC", "malloc")])
            }
            "ruby" => {
                let p = dir.join("objects.rb");
                std::fs::write(&p, RUBY)?;
                (vec!["ruby".into(), p.display().to_string(), format!("{scale}")], vec![])
            }
            _ => {
                let p = dir.join("lines.txt");
                write_lines(&p, (2_000_000.0 * scale) as usize)?;
                (vec!["sort".into(), p.display().to_string()], vec![("LC_ALL", "C")])
            }
        };
        let env = env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.push(Workload { name, what, argv, env, missing });
    }
    Ok(v)
}

/// A file of `n` pseudo-random lines (words of 4 to 40 letters, a number), the same every time.
fn write_lines(path: &Path, n: usize) -> std::io::Result<()> {
    let mut rng = crate::rng::Rng::new(0x5eed);
    let mut s = String::with_capacity(n * 30);
    for i in 0..n {
        let len = 4 + (rng.next_u64() % 37) as usize;
        for _ in 0..len {
            s.push((b'a' + (rng.next_u64() % 26) as u8) as char);
        }
        let _ = writeln!(s, " {i}");
    }
    std::fs::write(path, s)
}

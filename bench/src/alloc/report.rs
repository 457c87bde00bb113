//! The allocation benchmark's text report.

use super::sample::Cell;
use std::fmt::Write as _;

/// The text report: median time per workload and contestant with hugeheap's ratios to
/// jemalloc and mimalloc and their geometric means, then peak and final RSS.
pub fn table(cells: &[Cell], ws: &[&str], cs: &[&str]) -> String {
    let get = |w: &str, c: &str| cells.iter().find(|x| x.workload == w && x.contestant == c);
    let mut out = String::new();
    let _ = writeln!(out, "median time, ms (hugeheap's ratio to jemalloc and mimalloc: < 1 is faster)");
    let _ = write!(out, "{:<13}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>12}");
    }
    let _ = writeln!(out, " {:>9} {:>9}", "hh/je", "hh/mi");
    let mut logs: Vec<(f64, usize)> = vec![(0.0, 0); cs.len()];
    for w in ws {
        let _ = write!(out, "{w:<13}");
        for (i, c) in cs.iter().enumerate() {
            match get(w, c).and_then(|x| x.median(|s| s.secs)) {
                Some(t) => {
                    let _ = write!(out, " {:>12.1}", t * 1e3);
                    logs[i].0 += t.ln();
                    logs[i].1 += 1;
                }
                None => {
                    let _ = write!(out, " {:>12}", "failed");
                }
            }
        }
        let t = |c: &str| get(w, c).and_then(|x| x.median(|s| s.secs));
        let ratio = |b: &str| t("hugeheap").zip(t(b)).map_or("-".into(), |(h, b)| format!("{:.2}", h / b));
        let _ = writeln!(out, " {:>9} {:>9}", ratio("jemalloc"), ratio("mimalloc"));
    }
    let _ = write!(out, "{:<13}", "geomean");
    for (s, n) in &logs {
        let _ = write!(out, " {:>12.1}", if *n > 0 { (s / *n as f64).exp() * 1e3 } else { f64::NAN });
    }
    let _ = writeln!(out);
    for (title, f) in [("\npeak RSS, MiB (VmHWM + HugetlbPages)", 0), ("\nRSS at the end of the workload, MiB", 1)] {
        let _ = writeln!(out, "{title}");
        let _ = write!(out, "{:<13}", "workload");
        for c in cs {
            let _ = write!(out, " {c:>12}");
        }
        let _ = writeln!(out);
        for w in ws {
            let _ = write!(out, "{w:<13}");
            for c in cs {
                let v = get(w, c).and_then(|x| x.median(|s| if f == 0 { s.peak as f64 } else { s.end as f64 }));
                let _ = write!(out, " {:>12}", v.map_or("-".into(), |b| crate::figures::mib_number(b as usize, 0)));
            }
            let _ = writeln!(out);
        }
    }
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    out
}

//! The benchmark's output: a table on stdout (each figure with its unit or ratio named in the
//! header; the page kinds each contestant really got, from the kernel's counters, with a `!`
//! where that is not what its name promises), and `fork.csv`, `fork.json`, `fork.txt`,
//! `fork.svg` (fork latency against heap size, log-log, one line per contestant) in the
//! output directory.

use super::child::{Measured, Sustained};
use super::results::{Options, Row, measured};
use crate::contestant::Contestant;
use crate::figures::mib_number;
use crate::machine::Machine;
use std::fmt::Write as _;
use std::io::Write as _;

/// `512M`, `4G`, `0`.
pub fn size_name(size: usize) -> String {
    if size == 0 {
        "0".into()
    } else if size % (1 << 30) == 0 {
        format!("{}G", size >> 30)
    } else {
        format!("{}M", size >> 20)
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

/// The heap's page kinds as the kernel counted them, largest share first, each of at least
/// 5%: `1g 99%`, `2m 60% thp 38%`, `4k 97%`. Shares are of RSS + hugetlb memory (the program
/// itself counts as 4k).
pub fn got(m: &Measured) -> String {
    let total = (m.rss + m.hugetlb).max(1) as f64;
    // Results without the per-size split (older runs) count hugetlb as one kind.
    let unsplit = m.hugetlb.saturating_sub(m.hugetlb_1g + m.hugetlb_2m);
    let mut shares = [
        ("1g", m.hugetlb_1g),
        ("2m", m.hugetlb_2m),
        ("hugetlb", unsplit),
        ("thp", m.anon_huge),
        ("4k", m.rss.saturating_sub(m.anon_huge)),
    ]
    .map(|(k, b)| (k, b as f64 / total));
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> =
        shares.iter().filter(|s| s.1 >= 0.05).map(|(k, s)| format!("{k} {:.0}%", s * 100.0)).collect();
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}

/// The lines that open a run: the machine, and, when the contestants that want hugetlb pages
/// will find the pools empty, that they will be marked and how to give them pages.
pub fn run_header(m: &Machine, chosen: &[&Contestant], opts: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fork benchmark: {}", m.describe());
    let wanting: Vec<&str> = chosen.iter().filter(|c| c.uses_pools).map(|c| c.name).collect();
    let (p2, p1) = opts.pools.unwrap_or((m.pool_2m.1, m.pool_1g.1));
    if !wanting.is_empty() && (p2 == 0 || p1 == 0) {
        let empty = match (p2, p1) {
            (0, 0) => "the hugetlb pools are empty",
            (0, _) => "the 2 MiB hugetlb pool is empty",
            _ => "the 1 GiB hugetlb pool is empty",
        };
        let _ = writeln!(
            out,
            "note: {empty}: {} {} back to other pages; a contestant that does not get the pages its name \
             promises is marked `!`. To measure them as named, reserve pools for the run (root; put back \
             afterwards): `cargo bench --bench fork -- --pool-2m 4800 --pool-1g 4` (or `hugeheap bench \
             fork --pool-2m 4800 --pool-1g 4`).",
            wanting.join(", "),
            if wanting.len() == 1 { "falls" } else { "fall" }
        );
    }
    out
}

/// The table, as text.
pub fn table(rows: &[Row], machine: &Machine, chosen: &[&Contestant], opts: &Options) -> String {
    let mut out = run_header(machine, chosen, opts);
    let floor = measured(rows, "empty", 0);
    let (floor_fork, floor_exec) = (floor.and_then(|m| m.fork_med_ms), floor.and_then(|m| m.exec_med_ms));
    let _ = writeln!(
        out,
        "floor (an empty process): fork {} ms, fork+exec {} ms\n\n\
         fork ms: median fork() as the parent sees it right after building the heap (p90 beside it); \
         steady ms: the median again after a quiet second; {rounds}glibc/fork: glibc's time over this one's \
         (higher is faster); fork/floor: this one over the empty process's; got: the heap's page kinds by the \
         kernel's count after the first fork (! = not what the name promises); CoW: the parent rewrites a tenth of its heap while a \
         forked child lives (time, memory copied, how the child ended)\n",
        opt(floor_fork, 3),
        opt(floor_exec, 3),
        rounds = match opts.rounds {
            0 | 1 => String::new(),
            r => format!(
                "up to {}, each the median of {r} rounds' medians (a fresh process each round, the contestants \
                 taking turns); ",
                size_name(Options::ROUNDS_UP_TO)
            ),
        }
    );
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).filter(|&s| s > 0).collect();
    sizes.dedup();
    let header = format!(
        "{:<16} {:<16} {:>8} {:>8} {:>9} {:>10} {:>10} {:>12} {:>12} {:>7} {:>9} {:>7} {:>11} {:>7} {:>5} {:>8} {:>8}  {}",
        "contestant",
        "got",
        "fork ms",
        "p90 ms",
        "steady ms",
        "glibc/fork",
        "fork/floor",
        "fork+exec ms",
        "glibc/f+exec",
        "build s",
        "VmPTE KiB",
        "THP MiB",
        "hugetlb MiB",
        "RSS MiB",
        "maps",
        "CoW ms",
        "CoW MiB",
        "CoW child; note"
    );
    for size in sizes {
        let _ = writeln!(out, "heap {} ----\n{header}", size_name(size));
        let g = measured(rows, "glibc", size).and_then(|m| m.fork_med_ms);
        let ge = measured(rows, "glibc", size).and_then(|m| m.exec_med_ms);
        for r in rows.iter().filter(|r| r.size == size) {
            let name = if r.short { format!("{} !", r.contestant) } else { r.contestant.to_string() };
            let Some(m) = &r.measured else {
                let _ = writeln!(out, "{name:<16} {}", r.note.as_deref().unwrap_or("did not run"));
                continue;
            };
            let ratio = |base: Option<f64>, v: Option<f64>| opt(base.zip(v).map(|(b, v)| b / v), 1);
            let cow = m.cow.as_ref();
            let mut tail = cow.map_or(String::new(), |c| c.child.clone());
            if let Some(n) = &r.note {
                tail = if tail.is_empty() { n.clone() } else { format!("{tail}; {n}") };
            }
            let _ = writeln!(
                out,
                "{:<16} {:<16} {:>8} {:>8} {:>9} {:>10} {:>10} {:>12} {:>12} {:>7.2} {:>9} {:>7} {:>11} {:>7} {:>5} {:>8} {:>8}  {}",
                name,
                r.got.as_deref().unwrap_or("-"),
                opt(m.fork_med_ms, 3),
                opt(m.fork_p90_ms, 3),
                opt(m.fork_steady_ms, 3),
                ratio(g, m.fork_med_ms),
                opt(m.fork_med_ms.zip(floor_fork).map(|(v, f)| v / f), 1),
                opt(m.exec_med_ms, 3),
                ratio(ge, m.exec_med_ms),
                m.build_s,
                m.vm_pte >> 10,
                mib_number(m.anon_huge, 0),
                mib_number(m.hugetlb, 0),
                mib_number(m.rss, 0),
                m.mappings,
                opt(cow.map(|c| c.ms), 1),
                cow.map_or("-".into(), |c| mib_number(c.extra_bytes, 0)),
                tail
            );
        }
        out.push('\n');
    }
    sustained_table(&mut out, rows, "fork+exec", "f+exec", |m| m.sustained.as_ref());
    sustained_table(&mut out, rows, "fork without exec (child lives 10 ms)", "fork", |m| m.sustained_nox.as_ref());
    out
}

/// One sustained table: `what` cycles while a thread writes, for every contestant that ran them.
fn sustained_table(out: &mut String, rows: &[Row], what: &str, lat: &str, pick: fn(&Measured) -> Option<&Sustained>) {
    let ran: Vec<(&Row, &Sustained)> = rows.iter().filter_map(|r| Some((r, pick(r.measured.as_ref()?)?))).collect();
    let Some((first, _)) = ran.first() else { return };
    let _ = writeln!(
        out,
        "\nsustained: {what} cycles while a thread writes into the heap (heap {}); median of the first and last \
         tenth of the cycles; huge = AnonHugePages + HugetlbPages; writes = the writer's, millions per second\n\
         {:<16} {:>7} {:>14} {:>12} {:>15} {:>13} {:>15} {:>13} {:>7}",
        size_name(first.size),
        "contestant",
        "cycles",
        format!("{lat} ms start"),
        format!("{lat} ms end"),
        "huge MiB start",
        "huge MiB end",
        "VmPTE KiB start",
        "VmPTE KiB end",
        "writes"
    );
    for (r, s) in ran {
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>14.3} {:>12.3} {:>15} {:>13} {:>15} {:>13} {:>7.3}",
            r.contestant,
            s.cycles,
            s.exec_start_ms,
            s.exec_end_ms,
            mib_number(s.huge_start, 0),
            mib_number(s.huge_end, 0),
            s.vm_pte_start >> 10,
            s.vm_pte_end >> 10,
            s.writes_per_s / 1e6
        );
    }
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "contestant,env,size,got,short,build_s,heap_bytes,fork_med_ms,fork_p90_ms,exec_med_ms,exec_p90_ms,vm_pte,\
         anon_huge,hugetlb,hugetlb_2m,hugetlb_1g,rss,mappings,sustained_cycles,sustained_exec_start_ms,\
         sustained_exec_end_ms,sustained_huge_start,sustained_huge_end,sustained_writes_per_s,\
         nox_fork_start_ms,nox_fork_end_ms,nox_huge_start,nox_huge_end,nox_writes_per_s,cow_ms,cow_rewritten,\
         cow_extra_bytes,cow_child,note,fork_steady_ms,rounds\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    for r in rows {
        let m = r.measured.clone().unwrap_or_default();
        let s = m.sustained.clone().unwrap_or_default();
        let x = m.sustained_nox.clone().unwrap_or_default();
        let c = m.cow.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{},\"{}\",{},\"{}\",{},{:.4},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{},{},{:.0},{:.6},{:.6},{},{},{:.0},\
             {:.3},{},{},\"{}\",\"{}\",{},{}",
            r.contestant,
            r.env,
            r.size,
            r.got.as_deref().unwrap_or(""),
            r.short,
            m.build_s,
            m.heap_bytes,
            f(m.fork_med_ms),
            f(m.fork_p90_ms),
            f(m.exec_med_ms),
            f(m.exec_p90_ms),
            m.vm_pte,
            m.anon_huge,
            m.hugetlb,
            m.hugetlb_2m,
            m.hugetlb_1g,
            m.rss,
            m.mappings,
            s.cycles,
            s.exec_start_ms,
            s.exec_end_ms,
            s.huge_start,
            s.huge_end,
            s.writes_per_s,
            x.exec_start_ms,
            x.exec_end_ms,
            x.huge_start,
            x.huge_end,
            x.writes_per_s,
            c.ms,
            c.rewritten,
            c.extra_bytes,
            c.child,
            r.note.as_deref().unwrap_or("").replace('"', "'"),
            f(m.fork_steady_ms),
            m.rounds
        );
    }
    out
}

/// Prints the table and writes the files.
pub fn write(rows: &[Row], machine: &Machine, chosen: &[&Contestant], opts: &Options) -> std::io::Result<()> {
    let text = table(rows, machine, chosen, opts);
    std::io::stdout().write_all(text.as_bytes())?;
    std::fs::create_dir_all(&opts.out_dir)?;
    std::fs::write(opts.out_dir.join("fork.csv"), csv(rows))?;
    let json = serde_json::json!({ "machine": machine, "rows": rows });
    std::fs::write(opts.out_dir.join("fork.json"), serde_json::to_string_pretty(&json).expect("json"))?;
    std::fs::write(opts.out_dir.join("fork.txt"), &text)?;
    let svg = opts.out_dir.join("fork.svg");
    if let Err(e) = super::chart::chart(rows, &svg) {
        eprintln!("hugeheap-bench fork: chart not written: {e}");
    }
    let dir = opts.out_dir.canonicalize().unwrap_or(opts.out_dir.clone());
    eprintln!("hugeheap-bench fork: wrote {}/fork.{{csv,json,txt,svg}}", dir.display());
    Ok(())
}

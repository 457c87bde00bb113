//! The benchmark's output: a table on stdout (each figure beside its ratio to glibc and to the
//! empty-process floor), and `fork.csv`, `fork.json`, `fork.svg` (fork latency against heap
//! size, log-log, one line per contestant) in the output directory.

use super::{CONTESTANTS, Method, Options, Row};
use plotters::prelude::*;
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

fn mib(b: usize) -> String {
    format!("{:.0}", b as f64 / (1 << 20) as f64)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

/// What `name` measured at `size`, if it ran.
fn measured<'a>(rows: &'a [Row], name: &str, size: usize) -> Option<&'a super::Measured> {
    rows.iter().find(|r| r.contestant == name && r.size == size)?.measured.as_ref()
}

/// Fork median of `name` at `size`.
fn fork_of(rows: &[Row], name: &str, size: usize) -> Option<f64> {
    measured(rows, name, size)?.fork_med_ms
}

/// fork+exec median of `name` at `size`.
fn exec_of(rows: &[Row], name: &str, size: usize) -> Option<f64> {
    measured(rows, name, size)?.exec_med_ms
}

/// The table, as text.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let floor = fork_of(rows, "empty", 0);
    let floor_exec = exec_of(rows, "empty", 0);
    let _ = writeln!(out, "floor (empty process): fork {} ms, fork+exec {} ms\n", opt(floor, 3), opt(floor_exec, 3));
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).filter(|&s| s > 0).collect();
    sizes.dedup();
    let header = format!(
        "{:<15} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>9} {:>7} {:>8} {:>7} {:>5} {:>8} {:>8}  {}",
        "contestant",
        "fork ms",
        "p90 ms",
        "x glibc",
        "x floor",
        "f+exec",
        "x glibc",
        "build s",
        "VmPTE KiB",
        "THP MiB",
        "hugetlb",
        "RSS MiB",
        "maps",
        "CoW ms",
        "CoW MiB",
        "CoW child / note"
    );
    for size in sizes {
        let _ = writeln!(out, "heap {} ----\n{header}", size_name(size));
        let g = fork_of(rows, "glibc", size);
        let ge = exec_of(rows, "glibc", size);
        for r in rows.iter().filter(|r| r.size == size) {
            let Some(m) = &r.measured else {
                let _ = writeln!(out, "{:<15} {}", r.contestant, r.note.as_deref().unwrap_or("did not run"));
                continue;
            };
            let ratio = |base: Option<f64>, v: Option<f64>| opt(base.zip(v).map(|(b, v)| b / v), 1);
            let cow = m.cow.as_ref();
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7.2} {:>9} {:>7} {:>8} {:>7} {:>5} {:>8} {:>8}  {}",
                r.contestant,
                opt(m.fork_med_ms, 3),
                opt(m.fork_p90_ms, 3),
                ratio(g, m.fork_med_ms),
                opt(m.fork_med_ms.zip(floor).map(|(v, f)| v / f), 1),
                opt(m.exec_med_ms, 3),
                ratio(ge, m.exec_med_ms),
                m.build_s,
                m.vm_pte >> 10,
                mib(m.anon_huge),
                mib(m.hugetlb),
                mib(m.rss),
                m.mappings,
                opt(cow.map(|c| c.ms), 1),
                cow.map_or("-".into(), |c| mib(c.extra_bytes)),
                cow.map_or(String::new(), |c| c.child.clone())
            );
        }
        out.push('\n');
    }
    let sustained: Vec<&Row> =
        rows.iter().filter(|r| r.measured.as_ref().is_some_and(|m| m.sustained.is_some())).collect();
    if let Some(first) = sustained.first() {
        let _ = writeln!(
            out,
            "sustained: fork+exec cycles while a thread writes into the heap (heap {})\n{:<15} {:>7} {:>12} {:>12} {:>14} {:>14} {:>11} {:>11}",
            size_name(first.size),
            "contestant",
            "cycles",
            "start ms",
            "end ms",
            "huge MiB start",
            "huge MiB end",
            "VmPTE start",
            "VmPTE end"
        );
        for r in sustained {
            let s = r.measured.as_ref().and_then(|m| m.sustained.as_ref()).expect("filtered");
            let _ = writeln!(
                out,
                "{:<15} {:>7} {:>12.3} {:>12.3} {:>14} {:>14} {:>11} {:>11}",
                r.contestant,
                s.cycles,
                s.exec_start_ms,
                s.exec_end_ms,
                mib(s.huge_start),
                mib(s.huge_end),
                s.vm_pte_start >> 10,
                s.vm_pte_end >> 10
            );
        }
    }
    out
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "contestant,env,size,build_s,heap_bytes,fork_med_ms,fork_p90_ms,exec_med_ms,exec_p90_ms,vm_pte,anon_huge,hugetlb,rss,mappings,\
         sustained_cycles,sustained_exec_start_ms,sustained_exec_end_ms,sustained_huge_start,sustained_huge_end,\
         cow_ms,cow_rewritten,cow_extra_bytes,cow_child,note\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    for r in rows {
        let m = r.measured.clone().unwrap_or_default();
        let s = m.sustained.clone().unwrap_or_default();
        let c = m.cow.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{},\"{}\",{},{:.4},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{},{},{:.3},{},{},\"{}\",\"{}\"",
            r.contestant,
            r.env,
            r.size,
            m.build_s,
            m.heap_bytes,
            f(m.fork_med_ms),
            f(m.fork_p90_ms),
            f(m.exec_med_ms),
            f(m.exec_p90_ms),
            m.vm_pte,
            m.anon_huge,
            m.hugetlb,
            m.rss,
            m.mappings,
            s.cycles,
            s.exec_start_ms,
            s.exec_end_ms,
            s.huge_start,
            s.huge_end,
            c.ms,
            c.rewritten,
            c.extra_bytes,
            c.child,
            r.note.as_deref().unwrap_or("").replace('"', "'")
        );
    }
    out
}

/// What the machine offered during the run.
fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    serde_json::json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "thp": read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "pool_2m": read("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "pool_1g": read("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}

fn chart(rows: &[Row], path: &std::path::Path) -> Result<(), String> {
    let pts = |name: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.contestant == name && r.size > 0)
            .filter_map(|r| Some(((r.size >> 20) as f64, r.measured.as_ref()?.fork_med_ms?)))
            .collect()
    };
    let all: Vec<(f64, f64)> = CONTESTANTS.iter().flat_map(|c| pts(c.name)).collect();
    if all.is_empty() {
        return Ok(());
    }
    let floor = fork_of(rows, "empty", 0);
    let (xmin, xmax) = all.iter().fold((f64::MAX, 0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) =
        all.iter().chain(floor.map(|f| (xmin, f)).iter()).fold((f64::MAX, 0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut ch = ChartBuilder::on(&root)
        .caption("fork() latency against heap size (median, parent side)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), (ymin * 0.7..ymax * 1.5).log_scale())
        .map_err(|e| e.to_string())?;
    ch.configure_mesh().x_desc("heap (MiB)").y_desc("fork (ms)").draw().map_err(|e| e.to_string())?;
    let fork_contestants: Vec<&str> =
        CONTESTANTS.iter().filter(|c| c.method == Method::Fork && c.name != "empty").map(|c| c.name).collect();
    for (i, name) in fork_contestants.iter().enumerate() {
        let p = pts(name);
        if p.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        let width = if name.starts_with("hugeheap") { 3 } else { 1 };
        ch.draw_series(LineSeries::new(p.clone(), color.stroke_width(width)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width)));
        ch.draw_series(p.iter().map(|&xy| Circle::new(xy, 3, color.filled()))).map_err(|e| e.to_string())?;
    }
    if let Some(f) = floor {
        ch.draw_series(LineSeries::new(vec![(xmin * 0.8, f), (xmax * 1.25, f)], BLACK.stroke_width(1)))
            .map_err(|e| e.to_string())?
            .label("empty process (floor)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Prints the table and writes the files.
pub fn write(rows: &[Row], opts: &Options) -> std::io::Result<()> {
    let text = table(rows);
    std::io::stdout().write_all(text.as_bytes())?;
    std::fs::create_dir_all(&opts.out_dir)?;
    std::fs::write(opts.out_dir.join("fork.csv"), csv(rows))?;
    let json = serde_json::json!({ "machine": machine(), "rows": rows });
    std::fs::write(opts.out_dir.join("fork.json"), serde_json::to_string_pretty(&json).expect("json"))?;
    std::fs::write(opts.out_dir.join("fork.txt"), &text)?;
    let svg = opts.out_dir.join("fork.svg");
    if let Err(e) = chart(rows, &svg) {
        eprintln!("hugeheap bench: chart not written: {e}");
    }
    eprintln!("hugeheap bench: wrote {}/fork.{{csv,json,txt,svg}}", opts.out_dir.display());
    Ok(())
}

//! The fork benchmark's chart: fork latency against heap size, log-log, one line per
//! contestant (`fork.svg`).

use super::results::{Row, measured};
use crate::contestant::{FORK_CONTESTANTS, Method};
use plotters::prelude::*;

/// A colour per contestant: the peers in blues, greens and purple, hugeheap's family in reds,
/// oranges and browns (and drawn thicker), so that each line can be told from its neighbours.
fn colour(name: &str) -> RGBColor {
    match name {
        "glibc" => RGBColor(31, 119, 180),
        "glibc-thp" => RGBColor(23, 190, 207),
        "glibc-hugetlb" => RGBColor(0, 0, 128),
        "jemalloc" => RGBColor(44, 160, 44),
        "jemalloc-thp" => RGBColor(150, 170, 20),
        "jemalloc-hpa" => RGBColor(0, 100, 60),
        "mimalloc-large" => RGBColor(148, 103, 189),
        "hugeheap" => RGBColor(214, 39, 40),
        "hugeheap-1g" => RGBColor(140, 86, 75),
        "hugeheap-2m" => RGBColor(255, 127, 14),
        "hugeheap-thp" => RGBColor(227, 119, 194),
        "hugeheap-thp-nc" => RGBColor(188, 80, 144),
        _ => RGBColor(127, 127, 127),
    }
}

/// `64 MiB`, `2 GiB`.
fn axis_size(mib: f64) -> String {
    if mib >= 1024.0 { format!("{:.0} GiB", mib / 1024.0) } else { format!("{mib:.0} MiB") }
}

/// Round values of a log axis between `lo` and `hi`: 1, 2, 5 per decade.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// Draws the chart of `rows` (fork latency against heap size, one line per contestant) into
/// the SVG file `path`.
pub fn chart(rows: &[Row], path: &std::path::Path) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let pts = |name: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.contestant == name && r.size > 0)
            .filter_map(|r| Some(((r.size >> 20) as f64, r.measured.as_ref()?.fork_med_ms?)))
            .collect()
    };
    let short = |name: &str| rows.iter().any(|r| r.contestant == name && r.short);
    let fork_contestants: Vec<&str> =
        FORK_CONTESTANTS.iter().filter(|c| c.method == Method::Fork && c.name != "empty").map(|c| c.name).collect();
    let all: Vec<(f64, f64)> = fork_contestants.iter().flat_map(|c| pts(c)).collect();
    if all.is_empty() {
        return Ok(());
    }
    let floor = measured(rows, "empty", 0).and_then(|m| m.fork_med_ms);
    let mut sizes: Vec<f64> = all.iter().map(|p| p.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let (xmin, xmax) = (sizes[0] / 1.5, sizes[sizes.len() - 1] * 1.5);
    let (ymin, ymax) =
        all.iter().chain(floor.map(|f| (xmin, f)).iter()).fold((f64::MAX, 0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (ymin, ymax) = (ymin / 1.6, ymax * 1.6);
    let root = SVGBackend::new(path, (1200, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (plot, legend) = root.split_horizontally(900);
    let mut ch = ChartBuilder::on(&plot)
        .caption(
            "fork() latency against heap size (median, as the parent sees it; lower is better)",
            ("sans-serif", 19),
        )
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (xmin..xmax).log_scale().with_key_points(sizes.clone()),
            (ymin..ymax).log_scale().with_key_points(log_ticks(ymin, ymax)),
        )
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .x_desc("heap built from small objects (log scale)")
        .y_desc("fork() time, ms (log scale)")
        .x_label_formatter(&|v| axis_size(*v))
        .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v}") })
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|x| e(&x))?;
    if let Some(f) = floor {
        ch.draw_series(DashedLineSeries::new(vec![(xmin, f), (xmax, f)], 6, 4, BLACK.stroke_width(1)))
            .map_err(|x| e(&x))?;
    }
    // The legend, drawn by hand beside the plot so that no line hides behind it.
    let got_at_largest =
        |name: &str| rows.iter().filter(|r| r.contestant == name && r.size > 0).max_by_key(|r| r.size)?.got.clone();
    let mut y = 60;
    let entry = |y: &mut i32, label: String, colour: RGBAColor, width: u32, dashed: bool| -> Result<(), String> {
        let y0 = *y;
        let style = colour.stroke_width(width);
        if dashed {
            for x in (10..50).step_by(9) {
                legend.draw(&PathElement::new(vec![(x, y0), (x + 5, y0)], style)).map_err(|x| e(&x))?;
            }
        } else {
            legend.draw(&PathElement::new(vec![(10, y0), (50, y0)], style)).map_err(|x| e(&x))?;
        }
        legend.draw(&Text::new(label, (58, y0 - 7), ("sans-serif", 14))).map_err(|x| e(&x))?;
        *y += 24;
        Ok(())
    };
    legend.draw(&Text::new("contestant (! = did not get the", (10, 14), ("sans-serif", 14))).map_err(|x| e(&x))?;
    legend.draw(&Text::new("pages its name promises: dashed)", (10, 32), ("sans-serif", 14))).map_err(|x| e(&x))?;
    for (i, name) in fork_contestants.iter().enumerate() {
        let p = pts(name);
        if p.is_empty() {
            continue;
        }
        let colour = colour(name).to_rgba();
        let width = if name.starts_with("hugeheap") { 3 } else { 2 };
        let style = colour.stroke_width(width);
        if short(name) {
            ch.draw_series(DashedLineSeries::new(p.clone(), 8, 5, style)).map_err(|x| e(&x))?;
        } else {
            ch.draw_series(LineSeries::new(p.clone(), style)).map_err(|x| e(&x))?;
        }
        // Markers differ too (circle, triangle, cross in turn), and the legend shows them.
        let marker = i % 3;
        draw_markers(&mut ch, &p, marker, colour).map_err(|x| e(&x))?;
        draw_marker_at(&legend, (30, y), marker, colour).map_err(|x| e(&x))?;
        let label = match (short(name), got_at_largest(name)) {
            (true, Some(g)) => format!("{name} ! (got {g})"),
            _ => name.to_string(),
        };
        entry(&mut y, label, colour, width, short(name))?;
    }
    if let Some(f) = floor {
        entry(&mut y, format!("empty process ({f:.2} ms)"), BLACK.to_rgba(), 1, true)?;
    }
    root.present().map_err(|x| e(&x))
}

type Axis = plotters::coord::combinators::WithKeyPoints<LogCoord<f64>>;
type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<Axis, Axis>>;

/// Draws marker `kind` (0 circle, 1 triangle, 2 cross) at each point.
fn draw_markers(ch: &mut Chart<'_>, p: &[(f64, f64)], kind: usize, c: RGBAColor) -> Result<(), String> {
    let r = match kind {
        0 => ch.draw_series(p.iter().map(|&xy| Circle::new(xy, 4, c.filled()))).map(|_| ()),
        1 => ch.draw_series(p.iter().map(|&xy| TriangleMarker::new(xy, 5, c.filled()))).map(|_| ()),
        _ => ch.draw_series(p.iter().map(|&xy| Cross::new(xy, 4, c.stroke_width(2)))).map(|_| ()),
    };
    r.map_err(|x| x.to_string())
}

/// Draws marker `kind` at one pixel position of the legend.
fn draw_marker_at(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    at: (i32, i32),
    kind: usize,
    c: RGBAColor,
) -> Result<(), String> {
    let r = match kind {
        0 => area.draw(&Circle::new(at, 4, c.filled())),
        1 => area.draw(&TriangleMarker::new(at, 5, c.filled())),
        _ => area.draw(&Cross::new(at, 4, c.stroke_width(2))),
    };
    r.map_err(|x| x.to_string())
}

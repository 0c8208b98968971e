//! Writes a laid-out chart as SVG text: plain elements (`polyline`, `polygon`, `line`,
//! `circle`, `path`, `text`) with presentation attributes, which every viewer and resvg read
//! the same way. Groups carry a `class` naming what they hold.

use super::font::{text_width, FAMILY};
use super::layout::{self, Layout, Point};
use super::layout::{EDGE, LABEL_SIZE, LEGEND_GAP, LEGEND_PAD, LEGEND_ROW, LEGEND_SAMPLE};
use super::layout::{LEGEND_SIZE, TICK_GAP, TICK_LENGTH, TICK_SIZE, TITLE_SIZE};
use super::{Chart, Spread};
use std::fmt::Write;

/// Okabe-Ito colours, distinguishable with every common colour-vision deficiency, in the order
/// series use them (their yellow is left out: too pale on white).
pub(crate) const PALETTE: [&str; 7] =
    ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

const TEXT: &str = "#222222";
const AXIS: &str = "#555555";
const GRID: &str = "#E3E3E3";
const BAND_OPACITY: f64 = 0.2;
const LINE_WIDTH: f64 = 2.0;

/// Marker shapes, cycled alongside the colours so that series differ in shape too.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const MARKERS: [Marker; 5] =
    [Marker::Circle, Marker::Square, Marker::TriangleUp, Marker::Diamond, Marker::TriangleDown];

/// The colour of the series at `index`.
pub(crate) fn series_color(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

pub(crate) fn render(chart: &Chart) -> String {
    let layout = layout::layout(chart);
    let mut svg = String::new();
    let (w, h) = (layout.width, layout.height);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{}">"#,
        escape(FAMILY)
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    draw_title(&mut svg, chart, &layout);
    draw_grid(&mut svg, &layout);
    draw_series(&mut svg, chart, &layout);
    draw_axes(&mut svg, chart, &layout);
    draw_legend(&mut svg, chart, &layout);
    svg.push_str("</svg>\n");
    svg
}

fn draw_title(svg: &mut String, chart: &Chart, layout: &Layout) {
    if chart.title.is_empty() {
        return;
    }
    // Centred over the plot area, but kept inside the canvas.
    let plot = &layout.frame.plot;
    let half = text_width(&chart.title, TITLE_SIZE) / 2.0;
    let x = (plot.x + plot.w / 2.0).min(layout.width - EDGE - half).max(EDGE + half);
    let y = EDGE + TITLE_SIZE * 0.8;
    text(svg, (x, y), TITLE_SIZE, "middle", &chart.title);
}

fn draw_grid(svg: &mut String, layout: &Layout) {
    let f = &layout.frame;
    let p = &f.plot;
    let _ = writeln!(svg, r#"<g class="grid" stroke="{GRID}" stroke-width="1">"#);
    for (v, _) in &f.x_ticks.major {
        let x = crisp(f.x.px(*v));
        line(svg, (x, p.y), (x, p.bottom()));
    }
    for (v, _) in &f.y_ticks.major {
        let y = crisp(f.y.px(*v));
        line(svg, (p.x, y), (p.right(), y));
    }
    svg.push_str("</g>\n");
}

fn draw_series(svg: &mut String, chart: &Chart, layout: &Layout) {
    let p = &layout.frame.plot;
    let _ = writeln!(
        svg,
        r#"<clipPath id="plot-area"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
        num(p.x),
        num(p.y),
        num(p.w),
        num(p.h)
    );
    svg.push_str("<g clip-path=\"url(#plot-area)\">\n");
    // Bands first, so that no band veils another series' line.
    for (i, shapes) in layout.shapes.iter().enumerate() {
        for band in &shapes.bands {
            let _ = writeln!(
                svg,
                r#"<polygon class="band" points="{}" fill="{}" fill-opacity="{BAND_OPACITY}" stroke="none"/>"#,
                points(band),
                series_color(i)
            );
        }
    }
    for (i, (series, shapes)) in chart.series.iter().zip(&layout.shapes).enumerate() {
        let color = series_color(i);
        let _ = writeln!(svg, r#"<g class="series" data-label="{}">"#, escape(&series.label));
        for &(top, bottom) in &shapes.bars {
            let _ = writeln!(svg, r#"<g class="error-bar" stroke="{color}" stroke-width="1.5">"#);
            line(svg, top, bottom);
            line(svg, (top.0 - 4.0, top.1), (top.0 + 4.0, top.1));
            line(svg, (bottom.0 - 4.0, bottom.1), (bottom.0 + 4.0, bottom.1));
            svg.push_str("</g>\n");
        }
        for run in &shapes.lines {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{LINE_WIDTH}" stroke-linejoin="round" stroke-linecap="round"/>"#,
                points(run)
            );
        }
        for &at in &shapes.markers {
            marker(svg, MARKERS[i % MARKERS.len()], at, color);
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</g>\n");
}

fn draw_axes(svg: &mut String, chart: &Chart, layout: &Layout) {
    let f = &layout.frame;
    let p = &f.plot;
    let (left, right, top, bottom) = (crisp(p.x), crisp(p.right()), crisp(p.y), crisp(p.bottom()));
    let _ = writeln!(svg, r#"<g class="frame" stroke="{AXIS}" stroke-width="1" fill="none">"#);
    let _ = writeln!(
        svg,
        r#"<rect x="{}" y="{}" width="{}" height="{}"/>"#,
        num(left),
        num(top),
        num(right - left),
        num(bottom - top)
    );
    for (v, _) in &f.x_ticks.major {
        let x = crisp(f.x.px(*v));
        line(svg, (x, bottom), (x, bottom + TICK_LENGTH));
    }
    for v in &f.x_ticks.minor {
        let x = crisp(f.x.px(*v));
        line(svg, (x, bottom), (x, bottom + TICK_LENGTH * 0.6));
    }
    for (v, _) in &f.y_ticks.major {
        let y = crisp(f.y.px(*v));
        line(svg, (left - TICK_LENGTH, y), (left, y));
    }
    for v in &f.y_ticks.minor {
        let y = crisp(f.y.px(*v));
        line(svg, (left - TICK_LENGTH * 0.6, y), (left, y));
    }
    svg.push_str("</g>\n");

    let label_top = p.bottom() + TICK_LENGTH + TICK_GAP;
    svg.push_str("<g class=\"x-ticks\">\n");
    for (v, label) in &f.x_ticks.major {
        text(svg, (f.x.px(*v), label_top + TICK_SIZE * 0.8), TICK_SIZE, "middle", label);
    }
    svg.push_str("</g>\n<g class=\"y-ticks\">\n");
    for (v, label) in &f.y_ticks.major {
        let at = (p.x - TICK_LENGTH - TICK_GAP, f.y.px(*v) + TICK_SIZE * 0.35);
        text(svg, at, TICK_SIZE, "end", label);
    }
    svg.push_str("</g>\n");

    if !chart.x_label.is_empty() {
        let y = label_top + TICK_SIZE + 10.0 + LABEL_SIZE * 0.8;
        text(svg, (p.x + p.w / 2.0, y), LABEL_SIZE, "middle", &chart.x_label);
    }
    if !chart.y_label.is_empty() {
        let (x, y) = (EDGE + LABEL_SIZE * 0.8, p.y + p.h / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="{LABEL_SIZE}" fill="{TEXT}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
            num(x),
            num(y),
            num(x),
            num(y),
            escape(&chart.y_label)
        );
    }
}

fn draw_legend(svg: &mut String, chart: &Chart, layout: &Layout) {
    let Some(area) = layout.legend else {
        return;
    };
    let _ = writeln!(svg, r#"<g class="legend">"#);
    let _ = writeln!(
        svg,
        r##"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="white" fill-opacity="0.9" stroke="#BBBBBB" stroke-width="1"/>"##,
        num(area.x),
        num(area.y),
        num(area.w),
        num(area.h)
    );
    let labelled = chart.series.iter().enumerate().filter(|(_, s)| !s.label.is_empty());
    for (row, (i, series)) in labelled.enumerate() {
        let color = series_color(i);
        let mid = area.y + LEGEND_PAD + LEGEND_SIZE / 2.0 + row as f64 * LEGEND_ROW;
        let (x0, x1) = (area.x + LEGEND_PAD, area.x + LEGEND_PAD + LEGEND_SAMPLE);
        if let Some(Spread::Band(_)) = series.spread {
            let _ = writeln!(
                svg,
                r#"<rect x="{}" y="{}" width="{LEGEND_SAMPLE}" height="{LEGEND_SIZE}" fill="{color}" fill-opacity="{BAND_OPACITY}"/>"#,
                num(x0),
                num(mid - LEGEND_SIZE / 2.0)
            );
        }
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="{LINE_WIDTH}"/>"#,
            num(x0),
            num(mid),
            num(x1),
            num(mid)
        );
        // Also for a series without markers whose isolated points are drawn as markers.
        if series.markers || !layout.shapes[i].markers.is_empty() {
            marker(svg, MARKERS[i % MARKERS.len()], ((x0 + x1) / 2.0, mid), color);
        }
        let at = (x1 + LEGEND_GAP, mid + LEGEND_SIZE * 0.35);
        text(svg, at, LEGEND_SIZE, "start", &series.label);
    }
    svg.push_str("</g>\n");
}

fn marker(svg: &mut String, shape: Marker, (x, y): Point, color: &str) {
    let style = format!(r#"fill="{color}" stroke="white" stroke-width="0.8""#);
    let path = |svg: &mut String, corners: &[(f64, f64)]| {
        let d: Vec<String> =
            corners.iter().map(|(dx, dy)| format!("{},{}", num(x + dx), num(y + dy))).collect();
        let _ = writeln!(svg, r#"<path d="M{}Z" {style}/>"#, d.join(" L"));
    };
    match shape {
        Marker::Circle => {
            let _ = writeln!(svg, r#"<circle cx="{}" cy="{}" r="4.2" {style}/>"#, num(x), num(y));
        }
        Marker::Square => path(svg, &[(-3.7, -3.7), (3.7, -3.7), (3.7, 3.7), (-3.7, 3.7)]),
        Marker::TriangleUp => path(svg, &[(0.0, -5.0), (4.6, 3.2), (-4.6, 3.2)]),
        Marker::Diamond => path(svg, &[(0.0, -5.0), (4.6, 0.0), (0.0, 5.0), (-4.6, 0.0)]),
        Marker::TriangleDown => path(svg, &[(0.0, 5.0), (4.6, -3.2), (-4.6, -3.2)]),
    }
}

fn text(svg: &mut String, (x, y): Point, size: f64, anchor: &str, content: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="{size}" fill="{TEXT}" text-anchor="{anchor}">{}</text>"#,
        num(x),
        num(y),
        escape(content)
    );
}

fn line(svg: &mut String, (x1, y1): Point, (x2, y2): Point) {
    let _ = writeln!(
        svg,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}"/>"#,
        num(x1),
        num(y1),
        num(x2),
        num(y2)
    );
}

fn points(ps: &[Point]) -> String {
    let pairs: Vec<String> = ps.iter().map(|&(x, y)| format!("{},{}", num(x), num(y))).collect();
    pairs.join(" ")
}

/// A coordinate with two decimals, plenty at screen resolution.
fn num(v: f64) -> String {
    format!("{v:.2}")
}

/// The nearest pixel centre, so that one-pixel lines stay sharp in the PNG.
fn crisp(v: f64) -> f64 {
    (v - 0.5).round() + 0.5
}

/// `s` safe inside XML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

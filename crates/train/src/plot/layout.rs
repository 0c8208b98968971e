//! Where everything goes on the canvas: margins sized to the labels around the plot area, the
//! two axis scales and their ticks, every series projected to pixels, and a legend spot that
//! hides no data. Drawing (`svg.rs`) only reads what this module decided.

use super::font::text_width;
use super::scale::{self, Scale, Ticks};
use super::{Chart, Series, Spread};

/// A pixel position, y growing downwards as in SVG.
pub(crate) type Point = (f64, f64);

/// Font sizes and distances in pixels.
pub(crate) const TITLE_SIZE: f64 = 17.0;
pub(crate) const LABEL_SIZE: f64 = 14.0;
pub(crate) const TICK_SIZE: f64 = 12.0;
pub(crate) const LEGEND_SIZE: f64 = 13.0;
pub(crate) const TICK_LENGTH: f64 = 5.0;
/// Between a tick mark and its label, and between tick labels and the axis label.
pub(crate) const TICK_GAP: f64 = 4.0;
const LABEL_GAP: f64 = 10.0;
/// Around the whole figure.
pub(crate) const EDGE: f64 = 12.0;
/// Rough distance between labelled ticks.
const X_TICK_SPACING: f64 = 90.0;
const Y_TICK_SPACING: f64 = 45.0;
/// Legend box: padding, row height, line sample length and the gap before the label.
pub(crate) const LEGEND_PAD: f64 = 8.0;
pub(crate) const LEGEND_ROW: f64 = 20.0;
pub(crate) const LEGEND_SAMPLE: f64 = 26.0;
pub(crate) const LEGEND_GAP: f64 = 6.0;
/// Space kept between the legend and any data, and the legend's distance from the frame.
const LEGEND_CLEARANCE: f64 = 6.0;
const LEGEND_INSET: f64 = 8.0;
/// Largest marker half-size, so that collision tests see markers, not just their centres.
pub(crate) const MARKER_RADIUS: f64 = 5.0;

/// An axis-aligned rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub(crate) fn right(&self) -> f64 {
        self.x + self.w
    }

    pub(crate) fn bottom(&self) -> f64 {
        self.y + self.h
    }

    fn inflate(&self, d: f64) -> Rect {
        Rect { x: self.x - d, y: self.y - d, w: self.w + 2.0 * d, h: self.h + 2.0 * d }
    }

    fn center(&self) -> Point {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// The plot area and the scales and ticks of its two axes.
pub(crate) struct Frame {
    pub plot: Rect,
    pub x: Scale,
    pub y: Scale,
    pub x_ticks: Ticks,
    pub y_ticks: Ticks,
}

/// One series in pixels.
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    /// Polylines through consecutive drawable points (a skipped point breaks the line).
    pub lines: Vec<Vec<Point>>,
    /// Marker positions: every point when the series has markers, else the isolated points
    /// that no line passes through, so that they stay visible.
    pub markers: Vec<Point>,
    /// Closed outlines of shaded bands.
    pub bands: Vec<Vec<Point>>,
    /// Error bars from the high end to the low end.
    pub bars: Vec<(Point, Point)>,
}

/// The complete layout of a chart.
pub(crate) struct Layout {
    pub width: f64,
    pub height: f64,
    pub frame: Frame,
    pub shapes: Vec<Shapes>,
    /// The legend box, if any series has a label.
    pub legend: Option<Rect>,
}

/// Smallest and largest canvas; sizes outside are clamped so the layout always has room.
const MIN_SIZE: (u32, u32) = (320, 200);
const MAX_SIZE: (u32, u32) = (8000, 8000);

pub(crate) fn layout(chart: &Chart) -> Layout {
    let width = f64::from(chart.width.clamp(MIN_SIZE.0, MAX_SIZE.0));
    let height = f64::from(chart.height.clamp(MIN_SIZE.1, MAX_SIZE.1));
    let (xs, ys) = data_values(&chart.series);
    let x_range = scale::range(chart.x_axis, chart.x_range, &xs);
    let y_range = scale::range(chart.y_axis, chart.y_range, &ys);
    let legend_size = legend_size(&chart.series);

    let frame = fit_frame(chart, (width, height), x_range, y_range, 0.0);
    let shapes = project_all(chart, &frame);
    let Some((legend_w, legend_h)) = legend_size else {
        return Layout { width, height, frame, shapes, legend: None };
    };
    if let Some(spot) = free_corner(&frame.plot, (legend_w, legend_h), &shapes) {
        return Layout { width, height, frame, shapes, legend: Some(spot) };
    }
    // No free corner: the legend goes to the right of a narrower plot area.
    let frame = fit_frame(chart, (width, height), x_range, y_range, legend_w + LEGEND_INSET);
    let shapes = project_all(chart, &frame);
    let legend =
        Rect { x: frame.plot.right() + LEGEND_INSET, y: frame.plot.y, w: legend_w, h: legend_h };
    Layout { width, height, frame, shapes, legend: Some(legend) }
}

/// Every x and every y a chart would draw, for the automatic ranges.
fn data_values(series: &[Series]) -> (Vec<f64>, Vec<f64>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in series {
        for &(x, y) in &s.points {
            xs.push(x);
            ys.push(y);
        }
        for &(x, lo, hi) in s.spread.as_ref().map_or(&[][..], Spread::ranges) {
            xs.push(x);
            ys.extend([lo, hi]);
        }
    }
    (xs, ys)
}

/// Margins fitted to the title, the axis labels and the widest tick labels; `reserve_right`
/// pixels stay free right of the plot area.
fn fit_frame(
    chart: &Chart,
    (width, height): (f64, f64),
    x_range: (f64, f64),
    y_range: (f64, f64),
    reserve_right: f64,
) -> Frame {
    let top = if chart.title.is_empty() { EDGE + 4.0 } else { EDGE + TITLE_SIZE + 2.0 * LABEL_GAP };
    let x_label = if chart.x_label.is_empty() { 0.0 } else { LABEL_GAP + LABEL_SIZE };
    let bottom = TICK_LENGTH + TICK_GAP + TICK_SIZE + x_label + EDGE;
    let plot_h = (height - top - bottom).max(40.0);
    let y = Scale::new(chart.y_axis, y_range, (top + plot_h, top));
    let y_ticks = y.ticks(Y_TICK_SPACING, chart.y_ticks.as_deref());

    let widest = y_ticks.major.iter().map(|(_, t)| text_width(t, TICK_SIZE)).fold(0.0, f64::max);
    let y_label = if chart.y_label.is_empty() { 0.0 } else { LABEL_SIZE + LABEL_GAP };
    let left = (EDGE + y_label + widest + TICK_GAP + TICK_LENGTH).round();
    let mut right = EDGE + 4.0 + reserve_right;
    let x_at = |right: f64| {
        let plot_w = (width - left - right).max(40.0);
        let x = Scale::new(chart.x_axis, x_range, (left, left + plot_w));
        let ticks = x.ticks(X_TICK_SPACING, chart.x_ticks.as_deref());
        (plot_w, x, ticks)
    };
    let (mut plot_w, mut x, mut x_ticks) = x_at(right);
    // Tick labels are centred on their tick: make room for one that sticks out on the right.
    let overhang = x_ticks
        .major
        .iter()
        .map(|(v, t)| x.px(*v) + text_width(t, TICK_SIZE) / 2.0 - (width - EDGE))
        .fold(0.0, f64::max);
    if overhang > 0.0 && reserve_right == 0.0 {
        right += overhang;
        (plot_w, x, x_ticks) = x_at(right);
    }
    Frame { plot: Rect { x: left, y: top, w: plot_w, h: plot_h }, x, y, x_ticks, y_ticks }
}

fn project_all(chart: &Chart, frame: &Frame) -> Vec<Shapes> {
    chart.series.iter().map(|s| project(chart, s, frame)).collect()
}

/// `series` in pixels; points that an axis cannot show (NaN, infinite, not positive on a log
/// axis) are left out.
fn project(chart: &Chart, series: &Series, frame: &Frame) -> Shapes {
    let drawable_x = |x: f64| chart.x_axis.accepts(x);
    let drawable_y = |y: f64| chart.y_axis.accepts(y);
    let to_px = |x: f64, y: f64| (frame.x.px(x), frame.y.px(y));
    let mut shapes = Shapes::default();

    let runs = split_runs(&series.points, |&(x, y)| drawable_x(x) && drawable_y(y));
    for run in runs {
        let line: Vec<Point> = run.iter().map(|&(x, y)| to_px(x, y)).collect();
        if series.markers || line.len() == 1 {
            shapes.markers.extend(&line);
        }
        if line.len() > 1 {
            shapes.lines.push(line);
        }
    }

    let drawable =
        |&(x, lo, hi): &(f64, f64, f64)| drawable_x(x) && drawable_y(lo) && drawable_y(hi);
    match &series.spread {
        None => {}
        Some(Spread::Band(ranges)) => {
            for run in split_runs(ranges, drawable).into_iter().filter(|r| r.len() > 1) {
                let upper = run.iter().map(|&(x, _, hi)| to_px(x, hi));
                let lower = run.iter().rev().map(|&(x, lo, _)| to_px(x, lo));
                shapes.bands.push(upper.chain(lower).collect());
            }
        }
        Some(Spread::ErrorBars(ranges)) => {
            let bars = ranges.iter().filter(|r| drawable(r));
            shapes.bars.extend(bars.map(|&(x, lo, hi)| (to_px(x, hi), to_px(x, lo))));
        }
    }
    shapes
}

/// Maximal runs of consecutive items that satisfy `keep`.
fn split_runs<T: Copy>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for item in items {
        if keep(item) {
            run.push(*item);
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Width and height of the legend box, or `None` when no series has a label.
fn legend_size(series: &[Series]) -> Option<(f64, f64)> {
    let labels: Vec<&str> =
        series.iter().map(|s| s.label.as_str()).filter(|l| !l.is_empty()).collect();
    if labels.is_empty() {
        return None;
    }
    let widest = labels.iter().map(|l| text_width(l, LEGEND_SIZE)).fold(0.0, f64::max);
    let w = 2.0 * LEGEND_PAD + LEGEND_SAMPLE + LEGEND_GAP + widest;
    let h = 2.0 * LEGEND_PAD + LEGEND_ROW * labels.len() as f64 - (LEGEND_ROW - LEGEND_SIZE);
    Some((w.ceil(), h.ceil()))
}

/// The first corner of the plot area (top right, bottom right, top left, bottom left) where a
/// legend of `size` touches no line, marker, band or error bar.
fn free_corner(plot: &Rect, (w, h): (f64, f64), shapes: &[Shapes]) -> Option<Rect> {
    let (left, top) = (plot.x + LEGEND_INSET, plot.y + LEGEND_INSET);
    let (right, bottom) = (plot.right() - LEGEND_INSET - w, plot.bottom() - LEGEND_INSET - h);
    if right < left || bottom < top {
        return None;
    }
    [(right, top), (right, bottom), (left, top), (left, bottom)]
        .into_iter()
        .map(|(x, y)| Rect { x, y, w, h })
        .find(|spot| !shapes.iter().any(|s| covers(s, &spot.inflate(LEGEND_CLEARANCE))))
}

/// Whether any part of `shapes` reaches into `area`.
fn covers(shapes: &Shapes, area: &Rect) -> bool {
    let with_markers = area.inflate(MARKER_RADIUS);
    shapes.lines.iter().any(|line| segments(line).any(|(a, b)| segment_meets_rect(a, b, area)))
        || shapes.markers.iter().any(|&p| segment_meets_rect(p, p, &with_markers))
        || shapes.bars.iter().any(|&(a, b)| segment_meets_rect(a, b, &with_markers))
        || shapes.bands.iter().any(|band| {
            let closing = (band[band.len() - 1], band[0]);
            segments(band).chain([closing]).any(|(a, b)| segment_meets_rect(a, b, area))
                || polygon_contains(band, area.center())
        })
}

fn segments(line: &[Point]) -> impl Iterator<Item = (Point, Point)> + '_ {
    line.windows(2).map(|w| (w[0], w[1]))
}

/// Whether the segment from `a` to `b` (possibly a single point) touches `r` (Liang-Barsky).
fn segment_meets_rect(a: Point, b: Point, r: &Rect) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in
        [(-dx, a.0 - r.x), (dx, r.right() - a.0), (-dy, a.1 - r.y), (dy, r.bottom() - a.1)]
    {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
        if t0 > t1 {
            return false;
        }
    }
    true
}

/// Even-odd rule: whether `p` lies inside the closed polygon.
fn polygon_contains(polygon: &[Point], p: Point) -> bool {
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let ((xi, yi), (xj, yj)) = (polygon[i], polygon[j]);
        if (yi > p.1) != (yj > p.1) && p.0 < xi + (p.1 - yi) * (xj - xi) / (yj - yi) {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOX: Rect = Rect { x: 10.0, y: 10.0, w: 20.0, h: 10.0 };

    #[test]
    fn segments_meet_a_rectangle_only_when_they_cross_it() {
        assert!(segment_meets_rect((0.0, 15.0), (40.0, 15.0), &BOX)); // straight through
        assert!(segment_meets_rect((15.0, 12.0), (16.0, 13.0), &BOX)); // wholly inside
        assert!(segment_meets_rect((0.0, 0.0), (40.0, 30.0), &BOX)); // diagonal through
        assert!(!segment_meets_rect((0.0, 0.0), (40.0, 5.0), &BOX)); // above
        assert!(!segment_meets_rect((0.0, 20.0), (5.0, 40.0), &BOX)); // beside, heading away
        assert!(!segment_meets_rect((0.0, 30.0), (30.0, 21.0), &BOX)); // ends short of it
        assert!(segment_meets_rect((20.0, 15.0), (20.0, 15.0), &BOX)); // a point inside
        assert!(!segment_meets_rect((50.0, 15.0), (50.0, 15.0), &BOX)); // a point outside
    }

    #[test]
    fn polygon_contains_uses_the_outline() {
        let triangle = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        assert!(polygon_contains(&triangle, (2.0, 2.0)));
        assert!(!polygon_contains(&triangle, (8.0, 8.0)));
    }

    #[test]
    fn a_band_wider_than_the_legend_covers_it() {
        let band = Shapes {
            bands: vec![vec![(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]],
            ..Shapes::default()
        };
        assert!(covers(&band, &BOX));
        assert!(!covers(&band, &Rect { x: 200.0, ..BOX }));
    }

    #[test]
    fn legend_avoids_a_corner_with_data_and_gives_up_when_all_are_taken() {
        let plot = Rect { x: 0.0, y: 0.0, w: 400.0, h: 300.0 };
        let size = (100.0, 50.0);
        // A line along the top: the top corners are taken.
        let top = Shapes { lines: vec![vec![(0.0, 20.0), (400.0, 20.0)]], ..Shapes::default() };
        let spot = free_corner(&plot, size, &[top]).unwrap();
        assert_eq!((spot.x, spot.y), (plot.right() - 8.0 - 100.0, plot.bottom() - 8.0 - 50.0));
        // A marker in the bottom-right corner as well: bottom left remains.
        let top = Shapes { lines: vec![vec![(0.0, 20.0), (400.0, 20.0)]], ..Shapes::default() };
        let dot = Shapes { markers: vec![(350.0, 270.0)], ..Shapes::default() };
        let spot = free_corner(&plot, size, &[top, dot]).unwrap();
        assert_eq!((spot.x, spot.y), (8.0, plot.bottom() - 8.0 - 50.0));
        // A diagonal cross through all four corners.
        let cross = Shapes {
            lines: vec![vec![(0.0, 0.0), (400.0, 300.0)], vec![(0.0, 300.0), (400.0, 0.0)]],
            ..Shapes::default()
        };
        assert_eq!(free_corner(&plot, size, &[cross]), None);
    }

    #[test]
    fn runs_break_at_rejected_items() {
        let runs = split_runs(&[1, 2, -1, 3, -1, -1, 4, 5, 6], |&v| v > 0);
        assert_eq!(runs, vec![vec![1, 2], vec![3], vec![4, 5, 6]]);
        assert!(split_runs(&[-1], |&v: &i32| v > 0).is_empty());
    }
}

//! Charts checked from the outside: the SVG parsed as XML, coordinates compared with the axis
//! arithmetic done by hand, and the PNG decoded and probed pixel by pixel.

use super::svg::series_color;
use super::*;
use resvg::tiny_skia::Pixmap;
use roxmltree::{Document, Node};

fn elements<'a>(doc: &'a Document, tag: &str) -> Vec<Node<'a, 'a>> {
    doc.descendants().filter(|n| n.has_tag_name(tag)).collect()
}

fn attr(node: &Node, name: &str) -> f64 {
    node.attribute(name).unwrap().parse().unwrap()
}

fn polyline_points(node: &Node) -> Vec<(f64, f64)> {
    node.attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|pair| {
            let (x, y) = pair.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

fn texts(doc: &Document) -> Vec<String> {
    elements(doc, "text").iter().map(|t| t.text().unwrap_or("").to_string()).collect()
}

/// The texts inside the group of the given class.
fn group_texts(doc: &Document, class: &str) -> Vec<(f64, String)> {
    let group = doc.descendants().find(|n| n.attribute("class") == Some(class)).unwrap();
    let texts = group.children().filter(|n| n.has_tag_name("text"));
    texts.map(|t| (attr(&t, "x"), t.text().unwrap().to_string())).collect()
}

/// The plot area: the rectangle of the clip path.
fn plot_area(doc: &Document) -> (f64, f64, f64, f64) {
    let clip = elements(doc, "clipPath")[0].first_element_child().unwrap();
    (attr(&clip, "x"), attr(&clip, "y"), attr(&clip, "width"), attr(&clip, "height"))
}

fn legend_box(doc: &Document) -> (f64, f64, f64, f64) {
    let legend = doc.descendants().find(|n| n.attribute("class") == Some("legend")).unwrap();
    let r = legend.first_element_child().unwrap();
    (attr(&r, "x"), attr(&r, "y"), attr(&r, "width"), attr(&r, "height"))
}

fn rgb(color: &str) -> (u8, u8, u8) {
    let byte = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).unwrap();
    (byte(1), byte(3), byte(5))
}

fn pixel(pixmap: &Pixmap, (x, y): (f64, f64)) -> (u8, u8, u8) {
    let p = pixmap.pixel(x.round() as u32, y.round() as u32).unwrap();
    assert_eq!(p.alpha(), 255);
    (p.red(), p.green(), p.blue())
}

fn sparsity_chart() -> Chart {
    let mut chart =
        Chart::new("Accuracy at each pruning level", "Weights remaining (%)", "Test accuracy (%)");
    chart.x_axis = Axis::Log { reversed: true };
    chart.series.push(
        Series::new("winning ticket", vec![(100.0, 97.0), (10.0, 98.0), (1.0, 93.0)])
            .with_markers(),
    );
    chart
}

#[test]
fn svg_is_xml_with_one_polyline_per_series_and_all_texts() {
    let mut chart = sparsity_chart();
    chart.series.push(Series::new("random reinit", vec![(100.0, 97.0), (10.0, 94.0), (1.0, 80.0)]));
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(attr(&doc.root_element(), "width"), 800.0);
    assert_eq!(attr(&doc.root_element(), "height"), 500.0);
    let lines = elements(&doc, "polyline");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].attribute("stroke"), Some(series_color(0)));
    assert_eq!(lines[1].attribute("stroke"), Some(series_color(1)));
    assert_ne!(series_color(0), series_color(1));
    // Markers only on the series that asked for them.
    assert_eq!(elements(&doc, "circle").len(), 3 + 1, "three points and one legend sample");
    let all = texts(&doc);
    for expected in [
        "Accuracy at each pruning level",
        "Weights remaining (%)",
        "Test accuracy (%)",
        "winning ticket",
        "random reinit",
    ] {
        assert!(all.iter().any(|t| t == expected), "{expected} missing from {all:?}");
    }
    let x_labels: Vec<String> = group_texts(&doc, "x-ticks").into_iter().map(|(_, t)| t).collect();
    assert_eq!(x_labels, ["1", "2", "5", "10", "20", "50", "100"]);
}

#[test]
fn on_the_reversed_log_axis_ten_percent_sits_halfway_between_hundred_and_one() {
    let svg = sparsity_chart().to_svg();
    let doc = Document::parse(&svg).unwrap();
    let pts = polyline_points(&elements(&doc, "polyline")[0]);
    let (x100, x10, x1) = (pts[0].0, pts[1].0, pts[2].0);
    assert!(x100 < x10 && x10 < x1, "100% must be on the left: {pts:?}");
    assert!((x10 - (x100 + x1) / 2.0).abs() < 0.011, "{pts:?}");
    // 2% is log10(50)/2 of the way from 100% to 1%.
    let x2 = group_texts(&doc, "x-ticks").into_iter().find(|(_, t)| t == "2").unwrap().0;
    assert!((x2 - (x100 + (x1 - x100) * 50f64.log10() / 2.0)).abs() < 0.011);
    // The linear y axis: 98 is above 97, 93 below, in proportion to the differences.
    let (y97, y98, y93) = (pts[0].1, pts[1].1, pts[2].1);
    assert!(y98 < y97 && y97 < y93);
    assert!(((y98 - y97) / (y93 - y97) - (98.0 - 97.0) / (93.0 - 97.0)).abs() < 1e-3);
}

#[test]
fn tick_labels_sit_where_their_values_are_drawn() {
    let svg = sparsity_chart().to_svg();
    let doc = Document::parse(&svg).unwrap();
    let pts = polyline_points(&elements(&doc, "polyline")[0]);
    let ticks = group_texts(&doc, "x-ticks");
    for (value, x) in [("100", pts[0].0), ("10", pts[1].0), ("1", pts[2].0)] {
        let tick = ticks.iter().find(|(_, t)| t == value).unwrap();
        assert!((tick.0 - x).abs() < 0.011, "tick {value} at {} but data at {x}", tick.0);
    }
}

#[test]
fn fixed_range_maps_its_ends_to_the_plot_edges() {
    let mut chart = Chart::new("", "iteration", "accuracy");
    chart.y_range = Some((0.0, 100.0));
    chart.x_range = Some((0.0, 1000.0));
    chart.series.push(Series::new("a", vec![(0.0, 50.0), (250.0, 100.0), (1000.0, 0.0)]));
    let doc_text = chart.to_svg();
    let doc = Document::parse(&doc_text).unwrap();
    let (x, y, w, h) = plot_area(&doc);
    let pts = polyline_points(&elements(&doc, "polyline")[0]);
    let expected = [(x, y + h / 2.0), (x + w / 4.0, y), (x + w, y + h)];
    for (got, want) in pts.iter().zip(expected) {
        assert!(
            (got.0 - want.0).abs() < 0.011 && (got.1 - want.1).abs() < 0.011,
            "{got:?} {want:?}"
        );
    }
    let y_ticks = group_texts(&doc, "y-ticks");
    assert_eq!(y_ticks.first().unwrap().1, "0");
    assert_eq!(y_ticks.last().unwrap().1, "100");
}

#[test]
fn unusable_points_are_skipped_and_break_the_line() {
    let mut chart = Chart::new("t", "x", "y");
    chart.x_axis = Axis::Log { reversed: false };
    let points = vec![
        (1.0, 1.0),
        (2.0, 2.0),
        (3.0, f64::NAN),
        (4.0, 4.0),
        (0.0, 5.0),
        (6.0, 6.0),
        (7.0, f64::INFINITY),
    ];
    chart.series.push(Series::new("s", points));
    let svg = chart.to_svg();
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    let doc = Document::parse(&svg).unwrap();
    let lines = elements(&doc, "polyline");
    assert_eq!(lines.len(), 1, "only 1-2 is a run of two drawable points");
    assert_eq!(polyline_points(&lines[0]).len(), 2);
    // The isolated points 4 and 6 still show, as markers.
    let series = doc.descendants().find(|n| n.attribute("class") == Some("series")).unwrap();
    assert_eq!(series.children().filter(|n| n.has_tag_name("circle")).count(), 2);
}

#[test]
fn degenerate_charts_render_without_panicking() {
    let mut charts = Vec::new();
    let mut empty = Chart::new("", "", "");
    empty.series.push(Series::new("nothing", vec![]));
    charts.push(empty);
    let mut single = Chart::new("one", "x", "y");
    single.x_axis = Axis::Log { reversed: true };
    single.series.push(Series::new("one point", vec![(21.1, 97.5)]));
    charts.push(single);
    let mut flat = Chart::new("flat", "x", "y");
    flat.series
        .push(Series::new("flat", vec![(0.0, 97.5), (1.0, 97.5), (2.0, 97.5)]).with_markers());
    charts.push(flat);
    let mut all_nan = Chart::new("nan", "x", "y");
    all_nan.series.push(
        Series::new("nan", vec![(f64::NAN, f64::NAN)]).with_spread(Spread::Band(vec![(
            f64::NAN,
            0.0,
            1.0,
        )])),
    );
    charts.push(all_nan);
    let mut tiny = Chart::new("a title far too long for such a tiny canvas, really", "x", "y");
    (tiny.width, tiny.height) = (0, 0);
    tiny.series.push(Series::new("s", vec![(1.0, 1e-9), (2.0, 2e-9)]));
    charts.push(tiny);

    for chart in charts {
        let svg = chart.to_svg();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let doc = Document::parse(&svg).unwrap();
        // Axes always get at least two ticks.
        assert!(group_texts(&doc, "x-ticks").len() >= 2, "{svg}");
        assert!(group_texts(&doc, "y-ticks").len() >= 2, "{svg}");
        let png = Pixmap::decode_png(&chart.to_png().unwrap()).unwrap();
        assert!(png.width() >= 320 && png.height() >= 200);
    }
}

#[test]
fn flat_series_is_drawn_across_the_middle() {
    let mut chart = Chart::new("flat", "x", "y");
    chart.series.push(Series::new("flat", vec![(0.0, 97.5), (2.0, 97.5)]));
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let (_, y, _, h) = plot_area(&doc);
    for (_, py) in polyline_points(&elements(&doc, "polyline")[0]) {
        assert!((py - (y + h / 2.0)).abs() < 0.011);
    }
}

#[test]
fn text_is_escaped() {
    let mut chart = Chart::new("a < b & \"c\" 'd'", "x > 0", "y");
    chart.series.push(Series::new("<seed & co>", vec![(0.0, 0.0), (1.0, 1.0)]));
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let all = texts(&doc);
    assert!(all.contains(&"a < b & \"c\" 'd'".to_string()), "{all:?}");
    assert!(all.contains(&"x > 0".to_string()));
    assert!(all.contains(&"<seed & co>".to_string()));
}

#[test]
fn bands_and_error_bars_span_low_to_high() {
    let mut chart = Chart::new("", "x", "y");
    chart.y_range = Some((0.0, 10.0));
    let band = vec![(0.0, 1.0, 3.0), (1.0, 2.0, 4.0), (2.0, 3.0, 5.0)];
    chart.series.push(
        Series::new("band", vec![(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)])
            .with_spread(Spread::Band(band)),
    );
    let bars = vec![(0.0, 5.0, 9.0), (2.0, 6.0, 8.0)];
    chart.series.push(
        Series::new("bars", vec![(0.0, 7.0), (2.0, 7.0)]).with_spread(Spread::ErrorBars(bars)),
    );
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let (_, top, _, h) = plot_area(&doc);
    let py = |v: f64| top + h * (1.0 - v / 10.0);

    let polygons = elements(&doc, "polygon");
    assert_eq!(polygons.len(), 1);
    let outline = polyline_points(&polygons[0]);
    let ys: Vec<f64> = outline.iter().map(|p| p.1).collect();
    let want = [3.0, 4.0, 5.0, 3.0, 2.0, 1.0].map(py);
    assert!(ys.iter().zip(want).all(|(a, b)| (a - b).abs() < 0.011), "{ys:?} {want:?}");

    let bars: Vec<Node> =
        doc.descendants().filter(|n| n.attribute("class") == Some("error-bar")).collect();
    assert_eq!(bars.len(), 2);
    let stem = bars[0].first_element_child().unwrap();
    assert!((attr(&stem, "y1") - py(9.0)).abs() < 0.011);
    assert!((attr(&stem, "y2") - py(5.0)).abs() < 0.011);
    assert_eq!(bars[0].attribute("stroke"), Some(series_color(1)));
}

#[test]
fn legend_stays_clear_of_the_data() {
    // Curves that rise and stay high, like accuracy over training: the top corners are taken.
    let mut chart = Chart::new("Accuracy during training", "Iteration", "Accuracy (%)");
    for (k, level) in ["100.0%", "51.3%", "21.1%", "7.0%"].iter().enumerate() {
        let points = (0..=50)
            .map(|i| (i as f64 * 100.0, 98.0 - k as f64 - 60.0 * (-(i as f64) / 3.0).exp()))
            .collect();
        chart.series.push(Series::new(*level, points));
    }
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let (lx, ly, lw, lh) = legend_box(&doc);
    let (px, py, pw, ph) = plot_area(&doc);
    assert!(lx > px && ly > py && lx + lw < px + pw && ly + lh < py + ph, "legend inside the plot");
    assert!(ly > py + ph / 2.0, "legend in a bottom corner");
    for line in elements(&doc, "polyline") {
        for (x, y) in polyline_points(&line) {
            assert!(
                !(x >= lx && x <= lx + lw && y >= ly && y <= ly + lh),
                "({x}, {y}) under the legend"
            );
        }
    }

    // Lines crossing every corner: the legend moves out to the right of the plot.
    let mut chart = Chart::new("", "x", "y");
    chart.series.push(Series::new("up", vec![(0.0, 0.0), (1.0, 1.0)]));
    chart.series.push(Series::new("down", vec![(0.0, 1.0), (1.0, 0.0)]));
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let (lx, _, lw, _) = legend_box(&doc);
    let (px, _, pw, _) = plot_area(&doc);
    assert!(lx >= px + pw && lx + lw <= 800.0, "legend outside at {lx}");
}

#[test]
fn png_has_the_series_colour_at_its_points_and_background_elsewhere() {
    let mut chart = sparsity_chart();
    chart.series.push(
        Series::new("random pruning", vec![(100.0, 96.0), (10.0, 90.0), (1.0, 60.0)])
            .with_markers(),
    );
    let svg = chart.to_svg();
    let doc = Document::parse(&svg).unwrap();
    let png = Pixmap::decode_png(&chart.to_png().unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (800, 500));

    let lines = elements(&doc, "polyline");
    for (i, line) in lines.iter().enumerate() {
        for point in polyline_points(line) {
            assert_eq!(pixel(&png, point), rgb(series_color(i)), "series {i} at {point:?}");
        }
    }
    // Halfway between two grid lines in each direction, far from both series: background.
    let (px, py, pw, ph) = plot_area(&doc);
    let xs = group_texts(&doc, "x-ticks");
    let empty = ((xs[4].0 + xs[5].0) / 2.0, py + ph * 0.62);
    assert!(empty.0 > px && empty.0 < px + pw);
    let nearest_line = lines.iter().flat_map(polyline_points).map(|(_, y)| (y - empty.1).abs());
    assert!(nearest_line.fold(f64::INFINITY, f64::min) > 20.0, "probe too close to the data");
    let y_ticks = doc.descendants().find(|n| n.attribute("class") == Some("y-ticks")).unwrap();
    let grid_ys: Vec<f64> = y_ticks
        .children()
        .filter(|n| n.is_element())
        .map(|t| attr(&t, "y") - 12.0 * 0.35)
        .collect();
    assert!(grid_ys.iter().all(|y| (y - empty.1).abs() > 3.0), "probe on a grid line");
    let (lx, ly, lw, lh) = legend_box(&doc);
    assert!(!(empty.0 >= lx && empty.0 <= lx + lw && empty.1 >= ly && empty.1 <= ly + lh));
    assert_eq!(pixel(&png, empty), (255, 255, 255));
}

#[test]
fn png_text_is_rendered_with_the_embedded_font() {
    let dark_pixels = |chart: &Chart, (x0, y0, x1, y1): (u32, u32, u32, u32)| {
        let png = Pixmap::decode_png(&chart.to_png().unwrap()).unwrap();
        let luma = |x, y| {
            let p = png.pixel(x, y).unwrap();
            (u32::from(p.red()) + u32::from(p.green()) + u32::from(p.blue())) / 3
        };
        (x0..x1)
            .flat_map(|x| (y0..y1).map(move |y| (x, y)))
            .filter(|&(x, y)| luma(x, y) < 100)
            .count()
    };
    let titled = sparsity_chart();
    // A blank title keeps the same layout but has no glyphs to draw.
    let mut blank = sparsity_chart();
    blank.title = " ".to_string();
    let doc_text = titled.to_svg();
    let doc = Document::parse(&doc_text).unwrap();
    let (_, plot_top, _, _) = plot_area(&doc);
    assert_eq!(plot_area(&Document::parse(&blank.to_svg()).unwrap()).1, plot_top);
    let title_band = (0, 0, 800, plot_top as u32 - 3);
    assert!(dark_pixels(&titled, title_band) > 200, "no title drawn");
    assert_eq!(dark_pixels(&blank, title_band), 0);

    // Right of the line samples, where only the labels are.
    let (lx, ly, lw, lh) = legend_box(&doc);
    let label_area = ((lx + 38.0) as u32, ly as u32, (lx + lw) as u32, (ly + lh) as u32);
    assert!(dark_pixels(&titled, label_area) > 50, "no legend text drawn");
}

#[test]
fn write_creates_both_files_next_to_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let files = sparsity_chart().write(&dir.path().join("accuracy.level-21.1")).unwrap();
    assert_eq!(files.svg, dir.path().join("accuracy.level-21.1.svg"));
    assert_eq!(files.png, dir.path().join("accuracy.level-21.1.png"));
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert_eq!(svg, sparsity_chart().to_svg());
    let png = Pixmap::decode_png(&std::fs::read(&files.png).unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (800, 500));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    let err = sparsity_chart().write(&dir.path().join("missing").join("fig")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

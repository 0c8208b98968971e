//! Line charts for reports, written as SVG and PNG without any system library or system font:
//! the SVG is written here as text, the PNG is that SVG drawn by resvg with an embedded face.
//!
//! A chart is plain data: a title, two axis labels, an [`Axis`] kind for each axis (linear,
//! or logarithmic and possibly reversed), optional fixed ranges and tick positions, and the
//! [`Series`] to draw, each a labelled polyline with optional markers and an optional
//! [`Spread`] (a shaded band or error bars, e.g. min and max over seeds). Ranges, 1-2-5 ticks,
//! grid lines, margins, colours (Okabe-Ito) and the legend's position (a corner free of data,
//! else right of the plot) follow from the data. Points an axis cannot show (NaN, infinite,
//! not positive on a log axis) are skipped and break the line there.
//!
//! ```no_run
//! use ticket_train::plot::{Axis, Chart, Series, Spread};
//!
//! let mut chart = Chart::new("LeNet-300-100", "Weights remaining (%)", "Test accuracy (%)");
//! chart.x_axis = Axis::Log { reversed: true };
//! chart.series.push(
//!     Series::new("winning ticket", vec![(100.0, 98.0), (51.3, 98.3), (21.1, 98.4)])
//!         .with_markers()
//!         .with_spread(Spread::ErrorBars(vec![(100.0, 97.8, 98.1), (51.3, 98.2, 98.5)])),
//! );
//! chart.write(std::path::Path::new("runs/exp/accuracy_vs_weights"))?; // .svg and .png
//! # Ok::<(), ticket_core::Error>(())
//! ```

mod font;
mod layout;
mod raster;
mod scale;
mod svg;

pub use scale::Axis;

use std::path::{Path, PathBuf};
use ticket_core::atomic::write_atomic;
use ticket_core::{Error, Result};

/// A line chart. Build it with [`Chart::new`], then set the public fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Drawn above the plot; empty for none.
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: Axis,
    pub y_axis: Axis,
    /// Fixed `(low, high)` range; `None`, or a range the axis cannot show (equal ends, NaN,
    /// not positive on a log axis), fits the range to the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    /// Values to label on the axis instead of the automatic ticks (e.g. the pruning levels
    /// 100, 51.3, 21.1 ...); values outside the range are left out.
    pub x_ticks: Option<Vec<f64>>,
    pub y_ticks: Option<Vec<f64>>,
    /// Drawn in order, the first on the bottom; colours and marker shapes follow the order.
    pub series: Vec<Series>,
    /// Canvas size in pixels (the PNG's size), clamped to 320x200 ..= 8000x8000.
    pub width: u32,
    pub height: u32,
}

/// One labelled line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text; a series with an empty label is drawn but not listed.
    pub label: String,
    /// `(x, y)` in the order the line goes through them.
    pub points: Vec<(f64, f64)>,
    /// Whether each point gets a marker (an isolated point always does).
    pub markers: bool,
    pub spread: Option<Spread>,
}

/// How far values spread around a series, as `(x, low, high)` per x.
#[derive(Debug, Clone, PartialEq)]
pub enum Spread {
    /// A shaded area between the lows and the highs; suits many x values.
    Band(Vec<(f64, f64, f64)>),
    /// A capped vertical bar at each x; suits a few x values.
    ErrorBars(Vec<(f64, f64, f64)>),
}

/// The two files [`Chart::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFiles {
    pub svg: PathBuf,
    pub png: PathBuf,
}

impl Chart {
    /// An 800x500 chart with linear axes, automatic ranges and ticks, and no series yet.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_axis: Axis::Linear,
            y_axis: Axis::Linear,
            x_range: None,
            y_range: None,
            x_ticks: None,
            y_ticks: None,
            series: Vec::new(),
            width: 800,
            height: 500,
        }
    }

    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }

    /// The chart as a PNG image of `width` x `height` pixels.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        raster::svg_to_png(&self.to_svg())
            .map_err(|problem| Error::usage(format!("chart \"{}\": {problem}", self.title)))
    }

    /// Writes `<path>.svg` and `<path>.png` (the extensions are appended, so `path` may
    /// contain dots), each atomically, and returns their paths.
    pub fn write(&self, path: &Path) -> Result<ChartFiles> {
        let with_extension = |ext: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(ext);
            PathBuf::from(name)
        };
        let files = ChartFiles { svg: with_extension(".svg"), png: with_extension(".png") };
        let svg = self.to_svg();
        let png =
            raster::svg_to_png(&svg).map_err(|problem| Error::invalid(&files.png, problem))?;
        write_atomic(&files.svg, svg.as_bytes())?;
        write_atomic(&files.png, &png)?;
        Ok(files)
    }
}

impl Series {
    /// A line through `points`, without markers or spread.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points, markers: false, spread: None }
    }

    /// The same series with a marker on every point.
    pub fn with_markers(self) -> Series {
        Series { markers: true, ..self }
    }

    /// The same series with a band or error bars.
    pub fn with_spread(self, spread: Spread) -> Series {
        Series { spread: Some(spread), ..self }
    }
}

impl Spread {
    /// The `(x, low, high)` triples, whatever the style.
    pub fn ranges(&self) -> &[(f64, f64, f64)] {
        match self {
            Spread::Band(r) | Spread::ErrorBars(r) => r,
        }
    }
}

#[cfg(test)]
mod tests;

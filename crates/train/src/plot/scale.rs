//! Axes: how a data value becomes a pixel coordinate, which range an axis shows, and where its
//! ticks go. Everything that depends on linear versus logarithmic lives here, so the drawing
//! code only ever asks "which pixel?" and "which ticks?".

/// How an axis maps values onto its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Axis {
    /// Equal distances for equal differences.
    #[default]
    Linear,
    /// Equal distances for equal ratios; only positive values are drawn. `reversed` puts the
    /// largest value at the left (or bottom), like "% of weights remaining" falling from 100.
    Log { reversed: bool },
}

impl Axis {
    /// Whether `v` can be placed on this axis (finite, and positive on a log axis).
    pub(crate) fn accepts(self, v: f64) -> bool {
        v.is_finite() && (self == Axis::Linear || v > 0.0)
    }

    /// The value in the space where the axis is linear.
    fn forward(self, v: f64) -> f64 {
        match self {
            Axis::Linear => v,
            Axis::Log { .. } => v.log10(),
        }
    }

    fn inverse(self, t: f64) -> f64 {
        match self {
            Axis::Linear => t,
            Axis::Log { .. } => 10f64.powf(t),
        }
    }

    fn reversed(self) -> bool {
        matches!(self, Axis::Log { reversed: true })
    }
}

/// Share of the data span added on each side of an automatic range, so that markers at the
/// extremes are not cut by the frame.
const AUTO_MARGIN: f64 = 0.05;

/// The range an axis shows: `fixed` if it is usable, else the span of `values` with a margin.
/// Values the axis cannot show are ignored; no values at all give a default range, and a
/// zero span (one value, or identical values) is widened around that value.
pub(crate) fn range(axis: Axis, fixed: Option<(f64, f64)>, values: &[f64]) -> (f64, f64) {
    if let Some((a, b)) = fixed {
        if axis.accepts(a) && axis.accepts(b) && a != b {
            return (a.min(b), a.max(b));
        }
    }
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &v in values.iter().filter(|&&v| axis.accepts(v)) {
        let t = axis.forward(v);
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if lo > hi {
        return match axis {
            Axis::Linear => (0.0, 1.0),
            Axis::Log { .. } => (1.0, 100.0),
        };
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * AUTO_MARGIN
    } else {
        match axis {
            Axis::Linear if lo == 0.0 => 1.0,
            Axis::Linear => lo.abs() * 0.05,
            Axis::Log { .. } => 0.3,
        }
    };
    (axis.inverse(lo - pad), axis.inverse(hi + pad))
}

/// A data range laid along a pixel span: `lo` lands on `px_lo` and `hi` on `px_hi` (reversed
/// log axes swap the two ends).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    axis: Axis,
    t_lo: f64,
    t_hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Scale {
    /// `lo < hi` must both be accepted by `axis`, as [`range`] guarantees.
    pub(crate) fn new(axis: Axis, (lo, hi): (f64, f64), (px_lo, px_hi): (f64, f64)) -> Scale {
        let (px_lo, px_hi) = if axis.reversed() { (px_hi, px_lo) } else { (px_lo, px_hi) };
        Scale { axis, t_lo: axis.forward(lo), t_hi: axis.forward(hi), px_lo, px_hi }
    }

    /// The pixel coordinate of `v` (outside the pixel span when `v` is outside the range).
    pub(crate) fn px(&self, v: f64) -> f64 {
        let f = (self.axis.forward(v) - self.t_lo) / (self.t_hi - self.t_lo);
        self.px_lo + f * (self.px_hi - self.px_lo)
    }

    /// Whether `v` is inside the range (with a little tolerance for rounding).
    pub(crate) fn contains(&self, v: f64) -> bool {
        let t = self.axis.forward(v);
        let eps = (self.t_hi - self.t_lo) * 1e-9;
        t >= self.t_lo - eps && t <= self.t_hi + eps
    }

    /// Labelled ticks (value and text) and unlabelled minor ticks, about one labelled tick
    /// per `spacing_px` pixels. `custom` replaces the automatic labelled ticks.
    pub(crate) fn ticks(&self, spacing_px: f64, custom: Option<&[f64]>) -> Ticks {
        let (lo, hi) = (self.axis.inverse(self.t_lo), self.axis.inverse(self.t_hi));
        let length = (self.px_hi - self.px_lo).abs();
        let target = (length / spacing_px).clamp(2.0, 12.0);
        let mut ticks = match custom {
            Some(values) => custom_ticks(values),
            None => match self.axis {
                Axis::Linear => linear_ticks(lo, hi, target),
                Axis::Log { .. } => log_ticks(lo, hi, target),
            },
        };
        ticks.major.retain(|(v, _)| self.axis.accepts(*v) && self.contains(*v));
        ticks.minor.retain(|v| self.contains(*v));
        ticks
    }
}

/// Tick positions in data units, the labelled ones with their text.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ticks {
    pub major: Vec<(f64, String)>,
    pub minor: Vec<f64>,
}

/// The 1-2-5 step nearest to `raw`: 1, 2, 5, 10, 20, 50 ... times a power of ten.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let factor = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

/// Multiples of a 1-2-5 step inside `[lo, hi]`, about `target` of them.
fn linear_ticks(lo: f64, hi: f64, target: f64) -> Ticks {
    let step = nice_step((hi - lo) / target);
    if !step.is_finite() || step <= 0.0 {
        return Ticks::default();
    }
    // Fixed decimals so that labels line up ("95.0", "95.5"), unless the numbers are extreme.
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let fixed = decimals <= 4 && lo.abs().max(hi.abs()) < 1e7;
    let first = (lo / step).ceil();
    let major = (0..64)
        .map(|k| (first + k as f64) * step)
        .take_while(|&v| v <= hi + step * 1e-9)
        .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
        .map(|v| (v, if fixed { format!("{v:.decimals$}") } else { format_value(v) }))
        .collect();
    Ticks { major, minor: Vec::new() }
}

/// Powers of ten, with 2 and 5 times them when there is room, and the other integer multiples
/// as minor ticks. A range narrower than that falls back to linear ticks.
fn log_ticks(lo: f64, hi: f64, target: f64) -> Ticks {
    let first_decade = lo.log10().floor() as i32;
    let last_decade = hi.log10().ceil() as i32;
    let decades = hi.log10() - lo.log10();
    let mantissas: &[f64] = if decades * 3.0 <= target + 1.0 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let decade_step = ((decades / target).ceil() as i32).max(1);
    let mut major = Vec::new();
    let mut minor = Vec::new();
    for decade in first_decade..=last_decade {
        let base = 10f64.powi(decade);
        for m in 1..10 {
            let v = m as f64 * base;
            if v < lo * (1.0 - 1e-9) || v > hi * (1.0 + 1e-9) {
                continue;
            }
            let labelled = mantissas.contains(&(m as f64)) && decade.rem_euclid(decade_step) == 0;
            if labelled {
                major.push((v, format_value(v)));
            } else if decade_step == 1 {
                minor.push(v);
            }
        }
    }
    if major.len() < 2 {
        return linear_ticks(lo, hi, target);
    }
    Ticks { major, minor }
}

fn custom_ticks(values: &[f64]) -> Ticks {
    Ticks { major: values.iter().map(|&v| (v, format_value(v))).collect(), minor: Vec::new() }
}

/// A short label for a value: at most three decimals, no trailing zeros ("100", "51.3", "0.5").
pub(crate) fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e7 || v.abs() < 1e-3) {
        let text = format!("{v:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'));
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|(_, s)| s.as_str()).collect()
    }

    fn assert_maps(scale: Scale, expected: &[(f64, f64)]) {
        for &(value, px) in expected {
            assert!((scale.px(value) - px).abs() < 1e-9, "{value} -> {} not {px}", scale.px(value));
        }
    }

    #[test]
    fn log_axis_places_equal_ratios_at_equal_distances() {
        let s = Scale::new(Axis::Log { reversed: false }, (1.0, 100.0), (0.0, 600.0));
        // 2 lies log10(2) of the way from 1 to 10.
        assert_maps(s, &[(1.0, 0.0), (10.0, 300.0), (100.0, 600.0), (2.0, 300.0 * 2f64.log10())]);
    }

    #[test]
    fn reversed_log_axis_puts_the_largest_value_first() {
        let s = Scale::new(Axis::Log { reversed: true }, (1.0, 100.0), (50.0, 650.0));
        assert_maps(s, &[(100.0, 50.0), (1.0, 650.0), (10.0, 350.0)]);
    }

    #[test]
    fn linear_axis_maps_proportionally_even_when_pixels_run_downwards() {
        let s = Scale::new(Axis::Linear, (90.0, 100.0), (400.0, 0.0));
        assert_maps(s, &[(90.0, 400.0), (97.5, 100.0), (100.0, 0.0)]);
    }

    #[test]
    fn linear_ticks_are_one_two_five_steps_inside_the_range() {
        let s = Scale::new(Axis::Linear, (0.0, 50_000.0), (0.0, 600.0));
        assert_eq!(
            labels(&s.ticks(100.0, None)),
            ["0", "10000", "20000", "30000", "40000", "50000"]
        );
        let s = Scale::new(Axis::Linear, (94.3, 98.9), (400.0, 0.0));
        assert_eq!(
            labels(&s.ticks(50.0, None)),
            ["94.5", "95.0", "95.5", "96.0", "96.5", "97.0", "97.5", "98.0", "98.5"]
        );
        let s = Scale::new(Axis::Linear, (-0.25, 0.25), (0.0, 500.0));
        assert_eq!(labels(&s.ticks(100.0, None)), ["-0.2", "-0.1", "0.0", "0.1", "0.2"]);
    }

    #[test]
    fn tiny_steps_are_labelled_in_exponent_form() {
        let s = Scale::new(Axis::Linear, (1e-9, 2e-9), (0.0, 500.0));
        let t = s.ticks(100.0, None);
        assert_eq!(labels(&t), ["1e-9", "1.2e-9", "1.4e-9", "1.6e-9", "1.8e-9", "2e-9"]);
    }

    #[test]
    fn log_percent_axis_gets_one_two_five_ticks() {
        let s = Scale::new(Axis::Log { reversed: true }, (1.6, 118.0), (0.0, 600.0));
        let t = s.ticks(80.0, None);
        assert_eq!(labels(&t), ["2", "5", "10", "20", "50", "100"]);
        assert!(t.minor.contains(&3.0) && t.minor.contains(&70.0) && !t.minor.contains(&5.0));
    }

    #[test]
    fn wide_log_range_labels_decades_only() {
        let s = Scale::new(Axis::Log { reversed: false }, (1e-3, 1e3), (0.0, 600.0));
        assert_eq!(
            labels(&s.ticks(80.0, None)),
            ["0.001", "0.01", "0.1", "1", "10", "100", "1000"]
        );
    }

    #[test]
    fn narrow_log_range_falls_back_to_linear_ticks() {
        let s = Scale::new(Axis::Log { reversed: false }, (21.0, 48.0), (0.0, 600.0));
        let t = s.ticks(80.0, None);
        assert!(t.major.len() >= 3, "{t:?}");
        assert!(t.major.iter().all(|(v, _)| (21.0..=48.0).contains(v)), "{t:?}");
    }

    #[test]
    fn custom_ticks_outside_the_range_are_dropped() {
        let s = Scale::new(Axis::Log { reversed: true }, (1.5, 120.0), (0.0, 600.0));
        let t = s.ticks(80.0, Some(&[100.0, 51.3, 21.1, 7.0, 1.9, 0.5, -3.0, f64::NAN]));
        assert_eq!(labels(&t), ["100", "51.3", "21.1", "7", "1.9"]);
    }

    #[test]
    fn auto_range_pads_the_data_and_survives_degenerate_input() {
        let (lo, hi) = range(Axis::Linear, None, &[10.0, 20.0, f64::NAN]);
        assert!((lo - 9.5).abs() < 1e-12 && (hi - 20.5).abs() < 1e-12);
        // Equal ratios of margin on a log axis.
        let (lo, hi) = range(Axis::Log { reversed: true }, None, &[1.0, 100.0, 0.0, -5.0]);
        assert!((hi / 100.0 - 1.0 / lo).abs() < 1e-9 && hi > 100.0);
        // Identical values, a single value, nothing usable: a non-empty range either way.
        let (lo, hi) = range(Axis::Linear, None, &[97.0, 97.0]);
        assert!(lo < 97.0 && hi > 97.0);
        let (lo, hi) = range(Axis::Linear, None, &[0.0]);
        assert!(lo < 0.0 && hi > 0.0);
        let (lo, hi) = range(Axis::Log { reversed: false }, None, &[5.0]);
        assert!(lo < 5.0 && hi > 5.0);
        assert_eq!(range(Axis::Linear, None, &[f64::INFINITY]), (0.0, 1.0));
    }

    #[test]
    fn fixed_range_is_used_when_usable() {
        assert_eq!(range(Axis::Linear, Some((100.0, 90.0)), &[1.0]), (90.0, 100.0));
        let (lo, hi) = range(Axis::Linear, Some((5.0, 5.0)), &[1.0, 2.0]);
        assert!(lo < 1.0 && hi > 2.0 && hi < 3.0);
        let (lo, _) = range(Axis::Log { reversed: false }, Some((0.0, 100.0)), &[2.0, 50.0]);
        assert!(lo > 1.0);
    }

    #[test]
    fn values_are_labelled_briefly() {
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(51.3), "51.3");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(7.0), "7");
        assert_eq!(format_value(-0.0), "0");
        assert_eq!(format_value(0.1 + 0.2), "0.3");
        assert_eq!(format_value(2.5e-5), "2.5e-5");
        assert_eq!(format_value(6.0 * 2e-10), "1.2e-9");
        assert_eq!(format_value(3e7), "3e7");
    }
}

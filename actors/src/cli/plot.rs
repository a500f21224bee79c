//! `oqmgr simulate --plot FILE.svg`: a picture of a schedule, drawn with
//! plotters' SVG backend from the series `oqmgr::sim::series` reads out
//! of the trace (those are pinned by a snapshot test; the pixels are not).
//!
//! One band per destination (the busiest [`MOST_DESTINATIONS`], by
//! deliveries): above, its window and deliveries in flight as steps, dead
//! periods shaded, each cut of the window (negative feedback) a red cross,
//! each raise a small green triangle, each adaptive probe a purple dot;
//! below, its deliveries and deferrals so far.

use std::path::Path;

use oqmgr::sim::series::{DestSeries, Series};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Most destinations drawn (the busiest).
pub const MOST_DESTINATIONS: usize = 8;

/// Pixels per destination band, and the picture's width.
const BAND: u32 = 420;
const WIDTH: u32 = 1200;

/// Draws `series` into the SVG file `path`, titled `title`.
pub fn draw(series: &Series, title: &str, path: &Path) -> Result<(), String> {
    let mut dests: Vec<&DestSeries> = series.dests.iter().collect();
    dests.sort_by_key(|d| std::cmp::Reverse(deliveries(d)));
    dests.truncate(MOST_DESTINATIONS);
    dests.sort_by(|a, b| a.dest.cmp(&b.dest));
    let bands = dests.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, 40 + BAND * bands)).into_drawing_area();
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| failed(&e))?;
    let end = seconds(series.end).max(1.0);
    for (area, d) in root
        .split_evenly((dests.len().max(1), 1))
        .iter()
        .zip(&dests)
    {
        band(area, d, end).map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))
}

/// Deliveries that ended, well or not.
fn deliveries(d: &DestSeries) -> u64 {
    let last = |v: &[(u64, u64)]| v.last().map_or(0, |(_, n)| *n);
    last(&d.delivered) + last(&d.deferred)
}

/// Milliseconds as seconds.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A step series (a value from each time on, 0 before the first) as the
/// corners of its line, held until `end` seconds.
fn steps<T: Copy + Into<f64>>(series: &[(u64, T)], end: f64) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(series.len() * 2 + 2);
    points.push((0.0, 0.0));
    for (at, value) in series {
        let (t, v) = (seconds(*at), (*value).into());
        if let Some(&(_, last)) = points.last() {
            points.push((t, last));
        }
        points.push((t, v));
    }
    if let Some(&(_, last)) = points.last() {
        points.push((end, last));
    }
    points
}

/// One destination's band: window and busy above, totals below.
fn band<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    d: &DestSeries,
    end: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (upper, lower) = area.split_vertically(BAND * 11 / 20);
    let top = d
        .window
        .iter()
        .chain(&d.busy)
        .map(|(_, v)| *v)
        .max()
        .unwrap_or(1)
        .max(1);
    let top = f64::from(top) + 1.0;
    let mut chart = ChartBuilder::on(&upper)
        .caption(
            format!("{}: window and deliveries in flight", d.dest),
            ("sans-serif", 15),
        )
        .margin(6)
        .margin_right(24)
        .x_label_area_size(22)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("deliveries")
        .draw()?;
    let dead = RED.mix(0.15).filled();
    chart.draw_series(d.dead.iter().map(|(from, to)| {
        let to = to.map_or(end, seconds);
        Rectangle::new([(seconds(*from), 0.0), (to, top)], dead)
    }))?;
    chart
        .draw_series(LineSeries::new(steps(&d.window, end), BLUE.stroke_width(2)))?
        .label("window")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(steps(&d.busy, end), BLACK.mix(0.6)))?
        .label("busy")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.6)));
    chart
        .draw_series(
            d.throttles
                .iter()
                .map(|(at, w)| Cross::new((seconds(*at), f64::from(*w)), 4, RED)),
        )?
        .label("window cut")
        .legend(|(x, y)| Cross::new((x + 8, y), 4, RED));
    chart
        .draw_series(
            d.unthrottles.iter().map(|(at, w)| {
                TriangleMarker::new((seconds(*at), f64::from(*w)), 3, GREEN.filled())
            }),
        )?
        .label("window raised")
        .legend(|(x, y)| TriangleMarker::new((x + 8, y), 3, GREEN.filled()));
    chart
        .draw_series(
            d.probes
                .iter()
                .map(|at| Circle::new((seconds(*at), 0.5), 3, MAGENTA.filled())),
        )?
        .label("probe of a dead site")
        .legend(|(x, y)| Circle::new((x + 8, y), 3, MAGENTA.filled()));
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
        .label("dead")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], dead));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let most = deliveries(d).max(1) as f64;
    let mut totals = ChartBuilder::on(&lower)
        .caption(format!("{}: deliveries so far", d.dest), ("sans-serif", 15))
        .margin(6)
        .margin_right(24)
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end, 0.0..most * 1.05)?;
    totals
        .configure_mesh()
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("time (s)")
        .y_desc("deliveries")
        .draw()?;
    // Counts far below 2^53: exact as floats.
    let cumulative = |v: &[(u64, u64)]| -> Vec<(f64, f64)> {
        let counts: Vec<(u64, f64)> = v.iter().map(|(at, n)| (*at, *n as f64)).collect();
        steps(&counts, end)
    };
    totals
        .draw_series(LineSeries::new(
            cumulative(&d.delivered),
            GREEN.stroke_width(2),
        ))?
        .label("delivered")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREEN.stroke_width(2)));
    totals
        .draw_series(LineSeries::new(
            cumulative(&d.deferred),
            RED.stroke_width(2),
        ))?
        .label("deferred")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(2)));
    totals
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::steps;

    #[test]
    fn steps_hold_each_value_until_the_next() {
        let points = steps(&[(1000, 5u32), (2000, 6)], 3.0);
        assert_eq!(
            points,
            vec![
                (0.0, 0.0),
                (1.0, 0.0),
                (1.0, 5.0),
                (2.0, 5.0),
                (2.0, 6.0),
                (3.0, 6.0)
            ]
        );
    }
}

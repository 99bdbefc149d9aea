//! PNG plots (plotters, bitmap backend), in the detect report's style: the same embedded font
//! ([`leaktrace_detect::plot::register_font`]), so no system font is needed.

use crate::{ForensicError, Report};
use leaktrace_detect::plot::{FONT_FAMILY, register_font};
use plotters::prelude::*;
use std::path::Path;

/// Registers the embedded font once; the error says why it could not be.
fn font() -> Result<(), String> {
    register_font().map_err(|e| e.to_string())
}

fn err(file: &Path) -> impl Fn(String) -> ForensicError + '_ {
    move |message| ForensicError::Plot {
        file: file.display().to_string(),
        message,
    }
}

/// Horizontal bars: segments needed per leak (attacks and collusion), target lines at 64/96.
pub fn segments(r: &Report, file: &Path) -> Result<(), ForensicError> {
    font().map_err(err(file))?;
    let rows: Vec<(String, Option<usize>, usize)> = r
        .attacks
        .iter()
        .chain(&r.collusion)
        .map(|a| {
            let (n, cap) = a
                .sweep
                .as_ref()
                .map_or((None, 0), |s| (s.needed, s.capture));
            (a.name.clone(), n, cap)
        })
        .collect();
    let xmax = rows
        .iter()
        .map(|r| r.1.unwrap_or(r.2))
        .chain([100usize])
        .max()
        .unwrap_or(100) as f64
        * 1.1;
    let h = 120 + 26 * rows.len() as u32;
    let root = BitMapBackend::new(file, (1000, h)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| draw(&e)).map_err(err(file))?;
    let n = rows.len();
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Segments to accuse at FP <= {:e} among {} sessions ({})",
                r.config.op.fp,
                r.config.op.registry,
                r.config.mode.name()
            ),
            (FONT_FAMILY, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..xmax, -0.5f64..(n as f64 - 0.5))
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n.max(1))
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("segments (red: not accused within the capture, bar = capture length)")
        .label_style((FONT_FAMILY, 13))
        .draw()
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, need, cap))| {
            let y = i as f64;
            let (v, style) = match need {
                Some(k) => (*k as f64, BLUE.mix(0.7).filled()),
                None => (*cap as f64, RED.mix(0.35).filled()),
            };
            Rectangle::new([(0.0, y - 0.35), (v, y + 0.35)], style)
        }))
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    for (t, c) in [(64.0, &GREEN), (96.0, &MAGENTA)] {
        chart
            .draw_series(LineSeries::new(
                [(t, -0.5), (t, n as f64 - 0.5)],
                c.stroke_width(2),
            ))
            .map_err(|e| draw(&e))
            .map_err(err(file))?
            .label(format!("target {t:.0}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    root.present().map_err(|e| draw(&e)).map_err(err(file))?;
    Ok(())
}

/// Histogram (log counts) of normalised innocent scores `S/√L`, with the accusation
/// threshold of the full capture and the guilty sessions' normalised scores marked.
pub fn innocents(r: &Report, file: &Path) -> Result<(), ForensicError> {
    font().map_err(err(file))?;
    let sample = &r.innocents_total.sample;
    let draw = |e: &dyn std::fmt::Display| e.to_string();
    let (lo, hi) = (-6.0f64, 12.0f64);
    let bins = 90usize;
    let w = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &s in sample {
        let b = ((s - lo) / w).floor();
        if b >= 0.0 && (b as usize) < bins {
            counts[b as usize] += 1;
        }
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let root = BitMapBackend::new(file, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw(&e)).map_err(err(file))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Innocent scores / sqrt(L) ({} sampled of {} trials) vs thresholds",
                sample.len(),
                r.innocents_total.trials
            ),
            (FONT_FAMILY, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, (0.8f64..max * 2.0).log_scale())
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    chart
        .configure_mesh()
        .x_desc("normalised score S/sqrt(L)")
        .y_desc("innocent sessions")
        .label_style((FONT_FAMILY, 13))
        .draw()
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    chart
        .draw_series(
            counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| {
                    let x = lo + i as f64 * w;
                    Rectangle::new([(x, 0.8), (x + w, *c as f64)], BLUE.mix(0.5).filled())
                }),
        )
        .map_err(|e| draw(&e))
        .map_err(err(file))?
        .label("innocents")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.5).filled()));
    // Thresholds of each leak (normalised), and the guilty scores (normalised) where known.
    let th: Vec<f64> = r
        .attacks
        .iter()
        .chain(&r.collusion)
        .chain(&r.innocent_sources)
        .filter_map(|a| a.innocents.threshold_normalised)
        .filter(|t| (lo..hi).contains(t))
        .collect();
    chart
        .draw_series(
            th.iter().map(|&t| {
                PathElement::new([(t, 0.8), (t, max * 2.0)], RED.mix(0.6).stroke_width(1))
            }),
        )
        .map_err(|e| draw(&e))
        .map_err(err(file))?
        .label(format!(
            "accusation threshold of each leak (FP {:e} over {} sessions)",
            r.config.op.fp, r.config.op.registry
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| draw(&e))
        .map_err(err(file))?;
    root.present().map_err(|e| draw(&e)).map_err(err(file))?;
    Ok(())
}

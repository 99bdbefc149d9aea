//! PNG plot of a detection [`Report`] (plotters, bitmap backend, ab_glyph text).
//!
//! Two panels:
//! 1. the per-position decision margin `z` over reference time: A above zero, B below, the
//!    erasure band `|z| < erasure_z` shaded; erased positions hollow, positions where the
//!    decision disagrees with the best-scoring session's codeword crossed;
//! 2. the best-scoring sessions' scores against the accusation threshold (accused in red);
//! 3. with a [`Still`] of the copy (`write_png_with_still`): that frame, with the regions the
//!    decisions left out (overlays: `registration.details.registration.excluded.regions`)
//!    outlined in red.
//!
//! Text uses DejaVu Sans, embedded in the crate (`assets/`, Bitstream Vera license, see
//! `assets/DejaVuSans-LICENSE.txt`) and registered with plotters by [`register_font`] under
//! the family [`FONT_FAMILY`], the one plotters' defaults ask for. Other crates drawing with
//! plotters (the forensic suite) call [`register_font`] once and may reuse [`draw_report`] on
//! any drawing area.
//!
//! ```no_run
//! # fn f(report: &leaktrace_detect::report::Report) -> Result<(), leaktrace_detect::DetectError> {
//! leaktrace_detect::plot::write_png(report, "report.png".as_ref(), leaktrace_detect::plot::SIZE)?;
//! # Ok(()) }
//! ```

use crate::DetectError;
use crate::report::{Report, Verdict, format_probability as fmt_p};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (TrueType), embedded.
pub const FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family [`register_font`] registers ([`FONT_TTF`] is registered under it), which
/// is plotters' default sans-serif family.
pub const FONT_FAMILY: &str = "sans-serif";

/// Default picture size (pixels).
pub const SIZE: (u32, u32) = (1200, 900);

/// Registers [`FONT_TTF`] with plotters under [`FONT_FAMILY`] (normal, bold and italic styles
/// all map to it). Idempotent; call before drawing any text.
pub fn register_font() -> Result<(), DetectError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic]
            .into_iter()
            .all(|style| plotters::style::register_font(FONT_FAMILY, style, FONT_TTF).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(DetectError::PlotFont)
    }
}

fn draw_err(path: &str) -> impl Fn(String) -> DetectError + '_ {
    move |reason| DetectError::PlotDraw {
        path: path.to_owned(),
        reason,
    }
}

fn check_size((w, h): (u32, u32)) -> Result<(), DetectError> {
    if (200..=8000).contains(&w) && (200..=8000).contains(&h) {
        Ok(())
    } else {
        Err(DetectError::PlotSize(w, h))
    }
}

/// A frame of the copy, in grey, for the third panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Still {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luma, row-major, 8 bits.
    pub luma: Vec<u8>,
}

/// Width of a [`Still`] taken from a suspect.
pub const STILL_WIDTH: usize = 320;

impl Still {
    /// The frame of `suspect` at about `at_s` seconds (the last one when it is shorter),
    /// scaled to [`STILL_WIDTH`] columns.
    pub fn from_suspect(suspect: &Path, at_s: f64) -> Result<Still, DetectError> {
        let media = |source| DetectError::Media {
            path: suspect.to_path_buf(),
            source,
        };
        let mut dec = leaktrace_media::Decoder::open(suspect).map_err(media)?;
        let (w, h) = dec.size();
        let width = STILL_WIDTH;
        let height = (((width * h) as f64 / w.max(1) as f64 / 2.0).round() as usize * 2).max(2);
        let mut last = None;
        while let Some(raw) = dec.next_luma(width, height).map_err(media)? {
            let t = dec.last_time();
            last = Some(raw);
            if t.is_none_or(|t| t >= at_s) {
                break;
            }
        }
        let raw = last.ok_or(DetectError::Empty)?;
        Ok(Still {
            width,
            height,
            // `next_luma` gives 8-bit values × 256.
            luma: raw.iter().map(|&v| (v >> 8) as u8).collect(),
        })
    }
}

/// Draws the report and writes it as a PNG file (`path` must end in `.png`).
pub fn write_png(report: &Report, path: &Path, size: (u32, u32)) -> Result<(), DetectError> {
    write_png_with_still(report, None, path, size)
}

/// Like [`write_png`], with a third panel: `still` with the regions left out outlined.
pub fn write_png_with_still(
    report: &Report,
    still: Option<&Still>,
    path: &Path,
    size: (u32, u32),
) -> Result<(), DetectError> {
    let name = path.display().to_string();
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        return Err(DetectError::PlotExtension(name));
    }
    check_size(size)?;
    register_font()?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    draw_report_with_still(report, still, &root).map_err(draw_err(&name))?;
    root.present().map_err(|e| draw_err(&name)(e.to_string()))
}

/// Draws the report into an RGB buffer (`3 · width · height` bytes).
pub fn render_rgb(report: &Report, size: (u32, u32)) -> Result<Vec<u8>, DetectError> {
    check_size(size)?;
    register_font()?;
    let mut buf = vec![0u8; 3 * size.0 as usize * size.1 as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw_report(report, &root).map_err(draw_err(""))?;
        root.present().map_err(|e| draw_err("")(e.to_string()))?;
    }
    Ok(buf)
}

const A_COLOUR: RGBColor = RGBColor(31, 119, 180);
const B_COLOUR: RGBColor = RGBColor(230, 120, 20);
const ERASED_COLOUR: RGBColor = RGBColor(140, 140, 140);
const WRONG_COLOUR: RGBColor = RGBColor(200, 0, 0);
const BAND_COLOUR: RGBColor = RGBColor(228, 228, 228);

/// Draws both panels of `report` on `area` (fills it white first). [`register_font`] must
/// have been called.
pub fn draw_report<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    draw_report_with_still(report, None, area)
}

/// [`draw_report`], with the third panel when `still` is given.
pub fn draw_report_with_still<DB: DrawingBackend>(
    report: &Report,
    still: Option<&Still>,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(e)?;
    let heading = match report.accused.first() {
        Some(a) => format!(
            "{}: accused session {} (account {}), probability {} of being wrong{}",
            report.title,
            a.session_id,
            a.account,
            fmt_p(a.probability),
            match report.accused.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        ),
        None => format!("{}: no accusation ({})", report.title, report.reason),
    };
    let area = area
        .titled(&heading, (FONT_FAMILY, 20).into_font())
        .map_err(e)?;
    let (top, bottom) = area.split_vertically(area.relative_to_height(0.55));
    draw_margins(report, &top)?;
    match still {
        None => draw_scores(report, &bottom),
        Some(still) => {
            let (left, right) = bottom.split_horizontally(bottom.relative_to_width(0.6));
            draw_scores(report, &left)?;
            draw_still(report, still, &right)
        }
    }
}

/// The boxes `[x0, y0, x1, y1]` (fractions of the suspect picture) the decisions left out.
fn excluded_regions(report: &Report) -> Vec<[f64; 4]> {
    report
        .registration
        .details
        .get("registration")
        .map(crate::report::excluded_regions)
        .unwrap_or_default()
}

/// Panel 3: a frame of the copy with the regions left out outlined.
fn draw_still<DB: DrawingBackend>(
    report: &Report,
    still: &Still,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let regions = excluded_regions(report);
    let caption = if regions.is_empty() {
        "A frame of the copy: nothing left out".to_owned()
    } else {
        format!("A frame of the copy: {} region(s) left out", regions.len())
    };
    let area = area.titled(&caption, (FONT_FAMILY, 15)).map_err(e)?;
    let (aw, ah) = area.dim_in_pixel();
    let (sw, sh) = (still.width.max(1), still.height.max(1));
    if still.luma.len() != sw * sh || aw < 8 || ah < 8 {
        return Ok(());
    }
    // Fit the frame into the panel, keeping its aspect ratio.
    let k = (f64::from(aw - 8) / sw as f64).min(f64::from(ah - 8) / sh as f64);
    let (dw, dh) = ((sw as f64 * k) as i32, (sh as f64 * k) as i32);
    let (ox, oy) = ((aw as i32 - dw) / 2, (ah as i32 - dh) / 2);
    for y in 0..dh {
        let sy = ((f64::from(y) / k) as usize).min(sh - 1);
        for x in 0..dw {
            let sx = ((f64::from(x) / k) as usize).min(sw - 1);
            let v = still.luma[sy * sw + sx];
            area.draw_pixel((ox + x, oy + y), &RGBColor(v, v, v))
                .map_err(e)?;
        }
    }
    for [x0, y0, x1, y1] in regions {
        let p = |fx: f64, fy: f64| {
            (
                ox + (fx.clamp(0.0, 1.0) * f64::from(dw)) as i32,
                oy + (fy.clamp(0.0, 1.0) * f64::from(dh)) as i32,
            )
        };
        area.draw(&Rectangle::new(
            [p(x0, y0), p(x1, y1)],
            ShapeStyle::from(&WRONG_COLOUR).stroke_width(2),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// Panel 1: per-position z over time.
fn draw_margins<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let ez = report.calibration.erasure_z;
    let seg = report.segment_s.max(1e-3);
    let x_end = report
        .positions
        .iter()
        .map(|p| p.start_s + seg)
        .fold(seg, f64::max);
    let z_max = report
        .positions
        .iter()
        .map(|p| p.z.abs())
        .filter(|z| z.is_finite())
        .fold(ez * 1.5, f64::max)
        .max(1.0)
        * 1.12;
    let c = &report.calibration;
    let caption = format!(
        "Decision margin z per position: {} observed, {} used, {} erased{}",
        c.positions_observed,
        c.positions_used,
        c.positions_erased,
        if ez > 0.0 {
            format!(" (|z| < {ez})")
        } else {
            String::new()
        }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT_FAMILY, 17))
        .margin(12)
        .x_label_area_size(38)
        .y_label_area_size(56)
        // Headroom above the largest margin for the legend (upper right).
        .build_cartesian_2d(0f64..x_end, -z_max..z_max * 1.5)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("reference time (s)")
        .y_desc("z  (A > 0 > B)")
        .light_line_style(WHITE.mix(0.0))
        .label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 14))
        .draw()
        .map_err(e)?;
    if ez > 0.0 {
        chart
            .draw_series([Rectangle::new(
                [(0.0, -ez), (x_end, ez)],
                BAND_COLOUR.filled(),
            )])
            .map_err(e)?
            .label(format!("erasure band |z| < {ez}"))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], BAND_COLOUR.filled()));
    }
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (x_end, 0.0)], BLACK))
        .map_err(e)?;
    let mid = |p: &crate::report::PositionReport| p.start_s + seg / 2.0;
    let colour = |p: &crate::report::PositionReport| {
        if p.erased {
            ERASED_COLOUR
        } else if p.z > 0.0 {
            A_COLOUR
        } else {
            B_COLOUR
        }
    };
    // Stems.
    for p in &report.positions {
        chart
            .draw_series(LineSeries::new(
                [(mid(p), 0.0), (mid(p), p.z)],
                colour(p).stroke_width(2),
            ))
            .map_err(e)?;
    }
    const DOT: i32 = 5;
    chart
        .draw_series(
            report
                .positions
                .iter()
                .filter(|p| !p.erased && p.z > 0.0)
                .map(|p| Circle::new((mid(p), p.z), DOT, A_COLOUR.filled())),
        )
        .map_err(e)?
        .label("A")
        .legend(|(x, y)| Circle::new((x + 7, y), DOT, A_COLOUR.filled()));
    chart
        .draw_series(
            report
                .positions
                .iter()
                .filter(|p| !p.erased && p.z <= 0.0)
                .map(|p| Circle::new((mid(p), p.z), DOT, B_COLOUR.filled())),
        )
        .map_err(e)?
        .label("B")
        .legend(|(x, y)| Circle::new((x + 7, y), DOT, B_COLOUR.filled()));
    chart
        .draw_series(
            report
                .positions
                .iter()
                .filter(|p| p.erased)
                .map(|p| Circle::new((mid(p), p.z), DOT, ERASED_COLOUR.stroke_width(2))),
        )
        .map_err(e)?
        .label("erased")
        .legend(|(x, y)| Circle::new((x + 7, y), DOT, ERASED_COLOUR.stroke_width(2)));
    let wrong = |p: &&crate::report::PositionReport| {
        !p.erased
            && p.top_variant
                .as_deref()
                .is_some_and(|v| (v == "A") != (p.z > 0.0))
    };
    if report.positions.iter().any(|p| wrong(&p)) {
        chart
            .draw_series(
                report
                    .positions
                    .iter()
                    .filter(wrong)
                    .map(|p| Cross::new((mid(p), p.z), 9, WRONG_COLOUR.stroke_width(3))),
            )
            .map_err(e)?
            .label("differs from the top session")
            .legend(|(x, y)| Cross::new((x + 7, y), 6, WRONG_COLOUR.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT_FAMILY, 13))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Panel 2: top sessions' scores against the threshold.
fn draw_scores<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    // Accused first (all of them), then the rest of the top list.
    let mut bars: Vec<&crate::report::Scored> = report.accused.iter().collect();
    for t in &report.top {
        if !bars.iter().any(|b| b.session_id == t.session_id) {
            bars.push(t);
        }
    }
    bars.truncate(8);
    let threshold = report.calibration.threshold;
    let caption = match threshold {
        Some(t) => format!(
            "Best-scoring sessions vs the accusation threshold {t:.2} (fp {:e})",
            report.fp
        ),
        None => format!(
            "Best-scoring sessions: no score reaches fp {:e} with these positions (best possible p = {})",
            report.fp,
            fmt_p(report.calibration.best_possible)
        ),
    };
    let n = bars.len().max(1);
    let hi = bars
        .iter()
        .map(|b| b.score)
        .chain(threshold)
        .fold(1.0f64, f64::max)
        * 1.15;
    let lo = bars.iter().map(|b| b.score).fold(0.0f64, f64::min) * 1.15;
    let labels: Vec<String> = bars
        .iter()
        .map(|b| {
            let id: String = b.session_id.chars().take(10).collect();
            let acct: String = b.account.chars().take(12).collect();
            format!("{id} / {acct}")
        })
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT_FAMILY, 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((0..(n as i32 - 1).max(0)).into_segmented(), lo..hi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_desc("Tardos score")
        .x_desc("session / account")
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FONT_FAMILY, 12))
        .axis_desc_style((FONT_FAMILY, 14))
        .draw()
        .map_err(e)?;
    let accused = |id: &str| report.accused.iter().any(|a| a.session_id == id);
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let c = if accused(&b.session_id) {
                WRONG_COLOUR
            } else {
                A_COLOUR
            };
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i as i32), 0.0),
                    (SegmentValue::Exact(i as i32 + 1), b.score),
                ],
                c.mix(0.85).filled(),
            );
            r.set_margin(0, 0, 12, 12);
            r
        }))
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!("p = {}", fmt_p(b.probability)),
                (SegmentValue::CenterOf(i as i32), b.score.max(0.0)),
                (FONT_FAMILY, 12).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    ),
                ),
            )
        }))
        .map_err(e)?;
    if let Some(t) = threshold {
        chart
            .draw_series(DashedLineSeries::new(
                [
                    (SegmentValue::Exact(0), t),
                    (SegmentValue::Exact(n as i32), t),
                ],
                8,
                5,
                BLACK.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("threshold {t:.2}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], WRONG_COLOUR.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT_FAMILY, 13))
            .draw()
            .map_err(e)?;
    }
    if report.verdict == Verdict::NoAccusation && bars.is_empty() {
        area.draw(&Text::new(
            "no session registered",
            (
                area.dim_in_pixel().0 as i32 / 2 - 80,
                area.dim_in_pixel().1 as i32 / 2,
            ),
            (FONT_FAMILY, 18).into_font(),
        ))
        .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Calibration, PositionReport, RegistrationReport, SCHEMA, Scored};

    fn report() -> Report {
        let scored = |i: u32, score: f64| Scored {
            session_id: format!("s{i}"),
            account: format!("acct-{i}"),
            score,
            p_single: 0.5,
            probability: 1.0,
        };
        Report {
            schema: SCHEMA.into(),
            title: "t".into(),
            suspect: "leak.mp4".into(),
            suspect_sha256: None,
            key_version: Some(1),
            reference: "ref".into(),
            verdict: Verdict::NoAccusation,
            reason: "test".into(),
            fp: 1e-6,
            sessions: 3,
            segment_s: 2.0,
            registration: RegistrationReport {
                mode: "informed".into(),
                offset_frames: 0,
                offset_s: 0.0,
                mad: Some(1.0),
                suspect_frames: 100,
                details: serde_json::Map::new(),
            },
            calibration: Calibration {
                method: "m".into(),
                exact: true,
                positions_observed: 3,
                positions_used: 2,
                positions_erased: 1,
                erasure_z: 3.0,
                innocent_sigma: 1.4,
                threshold: Some(2.0),
                best_possible: 1e-3,
                channel: None,
            },
            accused: vec![],
            top: vec![scored(1, 1.5), scored(2, -0.5)],
            positions: [(0, 12.0), (1, -9.0), (2, 1.0)]
                .into_iter()
                .map(|(p, z)| PositionReport {
                    position: p,
                    start_s: f64::from(p) * 2.0,
                    frames: 48,
                    correlation: z / 100.0,
                    sigma0: 0.01,
                    z,
                    erased: z.abs() < 3.0,
                    top_variant: Some("A".into()),
                })
                .collect(),
        }
    }

    #[test]
    fn draws_points_bars_and_text() {
        let (w, h) = (600, 450);
        let rgb = render_rgb(&report(), (w, h)).unwrap_or_default();
        assert_eq!(rgb.len(), 3 * w as usize * h as usize);
        let px = |c: RGBColor| {
            rgb.chunks(3)
                .filter(|p| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
                .count()
        };
        assert!(px(A_COLOUR) > 20, "no A marks");
        assert!(px(B_COLOUR) > 20, "no B marks");
        assert!(
            px(WRONG_COLOUR) > 5,
            "position 1 disagrees with the top session"
        );
        // The heading (top rows) has text: dark anti-aliased glyph pixels.
        let dark = rgb[..3 * w as usize * 24]
            .chunks(3)
            .filter(|p| p.iter().all(|&v| v < 100))
            .count();
        assert!(dark > 50, "no heading text ({dark} dark pixels)");
    }

    #[test]
    fn still_panel_outlines_the_regions_left_out() {
        let mut r = report();
        r.registration.details.insert(
            "registration".into(),
            serde_json::json!({"excluded": {"regions": [[0.75, 0.05, 0.95, 0.2]]}}),
        );
        let still = Still {
            width: 64,
            height: 36,
            luma: vec![128; 64 * 36],
        };
        let (w, h) = (800, 600);
        let render = |still: Option<&Still>| {
            register_font().unwrap();
            let mut buf = vec![0u8; 3 * w * h];
            {
                let root =
                    BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
                draw_report_with_still(&r, still, &root).unwrap();
                root.present().unwrap();
            }
            buf
        };
        let count =
            |rgb: &[u8], c: (u8, u8, u8)| rgb.chunks(3).filter(|p| (p[0], p[1], p[2]) == c).count();
        let with = render(Some(&still));
        let without = render(None);
        // The frame is drawn (its grey), and the region outlined in red in the frame's
        // upper right: more red than the plot without the panel.
        assert!(count(&with, (128, 128, 128)) > count(&without, (128, 128, 128)) + 10_000);
        let red = |rgb: &[u8]| {
            rgb.chunks(3)
                .enumerate()
                .filter(|(i, p)| {
                    (p[0], p[1], p[2]) == (WRONG_COLOUR.0, WRONG_COLOUR.1, WRONG_COLOUR.2)
                        && i % w > w * 3 / 4
                        && i / w > h / 2
                })
                .count()
        };
        assert!(red(&with) > red(&without) + 100, "no outline");
    }

    #[test]
    fn refuses_bad_names_and_sizes() {
        assert!(matches!(
            write_png(&report(), Path::new("x.jpg"), SIZE),
            Err(DetectError::PlotExtension(_))
        ));
        assert!(matches!(
            render_rgb(&report(), (10, 10)),
            Err(DetectError::PlotSize(10, 10))
        ));
    }
}

//! Charts of a summary as PNG, drawn with plotters in the bundled DejaVu Sans (`assets/`), so a
//! chart looks the same on every machine and needs no system font library.
//!
//! A gap month is drawn as a grey column with no value: a month too cloudy to measure must never
//! look like a month with nothing built.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{MonthRow, SiteFigures};
use crate::error::{Error, Result};
use crate::month::Month;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family name plotters knows the bundled font by.
pub(super) const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 380);
const GAP_GREY: RGBColor = RGBColor(222, 222, 222);
const LINE: RGBColor = RGBColor(31, 78, 121);
const BAR: RGBColor = RGBColor(200, 62, 45);
/// Colours of the AOIs in the across-AOI chart, chosen to stay apart for colour-blind readers.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// Registers the bundled font once; every drawing of text goes through here first.
pub(super) fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Summary {
            what: "the bundled font assets/DejaVuSans.ttf".into(),
            reason: "cannot be parsed; restore it from the repository".into(),
        })
    }
}

pub(super) fn drawing_error(what: &str) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Summary {
        what: what.to_owned(),
        reason: format!("cannot be drawn: {reason}"),
    }
}

/// Encodes an RGB image as PNG.
pub(super) fn png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut bytes))
        .map_err(|e| drawing_error("a PNG")(e.to_string()))?;
    Ok(bytes)
}

/// Draws on a white canvas of [`SIZE`] and returns it as PNG.
fn canvas(what: &str, draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>) -> Result<Vec<u8>> {
    font()?;
    let mut buffer = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| drawing_error(what)(e.to_string()))?;
    }
    let img =
        image::RgbImage::from_raw(SIZE.0, SIZE.1, buffer).ok_or_else(|| drawing_error(what)("buffer size".into()))?;
    png(&img)
}

/// Labels every January and July (every month when the period is short), as YYYY-MM.
fn month_label(months: &[Month], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    match months.get(i as usize) {
        Some(m) if months.len() <= 12 || m.month == 1 || m.month == 7 => m.to_string(),
        _ => String::new(),
    }
}

fn axis_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0f64, f64::max);
    if max > 0.0 {
        max * 1.15
    } else {
        1.0
    }
}

/// Built-up hectares per month: points joined only between consecutive measured months, gaps grey.
pub(super) fn builtup(rows: &[MonthRow]) -> Result<Vec<u8>> {
    let what = "the built-up chart";
    let err = drawing_error(what);
    let months: Vec<Month> = rows.iter().map(|r| r.month).collect();
    let top = axis_max(rows.iter().filter_map(|r| r.builtup_ha));
    canvas(what, |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(root)
            .caption("Built-up area per month (ha)", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..rows.len() as f64 - 0.5, 0.0..top)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len().min(60))
            .x_label_formatter(&|x| month_label(&months, *x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        gap_columns(&mut chart, rows, top).map_err(|e| err(e.to_string()))?;
        // One line per run of measured months, so no line is drawn across a gap.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            match r.builtup_ha {
                Some(v) => run.push((i as f64, v)),
                None => runs.push(std::mem::take(&mut run)),
            }
        }
        runs.push(run);
        let style = LINE.stroke_width(2);
        for (k, run) in runs.into_iter().filter(|r| !r.is_empty()).enumerate() {
            let series = chart
                .draw_series(LineSeries::new(run.clone(), style))
                .map_err(|e| err(e.to_string()))?;
            if k == 0 {
                series
                    .label("built-up area, ha")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
            chart
                .draw_series(run.iter().map(|&p| Circle::new(p, 3, LINE.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        legend(&mut chart).map_err(|e| err(e.to_string()))
    })
}

/// New construction per month as bars, gaps grey (nothing can be first seen in a gap).
pub(super) fn new_construction(rows: &[MonthRow]) -> Result<Vec<u8>> {
    let what = "the new construction chart";
    let err = drawing_error(what);
    let months: Vec<Month> = rows.iter().map(|r| r.month).collect();
    let top = axis_max(rows.iter().map(|r| r.new_ha));
    canvas(what, |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(root)
            .caption("New construction by month first seen (ha)", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..rows.len() as f64 - 0.5, 0.0..top)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len().min(60))
            .x_label_formatter(&|x| month_label(&months, *x))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        gap_columns(&mut chart, rows, top).map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| r.new_ha > 0.0)
                    .map(|(i, r)| Rectangle::new([(i as f64 - 0.38, 0.0), (i as f64 + 0.38, r.new_ha)], BAR.filled())),
            )
            .map_err(|e| err(e.to_string()))?
            .label("new construction, ha")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], BAR.filled()));
        legend(&mut chart).map_err(|e| err(e.to_string()))
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn gap_columns(chart: &mut Chart<'_, '_>, rows: &[MonthRow], top: f64) -> DrawResult {
    let gaps: Vec<usize> = rows.iter().enumerate().filter(|(_, r)| r.gap).map(|(i, _)| i).collect();
    if gaps.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(
            gaps.iter()
                .map(|&i| Rectangle::new([(i as f64 - 0.5, 0.0), (i as f64 + 0.5, top)], GAP_GREY.filled())),
        )?
        .label("gap: too cloudy to measure")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], GAP_GREY.filled()));
    Ok(())
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> DrawResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font((FAMILY, 14))
        .draw()
}

/// Cumulative new construction of every AOI on one month axis, one line per AOI.
pub(super) fn cumulative(sites: &[SiteFigures]) -> Result<Vec<u8>> {
    let what = "the across-AOI chart";
    let err = drawing_error(what);
    let first = sites.iter().map(|s| s.period.from).min();
    let last = sites.iter().map(|s| s.period.to).max();
    let months = match (first, last) {
        (Some(a), Some(b)) => a.through(b),
        _ => Vec::new(),
    };
    let top = axis_max(sites.iter().map(|s| s.totals.new_ha));
    canvas(what, |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(root)
            .caption("New construction since the start of the period (ha)", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..months.len() as f64 - 0.5, 0.0..top)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(months.len().min(60))
            .x_label_formatter(&|x| month_label(&months, *x))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let Some(&start) = months.first() else {
            return Ok(());
        };
        for (k, s) in sites.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let style = colour.stroke_width(2);
            let points: Vec<(f64, f64)> = s
                .months
                .iter()
                .map(|r| (start.until(r.month) as f64, r.cumulative_new_ha))
                .collect();
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(|e| err(e.to_string()))?
                .label(s.aoi_name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        legend(&mut chart).map_err(|e| err(e.to_string()))
    })
}

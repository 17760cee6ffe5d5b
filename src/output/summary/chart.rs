//! Charts of a summary as PNG, drawn with plotters in the bundled DejaVu Sans (`assets/`), so a
//! chart looks the same on every machine and needs no system font library.
//!
//! A gap month is drawn as a grey column with no value: a month too cloudy to measure must never
//! look like a month with nothing built.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{MonthFigures, SiteFigures};
use crate::error::{Error, Result};
use crate::month::Month;

const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
/// The family name plotters knows the bundled font by.
pub(super) const FAMILY: &str = "sans-serif";
/// Pixels per layout pixel: charts are drawn at twice the size a page shows them, so they stay
/// sharp on high-density screens and in print. Every size below is in layout pixels, times `K`.
pub(super) const K: u32 = 2;
const SIZE: (u32, u32) = (960 * K, 380 * K);
/// `v` layout pixels as drawing pixels.
const fn px(v: i32) -> i32 {
    v * K as i32
}
pub(super) const GAP_GREY: RGBColor = RGBColor(222, 222, 222);
/// A month too cloudy to measure the whole site but with some of it seen clearly: new construction
/// whose own pixels were seen is dated there.
pub(super) const PARTLY_GREY: RGBColor = RGBColor(240, 240, 240);
const LINE: RGBColor = RGBColor(31, 78, 121);
const BAR: RGBColor = RGBColor(200, 62, 45);
/// Provisional bars: the new construction colour, lighter.
const BAR_LIGHT: RGBColor = RGBColor(240, 170, 160);
/// The raw monthly measurement's dots.
const RAW: RGBColor = RGBColor(120, 120, 120);
/// The stable estimate's uncertainty band.
const BAND: RGBColor = RGBColor(205, 220, 235);
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

/// `img` enlarged `k` times, each pixel a `k` x `k` square: what `imageops::resize` with
/// `FilterType::Nearest` draws for a whole factor, without its per-pixel filter arithmetic (a fifth
/// of a warm scan's drawing time went into it).
pub(super) fn enlarge(img: &image::RgbImage, k: u32) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let k = k.max(1) as usize;
    let row_bytes = w as usize * 3 * k;
    let mut out = Vec::with_capacity(row_bytes * h as usize * k);
    for row in img.as_raw().chunks_exact(w as usize * 3) {
        let start = out.len();
        for px in row.chunks_exact(3) {
            for _ in 0..k {
                out.extend_from_slice(px);
            }
        }
        for _ in 1..k {
            out.extend_from_within(start..start + row_bytes);
        }
    }
    image::RgbImage::from_raw(w * k as u32, h * k as u32, out).expect("k x k copies of every pixel fill the image")
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

/// The y range of a chart: from zero, with room above the largest value. An axis cut above zero
/// makes a swing of a few hectares on a large built-up area look like a doubling.
fn bar_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let max = values.fold(0.0f64, f64::max);
    0.0..if max > 0.0 { max * 1.12 } else { 1.0 }
}

/// The y range of the built-up chart: from zero to above the highest estimate or measurement.
pub(super) fn builtup_range(rows: &[MonthFigures]) -> std::ops::Range<f64> {
    bar_range(
        rows.iter()
            .filter_map(|r| r.builtup_ha.map(|v| v + r.builtup_uncertainty_ha))
            .chain(rows.iter().filter_map(|r| r.builtup_measured_ha)),
    )
}

fn mesh(chart: &mut Chart<'_, '_>, months: &[Month], decimals: usize) -> DrawResult {
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .y_labels(8)
        .x_labels(months.len().min(60))
        .x_label_formatter(&|x| month_label(months, *x))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .label_style((FAMILY, px(14)))
        .draw()
}

/// Built-up hectares per month: the stable estimate as a line with its uncertainty band, the raw
/// measurement of each measured month as dots, gaps grey.
pub(super) fn builtup(rows: &[MonthFigures]) -> Result<Vec<u8>> {
    let what = "the built-up chart";
    let err = drawing_error(what);
    let months: Vec<Month> = rows.iter().map(|r| r.month).collect();
    let y = builtup_range(rows);
    let legend: Vec<(Mark, String)> = [
        (Mark::Line(LINE), "built-up, stable estimate, ha".to_owned()),
        (Mark::Block(BAND), "its uncertainty".to_owned()),
        (Mark::Line(RAW), "measured in the month's clear view".to_owned()),
    ]
    .into_iter()
    .chain(gap_legend(rows, "gap: too cloudy to measure the site"))
    .collect();
    canvas(what, |root| {
        let body =
            layout(root, "Built-up area per month (ha, axis from 0)", &legend).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(px(12))
            .x_label_area_size(px(30))
            .y_label_area_size(px(56))
            .build_cartesian_2d(-0.5..rows.len() as f64 - 0.5, y.clone())
            .map_err(|e| err(e.to_string()))?;
        gap_columns(&mut chart, rows, y.clone(), |_| GAP_GREY).map_err(|e| err(e.to_string()))?;
        mesh(&mut chart, &months, if y.end - y.start < 10.0 { 1 } else { 0 }).map_err(|e| err(e.to_string()))?;
        let stable: Vec<(f64, f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.builtup_ha.map(|v| (i as f64, v, r.builtup_uncertainty_ha)))
            .collect();
        chart
            .draw_series(
                stable
                    .iter()
                    .map(|&(x, v, u)| Rectangle::new([(x - 0.5, (v - u).max(0.0)), (x + 0.5, v + u)], BAND.filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(
                stable.iter().map(|&(x, v, _)| (x, v)),
                LINE.stroke_width(2 * K),
            ))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                r.builtup_measured_ha
                    .map(|v| Circle::new((i as f64, v), px(3), RAW.filled()))
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// New construction per month as bars. A month in which nothing was seen clearly is grey (nothing
/// can be first seen there); a month too cloudy to measure the whole site is light grey, and can
/// hold bars: a polygon is dated by the first month its own pixels were seen clearly, whatever the
/// rest of the site looked like.
pub(super) fn new_construction(rows: &[MonthFigures]) -> Result<Vec<u8>> {
    let what = "the new construction chart";
    let err = drawing_error(what);
    let months: Vec<Month> = rows.iter().map(|r| r.month).collect();
    let y = bar_range(rows.iter().map(|r| r.new_ha + r.provisional_ha));
    let legend: Vec<(Mark, String)> = [
        (Mark::Block(BAR), "confirmed, ha".to_owned()),
        (Mark::Block(BAR_LIGHT), "provisional, ha".to_owned()),
    ]
    .into_iter()
    .chain(
        rows.iter()
            .any(|r| r.gap && r.clear_fraction > 0.0)
            .then(|| (Mark::Block(PARTLY_GREY), "site partly seen".to_owned())),
    )
    .chain(
        rows.iter()
            .any(|r| r.clear_fraction == 0.0)
            .then(|| (Mark::Block(GAP_GREY), "nothing seen clearly".to_owned())),
    )
    .collect();
    canvas(what, |root| {
        let body =
            layout(root, "New construction by month first seen (ha)", &legend).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(px(12))
            .x_label_area_size(px(30))
            .y_label_area_size(px(56))
            .build_cartesian_2d(-0.5..rows.len() as f64 - 0.5, y.clone())
            .map_err(|e| err(e.to_string()))?;
        gap_columns(&mut chart, rows, y.clone(), |r| {
            if r.clear_fraction > 0.0 {
                PARTLY_GREY
            } else {
                GAP_GREY
            }
        })
        .map_err(|e| err(e.to_string()))?;
        mesh(&mut chart, &months, 1).map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| r.new_ha > 0.0)
                    .map(|(i, r)| Rectangle::new([(i as f64 - 0.38, 0.0), (i as f64 + 0.38, r.new_ha)], BAR.filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| r.provisional_ha > 0.0)
                    .map(|(i, r)| {
                        Rectangle::new(
                            [
                                (i as f64 - 0.38, r.new_ha),
                                (i as f64 + 0.38, r.new_ha + r.provisional_ha),
                            ],
                            BAR_LIGHT.filled(),
                        )
                    }),
            )
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type DrawResult<T = ()> =
    std::result::Result<T, DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// A column behind every gap month, in the colour `shade` gives it.
fn gap_columns(
    chart: &mut Chart<'_, '_>,
    rows: &[MonthFigures],
    y: std::ops::Range<f64>,
    shade: impl Fn(&MonthFigures) -> RGBColor,
) -> DrawResult {
    let gaps: Vec<(usize, RGBColor)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.gap)
        .map(|(i, r)| (i, shade(r)))
        .collect();
    if gaps.is_empty() {
        return Ok(());
    }
    chart.draw_series(
        gaps.iter()
            .map(|&(i, c)| Rectangle::new([(i as f64 - 0.5, y.start), (i as f64 + 0.5, y.end)], c.filled())),
    )?;
    Ok(())
}

/// How a series looks in the legend.
#[derive(Clone, Copy)]
enum Mark {
    Line(RGBColor),
    Block(RGBColor),
}

/// The top of a chart: its title on the left and its legend on the right, or, when the legend
/// does not fit beside the title, on rows of its own below it (one AOI per entry can make it long).
/// Drawn outside the plotting area so the legend never hides a bar or a gap. Returns its height.
fn header(area: &DrawingArea<BitMapBackend<'_>, Shift>, title: &str, legend: &[(Mark, String)]) -> DrawResult<u32> {
    const ROW: i32 = px(24);
    const MARK: i32 = px(24);
    const SPACE: i32 = px(18);
    let title_font: TextStyle<'_> = (FAMILY, px(21)).into_font().into();
    let font: TextStyle<'_> = (FAMILY, px(14)).into_font().into();
    let widths = legend
        .iter()
        .map(|(_, label)| area.estimate_text_size(label, &font).map(|(w, _)| MARK + w as i32))
        .collect::<DrawResult<Vec<i32>>>()?;
    let (title_width, _) = area.estimate_text_size(title, &title_font)?;
    let (left, right) = (px(14), area.dim_in_pixel().0 as i32 - px(14));
    let beside: i32 = widths.iter().map(|w| w + SPACE).sum();
    area.draw(&Text::new(title.to_owned(), (left, px(12)), title_font.clone()))?;
    // Each entry's top-left corner: right-aligned beside the title, or flowing in rows below it.
    let mut places = Vec::with_capacity(legend.len());
    if left + title_width as i32 + 2 * SPACE + beside <= right {
        let mut x = right + SPACE;
        for w in widths.iter().rev() {
            x -= w + SPACE;
            places.push((x, px(16)));
        }
        places.reverse();
    } else {
        let (mut x, mut y) = (left, px(16) + ROW + px(6));
        for &w in &widths {
            if x > left && x + w > right {
                (x, y) = (left, y + ROW);
            }
            places.push((x, y));
            x += w + SPACE;
        }
    }
    for ((mark, label), &(x, y)) in legend.iter().zip(&places) {
        match *mark {
            Mark::Line(c) => area.draw(&PathElement::new(
                vec![(x, y + px(7)), (x + px(18), y + px(7))],
                c.stroke_width(3 * K),
            ))?,
            Mark::Block(c) => area.draw(&Rectangle::new([(x, y), (x + px(18), y + px(14))], c.filled()))?,
        }
        area.draw(&Text::new(label.clone(), (x + MARK, y), font.clone()))?;
    }
    let bottom = places.iter().map(|&(_, y)| y + ROW).max().unwrap_or(0);
    Ok(bottom.max(px(44)) as u32 + K * 4)
}

/// Fills the canvas white, draws the header and returns the area left for the chart.
fn layout<'b>(
    root: &DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    legend: &[(Mark, String)],
) -> DrawResult<DrawingArea<BitMapBackend<'b>, Shift>> {
    root.fill(&WHITE)?;
    let height = header(root, title, legend)?;
    Ok(root.split_vertically(height).1)
}

fn gap_legend(rows: &[MonthFigures], label: &str) -> Option<(Mark, String)> {
    rows.iter()
        .any(|r| r.gap)
        .then(|| (Mark::Block(GAP_GREY), label.to_owned()))
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
    let Some(&start) = months.first() else {
        return Err(err("no AOI to draw".into()));
    };
    let y = bar_range(sites.iter().map(|s| s.totals.new_ha));
    let legend: Vec<(Mark, String)> = sites
        .iter()
        .enumerate()
        .map(|(k, s)| (Mark::Line(PALETTE[k % PALETTE.len()]), s.aoi_name.clone()))
        .collect();
    canvas(what, |root| {
        let body = layout(root, "New construction since the start (ha)", &legend).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(px(12))
            .x_label_area_size(px(30))
            .y_label_area_size(px(56))
            .build_cartesian_2d(-0.5..months.len() as f64 - 0.5, y)
            .map_err(|e| err(e.to_string()))?;
        mesh(&mut chart, &months, 1).map_err(|e| err(e.to_string()))?;
        for (k, s) in sites.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let points: Vec<(f64, f64)> = s
                .months
                .iter()
                .map(|r| (start.until(r.month) as f64, r.cumulative_new_ha))
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2 * K)))
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}

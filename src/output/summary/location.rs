//! The location map of a summary: every polygon of the report, numbered as in the page's table,
//! over the AOI outline and the recent composite, north up, with a scale bar.
//!
//! The scan hands over the composite already as a true-colour picture and the outlines in its
//! pixel coordinates ([`LocationMap`]); this module only draws. Enlarging is nearest neighbour,
//! like the quicklooks: smoothing would invent detail the 10 m pixels do not hold.

use image::{imageops, RgbImage};
use plotters::prelude::*;

use super::chart::{drawing_error, font, FAMILY};
use super::SiteFigures;
use crate::error::{Error, Result};

/// What a location map is drawn from.
#[derive(Debug, Clone)]
pub struct LocationMap {
    /// The recent composite in true colour, one picture pixel per grid pixel, north up.
    pub composite: RgbImage,
    /// Metres on the ground per picture pixel.
    pub metres_per_pixel: f64,
    /// The AOI's rings in picture pixel coordinates: x right, y down, (0, 0) the top-left corner of
    /// the top-left pixel.
    pub aoi: Vec<Vec<(f64, f64)>>,
    /// Each polygon's report id and exterior ring, in the same coordinates.
    pub polygons: Vec<(String, Vec<(f64, f64)>)>,
}

/// The longer side of the drawn map, pixels (shown at half that on a page, like the charts).
const SIDE: f64 = 1600.0;
/// Confirmed polygons: the quicklooks' yellow, on a dark halo.
const CONFIRMED: RGBColor = RGBColor(255, 225, 0);
/// Provisional polygons.
const PROVISIONAL: RGBColor = RGBColor(255, 140, 0);
const HALO: RGBColor = RGBColor(20, 20, 20);

/// Scale of the drawing: picture pixels to drawn pixels.
fn factor(map: &LocationMap) -> f64 {
    let (w, h) = map.composite.dimensions();
    let s = SIDE / f64::from(w.max(h).max(1));
    // Whole factors when enlarging, so every 10 m pixel is the same size on screen.
    if s >= 1.0 {
        s.floor()
    } else {
        s
    }
}

/// The scale bar's length on the ground, m: the largest round length under a fifth of the map.
fn bar_metres(map: &LocationMap) -> f64 {
    let width_m = f64::from(map.composite.width()) * map.metres_per_pixel;
    [
        50_000.0, 20_000.0, 10_000.0, 5_000.0, 2_000.0, 1_000.0, 500.0, 200.0, 100.0,
    ]
    .into_iter()
    .find(|&m| m <= width_m / 5.0)
    .unwrap_or(100.0)
}

/// The scale bar's length in words, for the caption.
pub(super) fn scale_bar_words(map: &LocationMap) -> String {
    let m = bar_metres(map);
    if m >= 1000.0 {
        format!("{} km", m / 1000.0)
    } else {
        format!("{m} m")
    }
}

/// Draws the map: the composite enlarged, the AOI in white, each polygon outlined and numbered by
/// its place in `f.polygons` (largest first, as the page's table numbers them).
pub(super) fn render(map: &LocationMap, f: &SiteFigures) -> Result<RgbImage> {
    let what = "the location map";
    let (w, h) = map.composite.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Summary {
            what: what.into(),
            reason: "its composite is empty; the scan's grid has no pixel".into(),
        });
    }
    font()?;
    let s = factor(map);
    let (width, height) = (
        (f64::from(w) * s).round().max(1.0) as u32,
        (f64::from(h) * s).round().max(1.0) as u32,
    );
    let mut raw = if s >= 1.0 {
        super::chart::enlarge(&map.composite, s as u32)
    } else {
        imageops::resize(&map.composite, width, height, imageops::FilterType::Triangle)
    }
    .into_raw();
    let at = |(x, y): (f64, f64)| ((x * s).round() as i32, (y * s).round() as i32);
    {
        let err = drawing_error(what);
        let root = BitMapBackend::with_buffer(&mut raw, (width, height)).into_drawing_area();
        for ring in &map.aoi {
            let path: Vec<(i32, i32)> = ring.iter().chain(ring.first()).copied().map(at).collect();
            root.draw(&PathElement::new(path.clone(), HALO.stroke_width(5)))
                .map_err(|e| err(e.to_string()))?;
            root.draw(&PathElement::new(path, WHITE.stroke_width(3)))
                .map_err(|e| err(e.to_string()))?;
        }
        let label_font = (FAMILY, 30).into_font().color(&WHITE);
        for (id, ring) in &map.polygons {
            let Some(number) = f.polygons.iter().position(|p| &p.id == id) else {
                continue;
            };
            let colour = if f.polygons[number].provisional {
                PROVISIONAL
            } else {
                CONFIRMED
            };
            let path: Vec<(i32, i32)> = ring.iter().chain(ring.first()).copied().map(at).collect();
            root.draw(&PathElement::new(path.clone(), HALO.stroke_width(6)))
                .map_err(|e| err(e.to_string()))?;
            root.draw(&PathElement::new(path.clone(), colour.stroke_width(3)))
                .map_err(|e| err(e.to_string()))?;
            // The number just above the polygon's top-right corner, on a dark box.
            let (x, y) = (
                path.iter().map(|p| p.0).max().unwrap_or(0),
                path.iter().map(|p| p.1).min().unwrap_or(0),
            );
            let text = (number + 1).to_string();
            let (tw, th) = root
                .estimate_text_size(&text, &label_font)
                .map_err(|e| err(e.to_string()))?;
            let (bx, by) = ((x + 2).min(width as i32 - tw as i32 - 8), (y - th as i32 - 10).max(0));
            root.draw(&Rectangle::new(
                [(bx, by), (bx + tw as i32 + 8, by + th as i32 + 6)],
                HALO.mix(0.75).filled(),
            ))
            .map_err(|e| err(e.to_string()))?;
            root.draw(&Text::new(text, (bx + 4, by + 3), label_font.clone()))
                .map_err(|e| err(e.to_string()))?;
        }
        scale_bar(&root, map, s, height).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    RgbImage::from_raw(width, height, raw).ok_or_else(|| drawing_error(what)("buffer size".into()))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A white bar with its length, bottom left, on a dark box.
fn scale_bar(
    root: &Area<'_>,
    map: &LocationMap,
    s: f64,
    height: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    let metres = bar_metres(map);
    let length = (metres / map.metres_per_pixel * s).round() as i32;
    let (x, y) = (20, height as i32 - 30);
    let font = (FAMILY, 26).into_font().color(&WHITE);
    let words = scale_bar_words(map);
    let (tw, th) = root.estimate_text_size(&words, &font)?;
    root.draw(&Rectangle::new(
        [(x - 10, y - th as i32 - 18), (x + length.max(tw as i32) + 10, y + 14)],
        HALO.mix(0.7).filled(),
    ))?;
    root.draw(&Rectangle::new([(x, y), (x + length, y + 6)], WHITE.filled()))?;
    root.draw(&Text::new(words, (x, y - th as i32 - 8), font))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(width: u32, height: u32) -> LocationMap {
        LocationMap {
            composite: RgbImage::from_pixel(width, height, image::Rgb([40, 110, 40])),
            metres_per_pixel: 10.0,
            aoi: vec![vec![
                (1.0, 1.0),
                (width as f64 - 1.0, 1.0),
                (width as f64 - 1.0, height as f64 - 1.0),
            ]],
            polygons: Vec::new(),
        }
    }

    #[test]
    fn small_grids_are_enlarged_by_a_whole_factor_and_large_ones_shrunk_to_the_side() {
        assert_eq!(factor(&map(480, 440)), 3.0);
        assert_eq!(factor(&map(100, 50)), 16.0);
        let big = factor(&map(3200, 1000));
        assert!((big - 0.5).abs() < 1e-12, "{big}");
    }

    #[test]
    fn the_scale_bar_is_a_round_length_under_a_fifth_of_the_width() {
        // 480 pixels of 10 m: 4.8 km wide, so a fifth is 960 m: the bar is 500 m.
        assert_eq!(bar_metres(&map(480, 440)), 500.0);
        assert_eq!(scale_bar_words(&map(480, 440)), "500 m");
        // 50 km wide: 10 km.
        assert_eq!(scale_bar_words(&map(5000, 100)), "10 km");
    }
}

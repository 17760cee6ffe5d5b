//! Before | after pictures of one new polygon: the scan's two chips side by side, enlarged so a
//! 10 m pixel is visible, the detected outline drawn on both, each captioned with its month, and
//! the polygon's id and month of first detection above them, so a picture forwarded on its own
//! still says what and when. The scan makes one for every polygon of the report.
//!
//! Enlarging is nearest neighbour on purpose: smoothing would invent detail the 10 m pixels do not
//! hold.

use image::{imageops, RgbImage};
use plotters::prelude::*;

use super::chart::{drawing_error, font, FAMILY};
use super::Quicklook;
use crate::error::{Error, Result};
use crate::month::Month;

/// Quicklook stretch: reflectance at or above this is white; a gamma of 1.5 lifts the dark
/// vegetation. One fixed stretch for every chip, before and after alike, so a change of colour
/// is a change on the ground and never an artefact of contrast.
pub(crate) const QUICKLOOK_WHITE: f32 = 0.3;

/// Gamma of the quicklook stretch.
const GAMMA: f32 = 1.5;

/// A month makes a good "before" or "after" when at least this share of the chip was seen clearly.
const CLEAR_ENOUGH: f64 = 0.95;

/// Quicklook colour of pixels not seen clearly in the chip's month.
const UNSEEN: [u8; 3] = [128, 128, 128];

/// The scan's window around one new polygon: true-colour reflectance for every month.
#[derive(Debug, Clone)]
pub(crate) struct Chip {
    /// The polygon's id in the report.
    pub(crate) id: String,
    /// Its area, ha.
    pub(crate) area_ha: f64,
    /// Month in which it was first seen.
    pub(crate) first_detected: Month,
    /// The months of the period, in order.
    pub(crate) months: Vec<Month>,
    /// Per month: red, green, blue reflectance per chip pixel (row-major, NaN where not seen
    /// clearly), or None for a month without scenes (and for the months a scan's chip does not
    /// show: it composites only the two [`pick_months`] picks).
    pub(crate) rgb: Vec<Option<Vec<[f32; 3]>>>,
    /// Chip size in pixels.
    pub(crate) width: usize,
    /// Chip height in pixels.
    pub(crate) height: usize,
    /// The polygon's exterior ring in chip pixel coordinates.
    pub(crate) outline: Vec<(f64, f64)>,
}

/// The quicklook of a chip, or None when no month before or after the detection was seen.
///
/// "Before" is the last month before the polygon's first detection in which at least 95 % of the
/// chip was seen clearly (else the clearest such month); "after" is the last month of the period
/// meeting the same test from the first detection on (the finished state). Both use the fixed
/// stretch of [`QUICKLOOK_WHITE`]; pixels not seen clearly that month are grey.
pub(crate) fn quicklook(chip: &Chip) -> Option<Quicklook> {
    let clear_share: Vec<f64> = chip
        .rgb
        .iter()
        .map(|month| {
            month.as_ref().map_or(0.0, |px| {
                px.iter().filter(|p| !p[0].is_nan()).count() as f64 / px.len().max(1) as f64
            })
        })
        .collect();
    let (before, after) = pick_months(&chip.months, chip.first_detected, &clear_share)?;
    let image_of = |m: usize| {
        let px = chip.rgb[m].as_ref().expect("picked months have composites");
        RgbImage::from_fn(chip.width as u32, chip.height as u32, |x, y| {
            image::Rgb(stretch(px[y as usize * chip.width + x as usize]))
        })
    };
    Some(Quicklook {
        id: chip.id.clone(),
        area_ha: chip.area_ha,
        first_detected: chip.first_detected,
        before_month: chip.months[before],
        after_month: chip.months[after],
        before: image_of(before),
        after: image_of(after),
        outline: chip.outline.clone(),
    })
}

/// The months a quicklook shows, as indices into `months`, "before" and "after" as [`quicklook`]
/// says, from each month's share of the chip seen clearly (0 for a month without scenes); None
/// when no month before or after `first_detected` was seen. A chip whose other months are left
/// out (None) shows the same two months.
pub(crate) fn pick_months(months: &[Month], first_detected: Month, clear_share: &[f64]) -> Option<(usize, usize)> {
    let pick = |range: std::ops::Range<usize>| -> Option<usize> {
        let shares: Vec<(usize, f64)> = range.map(|m| (m, clear_share[m])).filter(|(_, s)| *s > 0.0).collect();
        shares
            .iter()
            .rev()
            .find(|(_, s)| *s >= CLEAR_ENOUGH)
            .or_else(|| shares.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
            .map(|(m, _)| *m)
    };
    let first = months.iter().position(|&m| m == first_detected)?;
    Some((pick(0..first)?, pick(first..months.len())?))
}

/// A true-colour picture of a composite given as red, green and blue reflectance x 10000 per pixel
/// (row-major, `width` pixels a row; 0 = never seen clearly, drawn grey), with the quicklooks' fixed
/// stretch.
pub(crate) fn true_colour(bands: [&[u16]; 3], width: usize, height: usize) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let p = y as usize * width + x as usize;
        let v = bands.map(|b| match b.get(p) {
            Some(&v) if v > 0 => f32::from(v) / 10_000.0,
            _ => f32::NAN,
        });
        image::Rgb(stretch(v))
    })
}

/// One quicklook pixel: reflectance to 8 bits with the fixed stretch of [`QUICKLOOK_WHITE`] and a
/// gamma of [`GAMMA`]; NaN (not seen clearly) is [`UNSEEN`] grey.
fn stretch(p: [f32; 3]) -> [u8; 3] {
    if p.iter().any(|v| v.is_nan()) {
        return UNSEEN;
    }
    p.map(|v| ((v / QUICKLOOK_WHITE).clamp(0.0, 1.0).powf(1.0 / GAMMA) * 255.0).round() as u8)
}

/// Smallest side, in screen pixels, a chip is enlarged to (by a whole factor).
pub(super) const MIN_SIDE: u32 = 256;
const MARGIN: u32 = 12;
/// Height of each caption row: the polygon and its first month, then each chip's month.
const CAPTION: u32 = 30;
/// Yellow on a dark halo stands out over roofs, fields, water and cloud alike.
const OUTLINE: RGBColor = RGBColor(255, 225, 0);
const HALO: RGBColor = RGBColor(20, 20, 20);

/// The whole factor that brings the chip's longer side to at least [`MIN_SIDE`].
pub(super) fn scale(width: u32, height: u32) -> u32 {
    let side = width.max(height).max(1);
    MIN_SIDE.div_ceil(side).max(1)
}

/// Draws a quicklook: before | after, enlarged, outlined and captioned.
pub(super) fn render(q: &Quicklook) -> Result<RgbImage> {
    let what = format!("the quicklook of {}", q.id);
    let (w, h) = q.before.dimensions();
    if q.after.dimensions() != (w, h) || w == 0 || h == 0 {
        return Err(Error::Summary {
            what,
            reason: format!(
                "its before chip is {w}x{h} pixels and its after chip {}x{}; both must be the same, non-empty window",
                q.after.width(),
                q.after.height()
            ),
        });
    }
    font()?;
    let k = scale(w, h);
    let (pw, ph) = (w * k, h * k);
    let width = 2 * pw + 3 * MARGIN;
    let height = 2 * CAPTION + ph + 2 * MARGIN;
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let left = (MARGIN, MARGIN + 2 * CAPTION);
    let right = (2 * MARGIN + pw, MARGIN + 2 * CAPTION);
    for (chip, (x, y)) in [(&q.before, left), (&q.after, right)] {
        let big = super::chart::enlarge(chip, k);
        imageops::replace(&mut canvas, &big, i64::from(x), i64::from(y));
    }
    let mut raw = canvas.into_raw();
    {
        let err = drawing_error(&what);
        let root = BitMapBackend::with_buffer(&mut raw, (width, height)).into_drawing_area();
        let font = (FAMILY, 18).into_font().color(&BLACK);
        root.draw(&Text::new(
            format!("{}: {:.2} ha, first seen {}", q.id, q.area_ha, q.first_detected),
            (MARGIN as i32, MARGIN as i32 / 2 + 4),
            (FAMILY, 20).into_font().color(&BLACK),
        ))
        .map_err(|e| err(e.to_string()))?;
        for ((x, y), text) in [
            (left, format!("before: {}", q.before_month)),
            (right, format!("after: {}", q.after_month)),
        ] {
            let at = (x as i32, (y - CAPTION + 4) as i32);
            root.draw(&Text::new(text, at, font.clone()))
                .map_err(|e| err(e.to_string()))?;
            let ring: Vec<(i32, i32)> = q
                .outline
                .iter()
                .chain(q.outline.first())
                .map(|&(px, py)| {
                    (
                        x as i32 + (px * f64::from(k)).round() as i32,
                        y as i32 + (py * f64::from(k)).round() as i32,
                    )
                })
                .collect();
            root.draw(&PathElement::new(ring.clone(), HALO.stroke_width(4)))
                .map_err(|e| err(e.to_string()))?;
            root.draw(&PathElement::new(ring, OUTLINE.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    RgbImage::from_raw(width, height, raw).ok_or_else(|| drawing_error(&what)("buffer size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quicklook_stretch_is_fixed_white_at_quicklook_white_with_gamma_1_5() {
        assert_eq!(QUICKLOOK_WHITE, 0.3);
        // Black, white at 0.3 and above (clipped), negative reflectance clipped to black.
        assert_eq!(stretch([0.0, 0.3, 0.9]), [0, 255, 255]);
        assert_eq!(stretch([-0.01, 0.0, 0.0]), [0, 0, 0]);
        // Gamma 1.5 lifts the dark: an eighth of white is a quarter of 255 (0.125^(1/1.5) = 0.25),
        // a linear stretch would give 32.
        assert_eq!(stretch([0.0375, 0.0375, 0.0375]), [64, 64, 64]);
        // 0.15 (half of white): 0.5^(2/3) = 0.63 -> 161.
        assert_eq!(stretch([0.15, 0.0, 0.0])[0], 161);
        // Not seen clearly: grey, whatever the other bands hold.
        assert_eq!(stretch([f32::NAN, 0.1, 0.1]), UNSEEN);
    }
}

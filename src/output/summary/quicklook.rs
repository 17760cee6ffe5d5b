//! Before | after pictures of one new polygon: the scan's two chips side by side, enlarged so a
//! 10 m pixel is visible, the detected outline drawn on both, each captioned with its month.
//!
//! Enlarging is nearest neighbour on purpose: smoothing would invent detail the 10 m pixels do not
//! hold.

use image::{imageops, RgbImage};
use plotters::prelude::*;

use super::chart::{drawing_error, font, FAMILY};
use super::Quicklook;
use crate::error::{Error, Result};

/// Smallest side, in screen pixels, a chip is enlarged to (by a whole factor).
pub(super) const MIN_SIDE: u32 = 256;
const MARGIN: u32 = 12;
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
    let height = CAPTION + ph + 2 * MARGIN;
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let left = (MARGIN, MARGIN + CAPTION);
    let right = (2 * MARGIN + pw, MARGIN + CAPTION);
    for (chip, (x, y)) in [(&q.before, left), (&q.after, right)] {
        let big = imageops::resize(chip, pw, ph, imageops::FilterType::Nearest);
        imageops::replace(&mut canvas, &big, i64::from(x), i64::from(y));
    }
    let mut raw = canvas.into_raw();
    {
        let err = drawing_error(&what);
        let root = BitMapBackend::with_buffer(&mut raw, (width, height)).into_drawing_area();
        let font = (FAMILY, 18).into_font().color(&BLACK);
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

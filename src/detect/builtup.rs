//! Built-up: a score per pixel and month, and the persistent step in it (up for construction,
//! down for demolition: see `kernel::built_change`).
//!
//! Pure functions over numbers; this module reads nothing and knows nothing of files or scenes.
//!
//! **Built-up score.** New compound buildings are large metal or concrete roofs. Four facts from the
//! bands separate them from what surrounds them, each turned into a soft 0..1 membership with a
//! logistic curve, and the score is their product:
//! - not vegetation: NDVI = (N-R)/(N+R) below about 0.45 (blue-painted metal roofs reach 0.3);
//! - not water: MNDWI = (G-S1)/(G+S1) below about 0.25;
//! - spectrally flat, not red: blue/red above about 0.7 (bare laterite soil, cleared sites and
//!   harvested fields are red, blue/red ~0.45; grey and blue roofs 0.9-1.7);
//! - bright: mean visible reflectance above about 0.10 (asphalt, shade and burnt ground are dark).
//!
//! **Step.** A pixel is new construction when its monthly score series, gaps skipped, is best
//! split into a low part followed by a high part: at least `min_before` clear months mostly low,
//! then at least `min_after` clear months mostly high (a fraction `persistence` of each side on
//! the right side of `threshold`), and a mean rise of at least `min_step`. One bright month (a
//! cloud edge the mask missed) is not a step; a roof that stays is. Gaps (monsoon months with no
//! clear view) are missing data, never low or high, so the month reported is the first clear
//! month after the change.

use serde::{Deserialize, Serialize};

/// Parameters of the change decision. Each appears in the report's provenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectParams {
    /// Score above which a month counts as built-up.
    pub threshold: f32,
    /// Smallest rise of the mean score from before to after.
    pub min_step: f32,
    /// Clear months needed before the step.
    pub min_before: usize,
    /// Clear months needed after the step, the first included.
    pub min_after: usize,
    /// Fraction of the months on each side that must agree with that side.
    pub persistence: f32,
    /// Spectral change: a changed region is made of pixels whose smoothed change magnitude is at
    /// least this (fitted on OSCD, see the README).
    pub change_low: f32,
    /// Spectral change: ... and holds at least one pixel at least this strong (fitted on OSCD).
    pub change_high: f32,
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams {
            threshold: 0.5,
            min_step: 0.4,
            min_before: 2,
            min_after: 2,
            persistence: 0.8,
            change_low: 1.6,
            change_high: 3.2,
        }
    }
}

fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn normalized_difference(a: f32, b: f32) -> f32 {
    let s = a + b;
    if s.abs() < 1e-6 {
        0.0
    } else {
        (a - b) / s
    }
}

/// Surface reflectances (0..1) of one pixel in the six bands the score uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reflectance {
    /// B02.
    pub blue: f32,
    /// B03.
    pub green: f32,
    /// B04.
    pub red: f32,
    /// B08.
    pub nir: f32,
    /// B11.
    pub swir16: f32,
    /// B12.
    pub swir22: f32,
}

/// The built-up score in 0..1 (see the module documentation); NaN in gives NaN out.
pub(crate) fn builtup_score(r: Reflectance) -> f32 {
    let ndvi = normalized_difference(r.nir, r.red);
    let mndwi = normalized_difference(r.green, r.swir16);
    let flat = r.blue / r.red.max(1e-3);
    let visible = (r.blue + r.green + r.red) / 3.0;
    logistic((0.45 - ndvi) / 0.06)
        * logistic((0.25 - mndwi) / 0.08)
        * logistic((flat - 0.7) / 0.08)
        * logistic((visible - 0.10) / 0.02)
}

/// The built-up score of every pixel of a composite, shape (6 bands, pixels) in the order blue,
/// green, red, nir, swir16, swir22; NaN where the composite is a gap.
pub fn scores(bands: ndarray::ArrayView2<f32>) -> Vec<f32> {
    bands
        .columns()
        .into_iter()
        .map(|b| {
            if b[0].is_nan() {
                f32::NAN
            } else {
                builtup_score(Reflectance {
                    blue: b[0],
                    green: b[1],
                    red: b[2],
                    nir: b[3],
                    swir16: b[4],
                    swir22: b[5],
                })
            }
        })
        .collect()
}

/// A detected step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Index into the series of the first clear month after the step.
    pub index: usize,
    /// 0..1: how well supported the step is (see [`step`]).
    pub confidence: f32,
    /// Clear months before the step.
    pub n_before: usize,
    /// Clear months from the step on.
    pub n_after: usize,
    /// Mean score before.
    pub mean_before: f32,
    /// Mean score after.
    pub mean_after: f32,
}

/// Finds a persistent step up in a monthly score series (NaN = gap), or None.
///
/// Of all splits with enough clear months on both sides, the one with the largest rise weighted by
/// `sqrt(n_before * n_after / n)` (the two-sample statistic, so a split is not chosen for one lone
/// month) is taken; it must then pass the persistence and rise tests.
///
/// Confidence = `support * agreement * margin`, each in 0..1: `support` grows with the clear months
/// on each side (full at 3 before and 4 after), `agreement` is the product of the two sides'
/// agreeing fractions, `margin` maps a rise from `min_step` to 1.0 onto 0.5..1.
pub fn step(series: &[f32], p: &DetectParams) -> Option<Step> {
    let clear: Vec<(usize, f32)> = series
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .collect();
    let n = clear.len();
    if n < p.min_before + p.min_after {
        return None;
    }
    let total: f32 = clear.iter().map(|(_, v)| v).sum();
    let mut before_sum = 0.0;
    let mut best: Option<(f32, usize)> = None;
    for k in 1..n {
        before_sum += clear[k - 1].1;
        if k < p.min_before || n - k < p.min_after {
            continue;
        }
        let (nb, na) = (k as f32, (n - k) as f32);
        let rise = (total - before_sum) / na - before_sum / nb;
        let stat = rise * (nb * na / n as f32).sqrt();
        if best.is_none_or(|(s, _)| stat > s) {
            best = Some((stat, k));
        }
    }
    let (_, k) = best?;
    let (before, after) = clear.split_at(k);
    let mean = |s: &[(usize, f32)]| s.iter().map(|(_, v)| v).sum::<f32>() / s.len() as f32;
    let (mean_before, mean_after) = (mean(before), mean(after));
    let low = before.iter().filter(|(_, v)| *v < p.threshold).count() as f32 / before.len() as f32;
    let high = after.iter().filter(|(_, v)| *v >= p.threshold).count() as f32 / after.len() as f32;
    let rise = mean_after - mean_before;
    if rise < p.min_step || low < p.persistence || high < p.persistence {
        return None;
    }
    // The first month of the step must itself be high: the step is dated by evidence, not by a fit.
    if after[0].1 < p.threshold {
        return None;
    }
    let support = ((before.len().min(3) as f32 / 3.0) * (after.len().min(4) as f32 / 4.0)).sqrt();
    let margin = 0.5 + 0.5 * ((rise - p.min_step) / (1.0 - p.min_step)).clamp(0.0, 1.0);
    Some(Step {
        index: after[0].0,
        confidence: support * low * high * margin,
        n_before: before.len(),
        n_after: after.len(),
        mean_before,
        mean_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    const NAN: f32 = f32::NAN;

    fn refl(blue: f32, green: f32, red: f32, nir: f32, swir16: f32, swir22: f32) -> Reflectance {
        Reflectance {
            blue,
            green,
            red,
            nir,
            swir16,
            swir22,
        }
    }

    #[test]
    fn roofs_score_high_and_vegetation_water_and_soil_score_low() {
        let grey_roof = builtup_score(refl(0.16, 0.17, 0.18, 0.24, 0.27, 0.24));
        let blue_roof = builtup_score(refl(0.20, 0.18, 0.12, 0.22, 0.20, 0.15));
        let forest = builtup_score(refl(0.03, 0.06, 0.03, 0.35, 0.17, 0.08));
        let water = builtup_score(refl(0.06, 0.07, 0.05, 0.03, 0.01, 0.01));
        let laterite = builtup_score(refl(0.07, 0.10, 0.16, 0.23, 0.33, 0.28));
        assert!(grey_roof > 0.8 && blue_roof > 0.8, "{grey_roof} {blue_roof}");
        for low in [forest, water, laterite] {
            assert!(low < 0.1, "{forest} {water} {laterite}");
        }
    }

    #[test]
    fn a_persistent_step_is_dated_at_its_first_clear_month() {
        let s = [0.1, 0.05, NAN, 0.1, NAN, NAN, 0.9, 0.85, 0.95, 0.9];
        let step = step(&s, &DetectParams::default()).unwrap();
        assert_eq!(step.index, 6);
        assert_eq!((step.n_before, step.n_after), (3, 4));
        assert!(step.confidence > 0.8, "{}", step.confidence);
    }

    #[test]
    fn one_bright_month_is_not_a_step() {
        let s = [0.1, 0.05, 0.1, 0.9, 0.1, 0.1, 0.05, 0.1];
        assert_eq!(step(&s, &DetectParams::default()), None);
    }

    #[test]
    fn a_surface_that_was_always_built_has_no_step() {
        let s = [0.9, 0.85, 0.95, 0.9, 0.92, 0.88];
        assert_eq!(step(&s, &DetectParams::default()), None);
    }

    #[test]
    fn demolition_is_never_a_step_up() {
        let s = [0.9, 0.85, 0.95, 0.1, 0.1, 0.05];
        assert_eq!(step(&s, &DetectParams::default()), None);
    }

    #[test]
    fn too_few_clear_months_after_give_no_step() {
        let s = [0.1, 0.1, 0.1, 0.1, NAN, 0.9];
        assert_eq!(step(&s, &DetectParams::default()), None);
    }

    #[test]
    fn fewer_clear_months_mean_lower_confidence() {
        let long = step(&[0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9], &DetectParams::default()).unwrap();
        let short = step(&[0.1, 0.1, 0.9, 0.9], &DetectParams::default()).unwrap();
        assert!(short.confidence < long.confidence);
    }
}

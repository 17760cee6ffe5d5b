//! Built-up: a score per pixel and month, and the persistent step in it (up for construction,
//! down for demolition: see `kernel::built_change`).
//!
//! Pure functions over numbers; this module reads nothing and knows nothing of files or scenes.
//!
//! **Built-up score.** New compound buildings are roofs of any material: concrete, galvanized or
//! painted metal (blue, red, green), dark tiles, white membranes. What they share is what they are
//! not. Four facts from the bands, each a soft 0..1 membership with a logistic curve, and the score
//! is their product:
//! - not vegetation: NDVI = (N-R)/(N+R) below about 0.45 (green- and blue-painted roofs reach 0.4);
//! - not water: MNDWI = (G-S1)/(G+S1) below about 0.25, and not a dark surface (mean reflectance
//!   below about 0.10) with MNDWI above about -0.1: land with water mixed in, at a bank's edge;
//! - not bare soil or rock: soils, rock, gravel yards, stubble and dry grass are warm in the
//!   visible and bright in SWIR 1.6 (iron oxides redden them, dryness lifts SWIR): red/blue above
//!   about 1.3, green/blue above about 1.06 **and** SWIR 1.6/red above about 1.2. The same holds for
//!   soil or rock partly covered by plants (a cleared edge, a field greening up), whose NIR and
//!   green rise but whose red stays above its blue. Every roof breaks that run somewhere: grey
//!   concrete, galvanized steel, white membranes and blue or green paint are not red enough, red
//!   paint and dark tiles have a flat blue-green. This, not brightness or colour alone, is what
//!   separates a red roof from the laterite it stands on and a concrete slab from a quarry floor.
//!   Soil or sand that is wet, or a 10 m pixel of it beside water whose 20 m SWIR pixel takes in
//!   the water, keeps its colour but loses its SWIR: SWIR 1.6 falls below red, and below NIR. So
//!   a pixel as warm as bare soil itself (red/blue above about 1.45, green/blue above about 1.15)
//!   with SWIR 1.6 below NIR (NDMI above about 0.05) is soil too: no roof is both (the roofs with
//!   SWIR below NIR, white membranes and blue or green paint, are not warm), and dry soil and rock
//!   keep SWIR 1.6 above NIR;
//! - not dark: mean reflectance over the six bands above about 0.08 (shade, burnt ground, and
//!   water mixed into the edge of a bank; dark tiles, bright in SWIR, pass);
//! - not a resolution edge: SWIR 1.6 below about 1.7 times NIR. The 20 m SWIR bands blur across a
//!   sharp edge, so a 10 m pixel of water beside land reads dark in the visible and NIR but bright
//!   in SWIR, which no roof (nor soil) does;
//! - not wet: NDMI = (N-S1)/(N+S1) below about 0.2. Roofs are dry (NDMI from about -0.15 for
//!   tiles and concrete to about 0.1 for white membranes and paint); water absorbs SWIR, so wet
//!   mud, and a 10 m pixel of sand beside water whose 20 m SWIR pixel takes in the water, have SWIR
//!   well below NIR with little vegetation to explain it. Sand beside less water (NDMI 0.05 to
//!   0.2) is the soil test's: its visible is warm, a membrane's is not.
//!
//! **Step.** A pixel is new construction when its monthly score series, gaps skipped, is best
//! split into a low part followed by a high part: at least `min_before` clear months mostly low,
//! then at least `min_after` clear months mostly high (a fraction `persistence` of each side on
//! the right side of `threshold`), and a mean rise of at least `min_step`. One bright month (a
//! cloud edge the mask missed) is not a step; a roof that stays is. Gaps (monsoon months with no
//! clear view) are missing data, never low or high, so the month reported is the first clear
//! month after the change. A step in the last clear months, with fewer than `min_after` after it,
//! is **provisional**: reported at once, confirmed or withdrawn by a later scan.

use std::collections::BTreeSet;

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
    /// Which surfaces the built-up score calls roofs (see [`RoofModel`]). Reports written before
    /// it existed used `bright-flat`.
    #[serde(default = "RoofModel::before_any_material")]
    pub roofs: RoofModel,
    /// Subtract each scene's haze, measured against the site's clearest scenes (see
    /// `detect::reflectance`), before any score. On by default, as `any-material`'s soil test
    /// needs it; `bright-flat`'s brightness test was set on uncorrected reflectance (see
    /// [`RoofModel::wants_haze_correction`]). Reports written before it existed had it off.
    #[serde(default)]
    pub haze_correction: bool,
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
            roofs: RoofModel::default(),
            haze_correction: true,
        }
    }
}

/// The built-up score's model of a roof.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoofModel {
    /// Bright and spectrally flat or blue: concrete, galvanized, white and blue roofs. Misses red,
    /// green and dark roofs (see the README's Accuracy).
    BrightFlat,
    /// Any roof material: not vegetation, not water, not bare soil or rock, not dark (see the
    /// module documentation). Finds red, green and dark roofs too; needs the haze correction
    /// ([`DetectParams::haze_correction`]) to keep hazy laterite from looking like a roof.
    #[default]
    AnyMaterial,
}

impl RoofModel {
    /// Whether the model's scores were set on haze-corrected reflectance: the haze correction's
    /// default under it.
    pub fn wants_haze_correction(self) -> bool {
        self == RoofModel::AnyMaterial
    }

    /// The only model before `roofs` was recorded.
    fn before_any_material() -> RoofModel {
        RoofModel::BrightFlat
    }
}

impl std::str::FromStr for RoofModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bright-flat" => Ok(RoofModel::BrightFlat),
            "any-material" => Ok(RoofModel::AnyMaterial),
            other => Err(format!(
                "{other:?} is not a roof model: give bright-flat or any-material"
            )),
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

impl Reflectance {
    /// The pixel at one column of a composite's bands, shape (6 bands, pixels) in the order blue,
    /// green, red, nir, swir16, swir22.
    pub(crate) fn of_column(b: ndarray::ArrayView1<f32>) -> Reflectance {
        Reflectance {
            blue: b[0],
            green: b[1],
            red: b[2],
            nir: b[3],
            swir16: b[4],
            swir22: b[5],
        }
    }

    /// The mean reflectance over the six bands.
    pub(crate) fn brightness(&self) -> f32 {
        (self.blue + self.green + self.red + self.nir + self.swir16 + self.swir22) / 6.0
    }
}

/// Whether a pixel's built-up score under `model` is at least `threshold`, as
/// `roof_score(r, model) >= threshold` says, with the vegetation factor both models begin with
/// tried first: every factor of a score lies in 0..1, so the product is never above any one of
/// them, and one factor below the threshold decides. Most views are of vegetation, whose other
/// factors this skips.
pub(crate) fn scores_at_least(r: Reflectance, model: RoofModel, threshold: f32) -> bool {
    if not_vegetation(r) < threshold {
        return false;
    }
    roof_score(r, model) >= threshold
}

/// The first factor of both roof models' scores: NDVI below about 0.45.
fn not_vegetation(r: Reflectance) -> f32 {
    logistic((0.45 - normalized_difference(r.nir, r.red)) / 0.06)
}

/// The built-up score in 0..1 of a pixel under a roof model.
pub(crate) fn roof_score(r: Reflectance, model: RoofModel) -> f32 {
    match model {
        RoofModel::BrightFlat => bright_flat_score(r),
        RoofModel::AnyMaterial => builtup_score(r),
    }
}

/// The built-up score in 0..1 of the bright-flat roof model: not vegetation, not water, blue/red
/// above about 0.7, mean visible reflectance above about 0.10.
pub(crate) fn bright_flat_score(r: Reflectance) -> f32 {
    let mndwi = normalized_difference(r.green, r.swir16);
    let flat = r.blue / r.red.max(1e-3);
    let visible = (r.blue + r.green + r.red) / 3.0;
    not_vegetation(r)
        * logistic((0.25 - mndwi) / 0.08)
        * logistic((flat - 0.7) / 0.08)
        * logistic((visible - 0.10) / 0.02)
}

/// 0..1: how much a pixel looks like bare soil or rock, dry or wet. Dry: warm in the visible
/// (red/blue above about 1.3, green/blue above about 1.06) and bright in SWIR 1.6 (SWIR 1.6/red
/// above about 1.2). Wet: as warm as bare soil itself (see [`WET_SOIL_RED_BLUE`]) with SWIR 1.6
/// below its NIR (NDMI above about [`WET_SOIL_NDMI`]).
fn soil(r: Reflectance) -> f32 {
    let ratio = |a: f32, b: f32| a / b.max(1e-3);
    let warm = |red_blue: f32, green_blue: f32| {
        logistic((ratio(r.red, r.blue) - red_blue) / 0.04) * logistic((ratio(r.green, r.blue) - green_blue) / 0.02)
    };
    let dry = warm(1.3, 1.06) * logistic((ratio(r.swir16, r.red) - 1.2) / 0.05);
    let wet = warm(WET_SOIL_RED_BLUE, WET_SOIL_GREEN_BLUE)
        * logistic((normalized_difference(r.nir, r.swir16) - WET_SOIL_NDMI) / 0.03);
    dry.max(wet)
}

/// Red/blue and green/blue above which a pixel has the colour of bare soil itself, for the wet-soil
/// test. Wet soil, and a 10 m pixel of sand beside water whose 20 m SWIR pixel takes in the water,
/// lose the SWIR evidence the dry test leans on, so the visible alone must say soil: sand, silt
/// and laterite sit at or above about 1.5 and 1.2. The dry test's 1.3 and 1.06 also take in a
/// grey roof sharing its 10 m pixel with some laterite (about 1.3-1.4 and 1.05-1.17 on the
/// bundled sample), whose 20 m SWIR pixel can take in trees beside it and fall below NIR too.
const WET_SOIL_RED_BLUE: f32 = 1.45;
/// See [`WET_SOIL_RED_BLUE`].
const WET_SOIL_GREEN_BLUE: f32 = 1.15;

/// NDMI above which a pixel of soil colour is wet soil (see [`soil`]): dry soil and rock stay
/// below 0 (SWIR 1.6 above NIR); a margin above 0 leaves the edges where a little plant cover or
/// one hazy monsoon view lifts NDMI a few hundredths. At 0, a yard-corner pixel of a compound on
/// the testbed's tuning seed 1, seen once in August at NDMI 0.04, was taken for soil and the
/// compound dated two months late.
const WET_SOIL_NDMI: f32 = 0.05;

/// The built-up score in 0..1 of the any-material roof model (see the module documentation); NaN
/// in gives NaN out.
pub(crate) fn builtup_score(r: Reflectance) -> f32 {
    let mndwi = normalized_difference(r.green, r.swir16);
    let ratio = |a: f32, b: f32| a / b.max(1e-3);
    let brightness = r.brightness();
    // Land with water mixed in (a bank's edge, a flooded field) is dark and only a little wetter
    // than dry land; a roof that reflects as little SWIR as green is bright (blue paint, membranes).
    let wet_edge = logistic((mndwi + 0.1) / 0.05) * logistic((0.10 - brightness) / 0.01);
    not_vegetation(r)
        * logistic((0.25 - mndwi) / 0.08)
        * (1.0 - wet_edge)
        * (1.0 - soil(r))
        * logistic((brightness - 0.08) / 0.005)
        * logistic((1.7 - ratio(r.swir16, r.nir)) / 0.08)
        * logistic((0.2 - normalized_difference(r.nir, r.swir16)) / 0.04)
}

/// The built-up score of every pixel of a composite, shape (6 bands, pixels) in the order blue,
/// green, red, nir, swir16, swir22; NaN where the composite is a gap.
pub fn scores(bands: ndarray::ArrayView2<f32>, model: RoofModel) -> Vec<f32> {
    bands
        .columns()
        .into_iter()
        .map(|b| {
            if b[0].is_nan() {
                f32::NAN
            } else {
                roof_score(Reflectance::of_column(b), model)
            }
        })
        .collect()
}

/// A detected step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Index into the series of the first clear month after the step: the first month that shows
    /// the new state.
    pub index: usize,
    /// Index of the last clear month before the step: the change happened after it.
    pub last_before: usize,
    /// Index of the month the step became sure (its `min_after`-th clear month after); None for a
    /// provisional step.
    pub confirmed_on: Option<usize>,
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

impl Step {
    /// A step seen in fewer clear months after it than confirmation needs: at the end of the
    /// series, reported as provisional until a later scan confirms or withdraws it.
    pub fn provisional(&self) -> bool {
        self.confirmed_on.is_none()
    }
}

/// Finds a persistent step up in a monthly score series (NaN = gap), or None.
///
/// Of all splits with enough clear months on both sides, the one with the largest rise weighted by
/// `sqrt(n_before * n_after / n)` (the two-sample statistic, so a split is not chosen for one lone
/// month) is taken; it must then pass the persistence and rise tests. When no such split passes,
/// the last `min_after - 1` clear months are tried as a **provisional** step: every one of them
/// high, the months before low, the same rise. A roof finished in the last month of a scan is then
/// reported at once, provisional, and confirmed (or withdrawn) by the next scan.
///
/// Confidence = `support * agreement * margin`, each in 0..1: `support` grows with the clear months
/// on each side (full at 3 before and 4 after), `agreement` is the product of the two sides'
/// agreeing fractions, `margin` maps a rise from `min_step` to 1.0 onto 0.5..1. A provisional
/// step's support, with one or two months after, is at most 0.61.
pub fn step(series: &[f32], p: &DetectParams) -> Option<Step> {
    let clear: Vec<(usize, f32)> = series
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .collect();
    let n = clear.len();
    if n < p.min_before + 1 {
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
    let not_seasonal = |s: &Step| {
        let (before, after) = clear.split_at(clear.len() - s.n_after);
        let mostly = |share: Option<f32>| share.is_some_and(|a| a > 0.5);
        !mostly(seasonal(series, after, YEAR as isize, |v| v >= p.threshold))
            && !mostly(seasonal(series, before, -(YEAR as isize), |v| v < p.threshold))
    };
    if let Some(confirmed) = best
        .and_then(|(_, k)| split_step(&clear, k, p, p.persistence))
        .filter(not_seasonal)
    {
        return Some(confirmed);
    }
    // A provisional tail: the shortest first, so the step is dated at its first high month. Its
    // months must have been seen low in the same season a year before, every time: with one or two
    // months of evidence, the season is the likelier cause until shown otherwise, and one high
    // month a year before (a field flooding in May both years) is the season shown.
    let tail = p.min_after.saturating_sub(1).min(n - p.min_before);
    (1..=tail)
        .rev()
        .find_map(|na| split_step(&clear, n - na, p, 1.0))
        .filter(|s| {
            clear[clear.len() - s.n_after..]
                .iter()
                .all(|&(_, v)| v >= PROVISIONAL_SCORE)
        })
        .filter(|s| {
            seasonal(series, &clear[clear.len() - s.n_after..], YEAR as isize, |v| {
                v >= p.threshold
            }) == Some(0.0)
        })
        .filter(not_seasonal)
}

/// Score every month of a provisional step must reach: with one or two months of evidence, only
/// an unambiguous new surface is reported.
const PROVISIONAL_SCORE: f32 = 0.8;

/// Months in a year: a season comes back after this many.
const YEAR: usize = 12;

/// How much one side of a step, when it spans less than a year, looks the same in the same months
/// a year away (`back` months back: 12 for the year before the months after a step, -12 for the
/// year after the months before it): the share of those months seen clearly that are `like` the
/// side's own state. The season coming round again (a field flooding, a bank drying out) looks
/// the same; a new surface does not. A side of a year or more has lived through every season
/// (`Some(0.0)`). The months a year away are taken a month either side too; None when none of
/// them was seen clearly.
fn seasonal(series: &[f32], side: &[(usize, f32)], back: isize, like: impl Fn(f32) -> bool) -> Option<f32> {
    let (first, last) = (side[0].0, side[side.len() - 1].0);
    if last - first >= YEAR {
        return Some(0.0);
    }
    let other_year: BTreeSet<usize> = side
        .iter()
        .flat_map(|&(m, _)| [-1, 0, 1].map(|d| m.checked_add_signed(d - back)))
        .flatten()
        .filter(|&o| o < series.len() && !series[o].is_nan() && !side.iter().any(|&(m, _)| m == o))
        .collect();
    let alike = other_year.iter().filter(|&&o| like(series[o])).count();
    (!other_year.is_empty()).then(|| alike as f32 / other_year.len() as f32)
}

/// The step between `clear[..k]` and `clear[k..]`, if it passes the rise and persistence tests
/// (`after_agreement`: the fraction of months after that must be high).
fn split_step(clear: &[(usize, f32)], k: usize, p: &DetectParams, after_agreement: f32) -> Option<Step> {
    let (before, after) = clear.split_at(k);
    let mean = |s: &[(usize, f32)]| s.iter().map(|(_, v)| v).sum::<f32>() / s.len() as f32;
    let (mean_before, mean_after) = (mean(before), mean(after));
    let low = before.iter().filter(|(_, v)| *v < p.threshold).count() as f32 / before.len() as f32;
    let high = after.iter().filter(|(_, v)| *v >= p.threshold).count() as f32 / after.len() as f32;
    let rise = mean_after - mean_before;
    if rise < p.min_step || low < p.persistence || high < p.persistence.max(after_agreement) {
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
        last_before: before[before.len() - 1].0,
        confirmed_on: after.get(p.min_after.max(1) - 1).map(|(m, _)| *m),
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
    fn scores_at_least_says_what_the_full_score_says() {
        // A coarse grid over reflectance space (vegetation, soil, water, roofs, cloud all fall in
        // it), every model, thresholds either side of the usual 0.5, and NaN.
        let steps = [0.02f32, 0.06, 0.1, 0.15, 0.22, 0.3, 0.45];
        let mut checked = 0;
        let mut above = 0;
        for &vis in &steps {
            for &red in &steps {
                for &nir in &steps {
                    for &swir in &steps {
                        let r = refl(vis, vis * 1.1, red, nir, swir, swir * 0.8);
                        for model in [RoofModel::AnyMaterial, RoofModel::BrightFlat] {
                            for t in [0.3, 0.5, 0.8] {
                                let full = roof_score(r, model) >= t;
                                assert_eq!(scores_at_least(r, model, t), full, "{r:?} {model:?} {t}");
                                checked += 1;
                                above += usize::from(full);
                            }
                        }
                    }
                }
            }
        }
        assert!(
            above > 50 && above < checked - 50,
            "both answers tested: {above} of {checked}"
        );
        assert!(!scores_at_least(
            refl(NAN, 0.1, 0.1, 0.1, 0.1, 0.1),
            RoofModel::AnyMaterial,
            0.5
        ));
    }

    #[test]
    fn roofs_of_every_material_score_high_and_soil_rock_and_gravel_low() {
        // Library-style spectra (blue, green, red, nir, swir16, swir22), not the testbed's.
        let roofs = [
            ("concrete", refl(0.20, 0.22, 0.24, 0.28, 0.31, 0.28)),
            ("red metal", refl(0.08, 0.08, 0.20, 0.25, 0.27, 0.22)),
            ("dark tile", refl(0.07, 0.07, 0.08, 0.11, 0.14, 0.12)),
            ("green metal", refl(0.07, 0.12, 0.08, 0.16, 0.15, 0.12)),
            ("galvanized", refl(0.30, 0.31, 0.32, 0.33, 0.33, 0.30)),
            ("white membrane", refl(0.55, 0.57, 0.58, 0.60, 0.48, 0.40)),
        ];
        for (name, r) in roofs {
            assert!(builtup_score(r) > 0.6, "{name}: {}", builtup_score(r));
        }
        let ground = [
            ("gravel yard", refl(0.12, 0.14, 0.17, 0.21, 0.28, 0.25)),
            ("quarry floor", refl(0.19, 0.22, 0.26, 0.30, 0.39, 0.34)),
            ("sand", refl(0.11, 0.14, 0.18, 0.22, 0.30, 0.26)),
            ("dry grass", refl(0.08, 0.11, 0.14, 0.25, 0.34, 0.25)),
            ("burnt ground", refl(0.03, 0.035, 0.04, 0.06, 0.10, 0.09)),
            (
                "cleared soil half under plants",
                refl(0.05, 0.085, 0.115, 0.29, 0.26, 0.19),
            ),
            ("rock half under plants", refl(0.105, 0.14, 0.145, 0.32, 0.28, 0.21)),
            ("harvested paddy", refl(0.094, 0.127, 0.15, 0.255, 0.211, 0.168)),
            (
                "bank edge half in water",
                refl(0.058, 0.075, 0.075, 0.083, 0.081, 0.058),
            ),
            ("bank edge mostly water", refl(0.069, 0.088, 0.084, 0.078, 0.087, 0.071)),
            (
                "water beside land, SWIR blurred",
                refl(0.063, 0.079, 0.071, 0.072, 0.17, 0.099),
            ),
            (
                "sand beside water, its 20 m SWIR pixel mostly water",
                refl(0.11, 0.14, 0.18, 0.22, 0.085, 0.07),
            ),
        ];
        for (name, r) in ground {
            assert!(builtup_score(r) < 0.3, "{name}: {}", builtup_score(r));
        }
    }

    #[test]
    fn sand_beside_water_whose_swir_falls_below_nir_is_soil_not_a_roof() {
        // Monthly composites (November and December) of 10 m pixels of sand along a riverbank cut
        // by a flood, on the testbed's tuning seeds 1 and 2: warm in the visible, but their 20 m
        // SWIR pixels take in the water beside them, so SWIR 1.6 is below red (the dry-soil test
        // misses them) and below NIR by too little for the NDMI term (NDMI 0.10-0.18). They
        // scored 0.52-0.86 before the wet-soil test.
        let banks = [
            refl(0.094, 0.125, 0.145, 0.231, 0.160, 0.116),
            refl(0.093, 0.122, 0.150, 0.224, 0.168, 0.129),
            refl(0.106, 0.134, 0.166, 0.217, 0.177, 0.133),
            refl(0.101, 0.131, 0.162, 0.209, 0.170, 0.133),
        ];
        for r in banks {
            let ndmi = normalized_difference(r.nir, r.swir16);
            assert!(r.swir16 < 1.2 * r.red && ndmi > 0.1 && ndmi < 0.2, "{r:?}");
            assert!(soil(r) > 0.8, "{r:?}: soil {}", soil(r));
            assert!(builtup_score(r) < 0.2, "{r:?}: {}", builtup_score(r));
        }
        // Roofs with SWIR 1.6 below NIR are not warm in the visible, and keep their score; nor
        // does a grey roof sharing its 10 m pixel with laterite, its 20 m SWIR pixel taking in
        // trees (the bundled sample): warm enough for the dry test, not as warm as bare soil.
        for roof in [
            refl(0.55, 0.57, 0.58, 0.60, 0.48, 0.40),
            refl(0.20, 0.18, 0.12, 0.22, 0.20, 0.15),
            refl(0.07, 0.12, 0.08, 0.16, 0.15, 0.12),
            refl(0.142, 0.160, 0.199, 0.247, 0.218, 0.184),
        ] {
            assert!(
                soil(roof) < 0.15 && builtup_score(roof) > 0.6,
                "{roof:?}: soil {}",
                soil(roof)
            );
        }
        // A warm pixel whose SWIR 1.6 is only just below NIR (a compound's yard corner in one
        // monsoon view, NDMI 0.04) is not taken for wet soil; dry soil is soil as before.
        assert!(soil(refl(0.106, 0.123, 0.165, 0.207, 0.190, 0.135)) < 0.5);
        assert!(soil(refl(0.11, 0.14, 0.18, 0.22, 0.30, 0.26)) > 0.9);
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
        assert_eq!((step.index, step.last_before, step.confirmed_on), (6, 3, Some(7)));
        assert_eq!((step.n_before, step.n_after), (3, 4));
        assert!(step.confidence > 0.8, "{}", step.confidence);
    }

    #[test]
    fn a_provisional_month_seen_high_once_a_year_before_is_the_season() {
        let p = DetectParams::default();
        // A field flooding in May: the last month scores high; a year before, April was low and
        // May high (June unseen). Half the months a year away: not a season for a confirmed
        // step, but a provisional one has only its month to go on.
        let mut s = vec![0.0f32; 23];
        s[11] = f32::NAN;
        s[22] = 0.85;
        s[10] = 0.9;
        assert_eq!(step(&s, &p), None);
        // Never seen high a year before: provisional.
        s[10] = 0.0;
        assert!(step(&s, &p).is_some_and(|st| st.provisional()));
    }

    #[test]
    fn a_season_coming_round_again_is_not_a_step() {
        let p = DetectParams::default();
        // High every May and June: in the last two months of a scan that is the season, not a roof.
        let mut s = vec![0.1f32; 24];
        for m in [4, 5, 16, 17, 22, 23] {
            s[m] = 0.9;
        }
        s[16] = 0.1;
        s[17] = 0.1;
        assert!(
            step(&s, &p).is_some(),
            "high months 22-23 never seen a year before are a step"
        );
        s[10] = 0.9;
        s[11] = 0.9;
        s[12] = 0.9;
        assert_eq!(step(&s, &p), None, "the same months a year before were high");
        // A roof standing for a year and more is a step whatever the months before it.
        let mut roof = vec![0.1f32; 30];
        for v in roof.iter_mut().skip(14) {
            *v = 0.9;
        }
        roof[3] = 0.9;
        assert_eq!(step(&roof, &p).map(|s| s.index), Some(14));
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
    fn one_clear_month_after_is_a_provisional_step_and_a_second_confirms_it() {
        let p = DetectParams::default();
        // Fifteen months, the last one high for the first time; the same season a year before was
        // seen clearly, and low.
        let mut s = vec![0.1f32; 15];
        s[13] = NAN;
        s[14] = 0.9;
        let first = step(&s, &p).unwrap();
        assert!(first.provisional());
        assert_eq!((first.index, first.last_before, first.n_after), (14, 12, 1));
        let mut next = s.clone();
        next.push(0.85);
        let next = step(&next, &p).unwrap();
        assert!(!next.provisional());
        assert_eq!((next.index, next.last_before, next.confirmed_on), (14, 12, Some(15)));
        assert!(first.confidence < next.confidence);
        // Without a clear view of that season a year before, one month is not enough.
        let mut unseen = s.clone();
        unseen[1..=3].fill(NAN);
        assert_eq!(step(&unseen, &p), None);
        // A last month that is not high is no step at all, provisional or not.
        assert_eq!(step(&[0.1, 0.1, 0.1, 0.1, 0.9, 0.2], &p), None);
        // Too few clear months before: nothing.
        assert_eq!(step(&[0.1, NAN, 0.9], &p), None);
    }

    #[test]
    fn fewer_clear_months_mean_lower_confidence() {
        let long = step(&[0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9], &DetectParams::default()).unwrap();
        let short = step(&[0.1, 0.1, 0.9, 0.9], &DetectParams::default()).unwrap();
        assert!(short.confidence < long.confidence);
    }
}

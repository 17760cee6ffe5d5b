//! The block kernel: one block of rows, from its scenes' numbers to per-pixel results. Pure.
//!
//! [`observe`] turns one scene's rows of digital numbers and classes into reflectance and a clear
//! mask (rules of [`crate::detect::mask`], offset of [`crate::detect::reflectance`]);
//! [`composites`] makes the block's monthly medians; [`detect_block`] scores each month, finds
//! each pixel's built-up step with [`built_change`] (the one construction and demolition rule),
//! measures its spectral step, and counts what the monthly summary needs. The scan reads the
//! numbers from its cache and hands them in; nothing here reads a file.

use std::collections::BTreeSet;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::detect::builtup::{scores, scores_at_least, step, DetectParams, Reflectance, RoofModel, Step};
use crate::detect::composite::{median, monthly_median, Composite};
use crate::detect::mask::{clear_mask, unflag_surfaces};
use crate::detect::reflectance::reflectance;
use crate::detect::spectral::{spectral_step, Normalization, BANDS};

/// Reflectance bands of an observation, in the order blue, green, red, NIR, SWIR 1.6, SWIR 2.2.
pub(crate) const REFLECTANCE_BANDS: usize = 6;
const BLUE: usize = 0;
const GREEN: usize = 1;
const RED: usize = 2;
const NIR: usize = 3;
/// Red, green and blue, in that order.
pub(crate) const TRUE_COLOUR: [usize; 3] = [RED, GREEN, BLUE];
/// Bands of the recent composite and the monthly composites, in the COGs' order: red, green, blue
/// (true colour), NIR.
pub(crate) const LATEST_BANDS: [usize; 4] = [RED, GREEN, BLUE, NIR];
/// Months of the recent composite's trailing window: the period's last three months, a season at
/// most, so that the median of their clear views is one season's ground and not a patchwork.
pub(crate) const RECENT_MONTHS: usize = 3;
/// Bins of [`MonthCounts::clear_obs_histogram`] (the last bin holds that many or more).
pub(crate) const OBS_BINS: usize = 16;

/// One scene over one block's rows, ready for compositing.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    /// Index of the scene in the scan's list: what a detection's evidence names.
    pub(crate) scene: usize,
    /// Reflectance, shape (bands, pixels); NaN where a band has no data.
    pub(crate) reflectance: Array2<f32>,
    /// Per pixel: a clear view of the ground.
    pub(crate) clear: Array1<bool>,
}

/// Where a block's rows sit in the rows read for it: `halo_top` rows above and some below are
/// read too, so that cloud buffers reach across block edges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows {
    /// Pixels per row.
    pub(crate) width: usize,
    /// Rows read above the block.
    pub(crate) halo_top: usize,
    /// Rows of the block itself.
    pub(crate) rows: usize,
}

/// One scene's rows, as read: classes and digital numbers over the block and its halo.
#[derive(Debug, Clone)]
pub(crate) struct SceneRows {
    /// Scene classification (SCL) per pixel.
    pub(crate) scl: Vec<u16>,
    /// Digital numbers of the six reflectance bands, per pixel (0 = no data).
    pub(crate) dns: Vec<Vec<u16>>,
    /// Rule 4 of [`crate::detect::mask`]: pixels whose cloud flag is a bright surface.
    pub(crate) surface: Option<Vec<bool>>,
    /// Digital numbers subtracted per band before scaling (the scene's offset and haze).
    pub(crate) subtract_dn: [u32; REFLECTANCE_BANDS],
}

/// Masks and scales one scene's rows: rule 4 first, then rules 1-3 with a `buffer`-pixel cloud
/// margin over the halo, then reflectance over the block's rows only.
pub(crate) fn observe(scene: usize, mut read: SceneRows, at: Rows, buffer: usize) -> Observation {
    if let Some(surface) = &read.surface {
        unflag_surfaces(&mut read.scl, surface);
    }
    let read_rows = read.scl.len() / at.width;
    let mut valid = vec![true; read.scl.len()];
    for dns in &read.dns {
        valid.iter_mut().zip(dns).for_each(|(v, &dn)| *v &= dn != 0);
    }
    let shape = (read_rows, at.width);
    let scl = ArrayView2::from_shape(shape, &read.scl).expect("rows x width");
    let valid = ArrayView2::from_shape(shape, &valid).expect("rows x width");
    let clear = clear_mask(scl, valid, buffer);
    let start = at.halo_top * at.width;
    let pixels = at.rows * at.width;
    let mut refl = vec![0f32; REFLECTANCE_BANDS * pixels];
    for ((band, dns), &subtract) in refl.chunks_exact_mut(pixels).zip(&read.dns).zip(&read.subtract_dn) {
        for (r, &dn) in band.iter_mut().zip(&dns[start..start + pixels]) {
            *r = reflectance(dn, subtract);
        }
    }
    let clear = clear.as_slice().expect("a new mask is contiguous");
    Observation {
        scene,
        reflectance: Array2::from_shape_vec((REFLECTANCE_BANDS, pixels), refl).expect("bands x pixels"),
        clear: Array1::from(clear[start..start + pixels].to_vec()),
    }
}

/// One block's monthly composites, and which scenes saw each pixel clearly.
#[derive(Debug, Clone)]
pub(crate) struct Composites {
    /// Per month of the period: the composite, or None for a month without scenes.
    pub(crate) months: Vec<Option<Composite>>,
    /// Per month: the scenes behind it.
    scenes: Vec<Vec<usize>>,
    /// One bit per scene, `words` u64 per pixel.
    seen: Vec<u64>,
    words: usize,
    /// The roof model the newest views are scored with, and the built-up threshold.
    roofs: RoofModel,
    threshold: f32,
    /// Per month, per pixel: whether the pixel's newest clear view in the month is built-up, where
    /// the month saw it clearly more than once (false elsewhere: one view is its own median), which
    /// dates a change that the month's median still hides.
    newest_built: Vec<Vec<bool>>,
}

impl Composites {
    fn saw(&self, pixel: usize, scene: usize) -> bool {
        self.seen[pixel * self.words + scene / 64] & (1 << (scene % 64)) != 0
    }
}

impl Composites {
    /// No month yet, over `pixels` pixels of a scan of `scenes` scenes whose views are scored
    /// under `params`.
    pub(crate) fn new(pixels: usize, scenes: usize, params: &DetectParams) -> Composites {
        let words = scenes.div_ceil(64).max(1);
        Composites {
            months: Vec::new(),
            scenes: Vec::new(),
            seen: vec![0u64; pixels * words],
            words,
            roofs: params.roofs,
            threshold: params.threshold,
            newest_built: Vec::new(),
        }
    }

    /// Adds the next month's composite from its observations, newest first (none: a month without
    /// scenes). Pixels with fewer than `min_clear_obs` clear observations are gaps in it. The
    /// observations can be dropped afterwards: a block holds one month's scenes at a time.
    pub(crate) fn push_month(&mut self, obs: &[Observation], min_clear_obs: u16) {
        let (words, pixels) = (self.words, self.seen.len() / self.words);
        for o in obs {
            for (p, _) in o.clear.iter().enumerate().filter(|(_, &c)| c) {
                self.seen[p * words + o.scene / 64] |= 1 << (o.scene % 64);
            }
        }
        // Only where the month saw the pixel more than once: with one view, the view is the median.
        let newest = (0..pixels)
            .map(|p| {
                let mut clear = obs.iter().filter(|o| o.clear[p]);
                match (clear.next(), clear.next()) {
                    (Some(o), Some(_)) => {
                        let r = Reflectance::of_column(o.reflectance.column(p));
                        !r.blue.is_nan() && scores_at_least(r, self.roofs, self.threshold)
                    }
                    _ => false,
                }
            })
            .collect();
        self.newest_built.push(newest);
        let composite = (!obs.is_empty()).then(|| {
            let views: Vec<_> = obs.iter().map(|o| o.reflectance.view()).collect();
            let masks: Vec<_> = obs.iter().map(|o| o.clear.view()).collect();
            monthly_median(&views, &masks, REFLECTANCE_BANDS, pixels, min_clear_obs)
        });
        self.months.push(composite);
        self.scenes.push(obs.iter().map(|o| o.scene).collect());
    }
}

/// The monthly medians of a block: `months[m]` holds the observations of month `m` over `pixels`
/// pixels, `scenes` is how many scenes the scan has in all (see [`Composites::push_month`]).
#[cfg(test)]
pub(crate) fn composites(months: &[Vec<Observation>], pixels: usize, scenes: usize, min_clear_obs: u16) -> Composites {
    let mut c = Composites::new(pixels, scenes, &DetectParams::default());
    for obs in months {
        c.push_month(obs, min_clear_obs);
    }
    c
}

/// Which way a pixel's built-up score moved for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A step up: new construction.
    Construction,
    /// A step down (a built surface becoming bare): demolition, reported apart.
    Demolition,
}

/// The construction rule, first half: the persistent step in a pixel's monthly built-up score
/// (NaN = gap), up for construction, else down for demolition. The second half, that the pixel
/// lies in a region of significant spectral change, is [`confirmed`].
pub(crate) fn built_change(series: &[f32], params: &DetectParams) -> Option<(Kind, Step)> {
    if let Some(up) = step(series, params) {
        return Some((Kind::Construction, up));
    }
    let inverted: Vec<f32> = series.iter().map(|v| 1.0 - v).collect();
    step(&inverted, params).map(|down| (Kind::Demolition, down))
}

/// The construction rule, second half: of the pixels with a built-up step (`stepped`), those in a
/// region of significant spectral change (`changed_region`, from
/// [`crate::detect::spectral::changed_regions`]).
pub(crate) fn confirmed(stepped: &[bool], changed_region: &[bool]) -> Vec<bool> {
    stepped.iter().zip(changed_region).map(|(&s, &c)| s && c).collect()
}

/// Counts behind one month's figures, over AOI pixels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonthCounts {
    /// Pixels with a clear composite.
    pub clear_pixels: u64,
    /// Clear pixels whose built-up score is at or above the threshold: the raw single-month
    /// measurement.
    pub builtup_pixels: u64,
    /// AOI pixels of the stable built-up estimate (persistent classification plus confirmed
    /// construction minus confirmed demolition; set when the blocks are assembled).
    #[serde(default)]
    pub stable_pixels: u64,
    /// AOI pixels whose persistent classification is ambiguous (built-up in 30-70% of their clear
    /// months): the stable estimate's uncertainty, either way.
    #[serde(default)]
    pub ambiguous_pixels: u64,
    /// AOI pixels of confirmed demolition dated to this month (set when the blocks are assembled).
    #[serde(default)]
    pub demolished_pixels: u64,
    /// Histogram of clear observations per AOI pixel (index = observations, the last bin holds
    /// that many or more).
    pub clear_obs_histogram: Vec<u64>,
}

impl MonthCounts {
    /// Adds another block's counts.
    pub(crate) fn add(&mut self, other: &MonthCounts) {
        self.clear_pixels += other.clear_pixels;
        self.builtup_pixels += other.builtup_pixels;
        if self.clear_obs_histogram.is_empty() {
            self.clear_obs_histogram = vec![0; OBS_BINS];
        }
        for (a, b) in self.clear_obs_histogram.iter_mut().zip(&other.clear_obs_histogram) {
            *a += b;
        }
    }

    /// Median clear observations per AOI pixel (the histogram's lower median).
    pub fn clear_obs_median(&self) -> u64 {
        let total: u64 = self.clear_obs_histogram.iter().sum();
        let mut seen = 0;
        for (obs, &n) in self.clear_obs_histogram.iter().enumerate() {
            seen += n;
            if total > 0 && seen * 2 >= total {
                return obs as u64;
            }
        }
        0
    }
}

/// A pixel whose built-up score stepped, with what stands behind it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PixelChange {
    /// The pixel, as an index into the block's pixels.
    pub(crate) pixel: usize,
    /// Construction or demolition.
    pub(crate) kind: Kind,
    /// Index of the month of the step: the first clear month that shows the new state.
    pub(crate) month: usize,
    /// Index of the last clear month before the step.
    pub(crate) last_before: usize,
    /// Index of the month the step became sure; None while it is provisional.
    pub(crate) confirmed_on: Option<usize>,
    /// The step's confidence.
    pub(crate) confidence: f32,
    /// Clear observations of the pixel over the period.
    pub(crate) clear_obs: u32,
    /// Scenes that saw the pixel clearly in the clear months just before, at and after the step.
    pub(crate) evidence: Vec<u32>,
}

/// What one block yields.
#[derive(Debug, Clone)]
pub(crate) struct BlockResult {
    /// Pixels whose built-up score steps up or down, before the spectral change confirms them.
    pub(crate) changes: Vec<PixelChange>,
    /// Per pixel: the spectral step magnitude, 0 where there is none.
    pub(crate) magnitude: Vec<f32>,
    /// Per pixel: the share of its clear months in which it is built-up (NaN where it is outside
    /// the AOI or never clear): the persistent classification behind the stable built-up estimate.
    pub(crate) built_share: Vec<f32>,
    /// The recent composite of the block's pixels.
    pub(crate) recent: Recent,
    /// Per month, over the block's AOI pixels.
    pub(crate) months: Vec<MonthCounts>,
}

/// Per-month, per-pixel series of one block, gathered from its composites.
struct Series {
    /// Built-up score, shape (months, pixels); NaN in gaps.
    score: Array2<f32>,
    /// Spectra of [`BANDS`], month-major per pixel: `spectra[p * months + m]`.
    spectra: Vec<[f32; 4]>,
    /// Clear observations per pixel over the period.
    clear_obs: Vec<u32>,
}

/// Runs the detection on one block: `inside` says which of its pixels are in the AOI.
pub(crate) fn detect_block(
    c: &Composites,
    inside: &[bool],
    params: &DetectParams,
    norm: &Normalization,
) -> BlockResult {
    let (series, months) = monthly(c, inside, params);
    let n_months = c.months.len();
    let mut changes = Vec::new();
    let mut magnitude = vec![0f32; inside.len()];
    let mut built_share = vec![f32::NAN; inside.len()];
    for p in (0..inside.len()).filter(|&p| inside[p]) {
        let spectra = &series.spectra[p * n_months..(p + 1) * n_months];
        if let Some(s) = spectral_step(spectra, norm, params) {
            magnitude[p] = s.magnitude;
        }
        let score: Vec<f32> = series.score.column(p).to_vec();
        let clear = score.iter().filter(|v| !v.is_nan()).count();
        if clear > 0 {
            let built = score.iter().filter(|&&v| v >= params.threshold).count();
            built_share[p] = built as f32 / clear as f32;
        }
        if let Some((kind, mut st)) = built_change(&score, params) {
            if st.provisional() && !provisional_holds(c, p, &score, st.index) {
                continue;
            }
            if kind == Kind::Construction {
                shown_earlier(c, p, &score, params, &mut st);
            }
            if st.provisional() && magnitude[p] == 0.0 {
                // A provisional step is too recent for the spectral step's own `min_after`: its
                // magnitude is measured over the same tail (scaled by the larger noise of a median of
                // fewer months, so it must be larger to count).
                let tail = DetectParams {
                    min_after: 1,
                    ..*params
                };
                magnitude[p] = spectral_step(spectra, norm, &tail).map_or(0.0, |s| s.magnitude);
            }
            changes.push(PixelChange {
                pixel: p,
                kind,
                month: st.index,
                last_before: st.last_before,
                confirmed_on: st.confirmed_on,
                confidence: st.confidence,
                clear_obs: series.clear_obs[p],
                evidence: evidence(c, p, &score, st.index),
            });
        }
    }
    BlockResult {
        changes,
        magnitude,
        built_share,
        recent: recent(c, inside.len()),
        months,
    }
}

/// Dates a construction step one clear month earlier when that month's median still shows the old
/// state but its newest clear view already shows the new one: a roof finished in the middle of a
/// month is outvoted by the month's older views, and the month is nonetheless the first clear
/// month that shows it. The month before becomes the last clear month before the step. Only
/// across at most [`NEWEST_VIEW_SPAN`] months: over a longer gap (a monsoon) the ground passes
/// through other states, and one view of a freshly cleared yard can score like a roof.
fn shown_earlier(c: &Composites, p: usize, score: &[f32], params: &DetectParams, st: &mut Step) {
    let j = st.last_before;
    let single_view_built =
        || c.months[j].as_ref().is_some_and(|comp| comp.clear_obs[p] == 1) && score[j] >= params.threshold;
    if st.index - j > NEWEST_VIEW_SPAN || !(c.newest_built[j][p] || single_view_built()) {
        return;
    }
    if let Some(before) = (0..j).rev().find(|&m| !score[m].is_nan()) {
        st.index = j;
        st.last_before = before;
    }
}

/// The most months between the last clear month before a step and the step's first month across
/// which [`shown_earlier`] moves the date: one month without a clear view between them. Seen on
/// diagnostic seeds 7-14 (in neither testbed split): a compound dated four months early, across
/// a monsoon gap, by single views of its yard.
const NEWEST_VIEW_SPAN: usize = 2;

/// Clear observations a provisional step needs in each of its months: with two, one hazy or
/// mis-masked scene is half the month's composite, and the step's score bar (0.8) keeps it from
/// passing alone. Three missed roofs whose newest clear views were two (roofs called cloud in the
/// rest) on the testbed's tuning split.
const PROVISIONAL_OBS: u16 = 2;

/// Mean reflectance over the six bands a provisional step's new state needs in each of its
/// months. Between the score's floor (0.08) and this lie dark tiles and asphalt, but also soil
/// freshly wet or puddled for planting and the 10 m pixel across a flooded field's edge, whose
/// spectra a month or two of views do not tell apart: such a step waits to be confirmed by the
/// months after it. Wet soil reflects about half of the same soil dry (0.2 here), so 0.12.
const PROVISIONAL_BRIGHTNESS: f32 = 0.12;

/// Whether every clear month of pixel `p` from `from` on was seen in at least
/// [`PROVISIONAL_OBS`] clear observations and is brighter than [`PROVISIONAL_BRIGHTNESS`]: what a
/// provisional step's new state needs.
fn provisional_holds(c: &Composites, p: usize, score: &[f32], from: usize) -> bool {
    (from..score.len()).filter(|&m| !score[m].is_nan()).all(|m| {
        c.months[m].as_ref().is_some_and(|comp| {
            comp.clear_obs[p] >= PROVISIONAL_OBS
                && Reflectance::of_column(comp.bands.column(p)).brightness() >= PROVISIONAL_BRIGHTNESS
        })
    })
}

/// The scores, spectra and counts of every month of a block.
fn monthly(c: &Composites, inside: &[bool], params: &DetectParams) -> (Series, Vec<MonthCounts>) {
    let (pixels, n_months) = (inside.len(), c.months.len());
    let mut series = Series {
        score: Array2::from_elem((n_months, pixels), f32::NAN),
        spectra: vec![[f32::NAN; 4]; n_months * pixels],
        clear_obs: vec![0u32; pixels],
    };
    let mut counts = vec![MonthCounts::default(); n_months];
    for (m, comp) in c.months.iter().enumerate() {
        let count = &mut counts[m];
        count.clear_obs_histogram = vec![0; OBS_BINS];
        let Some(comp) = comp else {
            count.clear_obs_histogram[0] = inside.iter().filter(|&&i| i).count() as u64;
            continue;
        };
        let month_scores = scores(comp.bands.view(), params.roofs);
        for p in 0..pixels {
            series.clear_obs[p] += comp.clear_obs[p] as u32;
            if inside[p] {
                count.clear_obs_histogram[(comp.clear_obs[p] as usize).min(OBS_BINS - 1)] += 1;
            }
            if month_scores[p].is_nan() {
                continue;
            }
            if inside[p] {
                count.clear_pixels += 1;
                count.builtup_pixels += (month_scores[p] >= params.threshold) as u64;
            }
            series.score[(m, p)] = month_scores[p];
            let b = comp.bands.index_axis(Axis(1), p);
            series.spectra[p * n_months + m] = BANDS.map(|band| b[band]);
        }
    }
    (series, counts)
}

/// Reflectance as the COGs store it: x 10000, at least 1 (0 is no data).
fn stored(reflectance: f32) -> u16 {
    (reflectance * 10_000.0).round().clamp(1.0, 65_535.0) as u16
}

/// The recent composite of a block: per pixel and band of [`LATEST_BANDS`], the median of its
/// clear monthly composites among the period's last [`RECENT_MONTHS`] months. A pixel with no
/// clear month there is widened back, alone: its window is the [`RECENT_MONTHS`] months ending at
/// its newest clear month. Each pixel records the months and observations it stands on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Recent {
    /// Reflectance x 10000 of [`LATEST_BANDS`] (0 = never seen).
    pub(crate) bands: [Vec<u16>; 4],
    /// Index of the newest clear month used, plus one (0 = never seen).
    pub(crate) newest: Vec<u16>,
    /// Index of the oldest clear month used, plus one (0 = never seen): where the window began
    /// for this pixel.
    pub(crate) oldest: Vec<u16>,
    /// Clear observations behind the months used.
    pub(crate) clear_obs: Vec<u16>,
}

impl Recent {
    /// Appends another block's pixels.
    pub(crate) fn extend(&mut self, other: Recent) {
        for (a, b) in self.bands.iter_mut().zip(other.bands) {
            a.extend(b);
        }
        self.newest.extend(other.newest);
        self.oldest.extend(other.oldest);
        self.clear_obs.extend(other.clear_obs);
    }
}

/// The recent composite of `pixels` pixels of `c` (see [`Recent`]).
fn recent(c: &Composites, pixels: usize) -> Recent {
    let mut r = Recent {
        bands: std::array::from_fn(|_| vec![0; pixels]),
        newest: vec![0; pixels],
        oldest: vec![0; pixels],
        clear_obs: vec![0; pixels],
    };
    let clear = |m: usize, p: usize| {
        c.months[m]
            .as_ref()
            .is_some_and(|comp| LATEST_BANDS.iter().all(|&b| !comp.bands[(b, p)].is_nan()))
    };
    let n = c.months.len();
    let mut values = Vec::with_capacity(RECENT_MONTHS);
    for p in 0..pixels {
        let Some(newest) = (0..n).rev().find(|&m| clear(m, p)) else {
            continue;
        };
        // The period's window, or where it holds no clear month, the window ending at the newest.
        let end = if newest + RECENT_MONTHS >= n { n } else { newest + 1 };
        let used: Vec<usize> = (end.saturating_sub(RECENT_MONTHS)..end)
            .filter(|&m| clear(m, p))
            .collect();
        let comps: Vec<&Composite> = used.iter().map(|&m| c.months[m].as_ref().expect("clear")).collect();
        for (i, &band) in LATEST_BANDS.iter().enumerate() {
            values.clear();
            values.extend(comps.iter().map(|comp| comp.bands[(band, p)]));
            r.bands[i][p] = stored(median(&mut values));
        }
        r.newest[p] = (newest + 1) as u16;
        r.oldest[p] = (used[0] + 1) as u16;
        r.clear_obs[p] = comps
            .iter()
            .map(|comp| comp.clear_obs[p])
            .fold(0u16, u16::saturating_add);
    }
    r
}

/// One month's composite as its COG stores it: [`LATEST_BANDS`] x 10000 and the clear
/// observations, 0 (no data) in gaps and everywhere in a month without scenes.
pub(crate) fn month_rows(comp: Option<&Composite>, pixels: usize) -> [Vec<u16>; 5] {
    let mut rows: [Vec<u16>; 5] = std::array::from_fn(|_| vec![0; pixels]);
    let Some(comp) = comp else {
        return rows;
    };
    for (i, &band) in LATEST_BANDS.iter().enumerate() {
        for (v, &r) in rows[i].iter_mut().zip(comp.bands.row(band)) {
            if !r.is_nan() {
                *v = stored(r);
            }
        }
    }
    rows[4] = comp.clear_obs.to_vec();
    rows
}

/// The evidence of a step at month `at` of pixel `p`: the scenes that saw the pixel clearly in the
/// clear months just before, at and just after it.
fn evidence(c: &Composites, p: usize, score: &[f32], at: usize) -> Vec<u32> {
    let clear_months: Vec<usize> = (0..score.len()).filter(|&m| !score[m].is_nan()).collect();
    let i = clear_months
        .iter()
        .position(|&m| m == at)
        .expect("the step is at a clear month");
    let around: BTreeSet<usize> = clear_months[i.saturating_sub(1)..(i + 2).min(clear_months.len())]
        .iter()
        .copied()
        .collect();
    around
        .iter()
        .flat_map(|&m| c.scenes[m].iter().copied())
        .filter(|&s| c.saw(p, s))
        .map(|s| s as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reflectance of a bare field and of a new roof, in the kernel's band order.
    const FIELD: [f32; 6] = [0.05, 0.08, 0.10, 0.35, 0.30, 0.20];
    const ROOF: [f32; 6] = [0.20, 0.21, 0.22, 0.25, 0.28, 0.26];

    fn observation(scene: usize, pixels: &[[f32; 6]], clear: &[bool]) -> Observation {
        Observation {
            scene,
            reflectance: Array2::from_shape_fn((6, pixels.len()), |(b, p)| pixels[p][b]),
            clear: clear.iter().copied().collect(),
        }
    }

    /// Two pixels over 8 months, one scene a month: pixel 0 stays a field, pixel 1 becomes a roof
    /// in month 4.
    fn two_pixels() -> Vec<Vec<Observation>> {
        (0..8)
            .map(|m| {
                let p1 = if m < 4 { FIELD } else { ROOF };
                vec![observation(m, &[FIELD, p1], &[true, true])]
            })
            .collect()
    }

    #[test]
    fn a_roof_seen_in_the_newest_view_of_a_month_dates_the_step_to_that_month() {
        // One scene a month, except month 3: two views of the field, then one of the roof (newest
        // first, as push_month takes them). Month 3's median is the field; its newest view is not.
        let scenes = |m: usize| if m < 3 { m } else { m + 2 };
        let months: Vec<Vec<Observation>> = (0..8)
            .map(|m| match m {
                3 => vec![
                    observation(5, &[FIELD, ROOF], &[true, true]),
                    observation(4, &[FIELD, FIELD], &[true, true]),
                    observation(3, &[FIELD, FIELD], &[true, true]),
                ],
                _ => vec![observation(
                    scenes(m),
                    &[FIELD, if m < 3 { FIELD } else { ROOF }],
                    &[true, true],
                )],
            })
            .collect();
        let c = composites(&months, 2, 10, 1);
        assert!(
            c.months[3].as_ref().unwrap().bands[(RED, 1)] < 0.15,
            "month 3's median is the field"
        );
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 8]);
        let r = detect_block(&c, &[true, true], &DetectParams::default(), &norm);
        assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
        let ch = &r.changes[0];
        assert_eq!(
            (ch.pixel, ch.kind, ch.month, ch.last_before),
            (1, Kind::Construction, 3, 2)
        );
        // The same month with the roof's view oldest: the newest view is the field, month 4.
        let mut later = months.clone();
        later[3].reverse();
        let c = composites(&later, 2, 10, 1);
        let r = detect_block(&c, &[true, true], &DetectParams::default(), &norm);
        assert_eq!((r.changes[0].month, r.changes[0].last_before), (4, 3));
        // Across two months without scenes (a monsoon), the newest view does not move the date.
        let mut gap = months.clone();
        gap.insert(4, Vec::new());
        gap.insert(4, Vec::new());
        let c = composites(&gap, 2, 10, 1);
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 10]);
        let r = detect_block(&c, &[true, true], &DetectParams::default(), &norm);
        assert_eq!((r.changes[0].month, r.changes[0].last_before), (6, 3));
    }

    #[test]
    fn a_field_that_becomes_a_roof_is_construction_in_the_month_of_the_roof() {
        let months = two_pixels();
        let c = composites(&months, 2, 8, 1);
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 8]);
        let r = detect_block(&c, &[true, true], &DetectParams::default(), &norm);
        assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
        let ch = &r.changes[0];
        assert_eq!(
            (ch.pixel, ch.kind, ch.month, ch.clear_obs),
            (1, Kind::Construction, 4, 8)
        );
        // Evidence: the scenes of months 3, 4 and 5, which saw the pixel.
        assert_eq!(ch.evidence, vec![3, 4, 5]);
        // Every month is clear over both pixels; the roof counts as built-up from month 4.
        assert!(r.months.iter().all(|m| m.clear_pixels == 2));
        assert_eq!(r.months[3].builtup_pixels, 0);
        assert_eq!(r.months[4].builtup_pixels, 1);
    }

    #[test]
    fn a_provisional_step_to_a_dark_surface_waits_for_confirmation() {
        // Three pixels over 16 months (a provisional step needs its season seen a year before), two
        // scenes a month, the last month new: a bright roof, a
        // field puddled for planting (dark, flat, drier in SWIR than NIR: the score's floor
        // passes it) and a dark tile roof.
        const MUD: [f32; 6] = [0.069, 0.068, 0.062, 0.113, 0.136, 0.099];
        const TILE: [f32; 6] = [0.07, 0.07, 0.08, 0.12, 0.15, 0.13];
        let months: Vec<Vec<Observation>> = (0..16)
            .map(|m| {
                let last = m == 15;
                let px = [ROOF, MUD, TILE].map(|new| if last { new } else { FIELD });
                (0..2).map(|i| observation(2 * m + i, &px, &[true; 3])).collect()
            })
            .collect();
        let c = composites(&months, 3, 32, 1);
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 16]);
        let params = DetectParams {
            roofs: crate::detect::builtup::RoofModel::AnyMaterial,
            ..DetectParams::default()
        };
        let score = |s: [f32; 6]| {
            let b = Array2::from_shape_fn((6, 1), |(b, _)| s[b]);
            scores(b.view(), params.roofs)[0]
        };
        assert!(
            score(MUD) > 0.8 && score(TILE) > 0.8,
            "{} {} {}: both look like roofs",
            score(MUD),
            score(TILE),
            score(ROOF)
        );
        let r = detect_block(&c, &[true; 3], &params, &norm);
        let provisional: Vec<usize> = r
            .changes
            .iter()
            .filter(|ch| ch.confirmed_on.is_none())
            .map(|ch| ch.pixel)
            .collect();
        assert_eq!(
            provisional,
            vec![0],
            "only the bright roof is provisional: {:?}",
            r.changes
        );
    }

    /// A dry-season field: much brighter in red and blue, dimmer in NIR than the growing season.
    const DRY: [f32; 6] = [0.15, 0.18, 0.24, 0.22, 0.40, 0.35];

    #[test]
    fn the_recent_composite_is_the_median_of_the_window_not_the_last_clear_month() {
        // 8 months, one scene a month. Pixel 0 is a field, seen in the dry season in its last
        // month; pixel 1 is clouded over from month 4 on, and was a roof once, in month 1.
        let months: Vec<Vec<Observation>> = (0..8)
            .map(|m| {
                let p0 = if m == 7 { DRY } else { FIELD };
                let p1 = if m == 1 { ROOF } else { FIELD };
                vec![observation(m, &[p0, p1], &[true, m < 4])]
            })
            .collect();
        let c = composites(&months, 2, 8, 1);
        let r = recent(&c, 2);
        let field = LATEST_BANDS.map(|b| stored(FIELD[b]));
        let dry = LATEST_BANDS.map(|b| stored(DRY[b]));
        let at = |p: usize| [0, 1, 2, 3].map(|i| r.bands[i][p]);
        // Per pixel latest would give the dry season: the window's median is the field of months 5-7.
        assert_ne!(field, dry);
        assert_eq!(at(0), field);
        assert_eq!((r.newest[0], r.oldest[0], r.clear_obs[0]), (8, 6, 3));
        // No clear month in 5-7: the window of pixel 1 alone ends at its newest clear month (3).
        assert_eq!(at(1), field);
        assert_eq!((r.newest[1], r.oldest[1], r.clear_obs[1]), (4, 2, 3));
    }

    #[test]
    fn a_pixel_never_seen_clearly_is_no_data_in_the_recent_composite() {
        let months: Vec<Vec<Observation>> = (0..4)
            .map(|m| vec![observation(m, &[FIELD, FIELD], &[false, m == 3])])
            .collect();
        let r = recent(&composites(&months, 2, 4, 1), 2);
        assert!(r.bands.iter().all(|b| b[0] == 0));
        assert_eq!((r.newest[0], r.oldest[0], r.clear_obs[0]), (0, 0, 0));
        // One clear month in the window: that month alone.
        assert_eq!((r.newest[1], r.oldest[1], r.clear_obs[1]), (4, 4, 1));
        assert_eq!(r.bands[0][1], stored(FIELD[RED]));
    }

    #[test]
    fn a_month_is_stored_with_its_clear_counts_and_no_data_in_its_gaps() {
        // Month 0: two scenes, pixel 0 clear in both, pixel 1 in one (a gap with two required).
        let month = vec![
            observation(0, &[FIELD, ROOF], &[true, true]),
            observation(1, &[FIELD, ROOF], &[true, false]),
        ];
        let c = composites(&[month, Vec::new()], 2, 2, 2);
        let rows = month_rows(c.months[0].as_ref(), 2);
        assert_eq!(rows[0], vec![stored(FIELD[RED]), 0]);
        assert_eq!(rows[3], vec![stored(FIELD[NIR]), 0]);
        assert_eq!(rows[4], vec![2, 1]);
        // A month without scenes: no data everywhere, its clear count included.
        assert!(month_rows(c.months[1].as_ref(), 2).iter().all(|b| b == &vec![0, 0]));
    }

    #[test]
    fn pixels_outside_the_aoi_are_not_detected_and_not_counted() {
        let c = composites(&two_pixels(), 2, 8, 1);
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 8]);
        let r = detect_block(&c, &[true, false], &DetectParams::default(), &norm);
        assert!(r.changes.is_empty());
        assert!(r.months.iter().all(|m| m.clear_pixels == 1));
    }

    #[test]
    fn a_roof_torn_down_is_demolition_never_construction() {
        let series: Vec<f32> = (0..8).map(|m| if m < 4 { 0.9 } else { 0.05 }).collect();
        let (kind, st) = built_change(&series, &DetectParams::default()).unwrap();
        assert_eq!((kind, st.index), (Kind::Demolition, 4));
        let rising: Vec<f32> = series.iter().rev().copied().collect();
        assert_eq!(
            built_change(&rising, &DetectParams::default()).unwrap().0,
            Kind::Construction
        );
        let flat = [0.5f32; 8];
        assert!(built_change(&flat, &DetectParams::default()).is_none());
    }

    #[test]
    fn a_step_is_confirmed_only_inside_a_changed_region() {
        assert_eq!(
            confirmed(&[true, true, false, false], &[true, false, true, false]),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn cloudy_observations_are_gaps_and_a_month_without_scenes_has_no_composite() {
        let mut months = two_pixels();
        months[2] = vec![observation(2, &[FIELD, FIELD], &[false, true])];
        months[6].clear();
        let c = composites(&months, 2, 8, 1);
        assert!(c.months[6].is_none());
        let m2 = c.months[2].as_ref().unwrap();
        assert!(m2.bands[(0, 0)].is_nan() && !m2.bands[(0, 1)].is_nan());
        assert!(!c.saw(0, 2) && c.saw(1, 2));
        let norm = Normalization::measure(&vec![vec![[0.0; 4]; 60]; 8]);
        let r = detect_block(&c, &[true, true], &DetectParams::default(), &norm);
        assert_eq!(r.months[2].clear_pixels, 1);
        // A month with no scene: every AOI pixel has 0 clear observations.
        assert_eq!(r.months[6].clear_obs_histogram[0], 2);
        assert_eq!(r.months[6].clear_pixels, 0);
    }

    #[test]
    fn observe_masks_the_cloud_buffer_across_the_halo_and_removes_the_offset() {
        // 3 rows of 2 pixels read; the block is the last 2 rows; a cloud (9) in the halo row.
        let scl = vec![9, 4, 4, 4, 4, 4];
        let dns = vec![vec![1500u16; 6]; 6];
        let at = Rows {
            width: 2,
            halo_top: 1,
            rows: 2,
        };
        let read = SceneRows {
            scl: scl.clone(),
            dns: dns.clone(),
            surface: None,
            subtract_dn: [1000; REFLECTANCE_BANDS],
        };
        let o = observe(7, read, at, 1);
        assert_eq!(o.scene, 7);
        // The buffer reaches the first block row, not the second.
        assert_eq!(o.clear.to_vec(), vec![false, false, true, true]);
        assert!((o.reflectance[(0, 0)] - 0.05).abs() < 1e-6);
        // Rule 4: the same cloud, called a surface, is clear and grows no buffer.
        let read = SceneRows {
            scl,
            dns,
            surface: Some(vec![true, false, false, false, false, false]),
            subtract_dn: [0; REFLECTANCE_BANDS],
        };
        assert_eq!(observe(7, read, at, 1).clear.to_vec(), vec![true; 4]);
    }
}

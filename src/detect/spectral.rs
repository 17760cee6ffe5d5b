//! Spectral change: did the surface change more than the scene's own noise, region by region?
//!
//! The built-up score of [`crate::detect`] says *what* a pixel became; this stage says *whether*
//! it changed at all, in a way that does not depend on one index. It uses the four 10 m bands
//! (blue, green, red, NIR) and three steps, each measured on real labelled imagery (OSCD, see
//! the README's Accuracy section):
//!
//! 1. **Relative normalization.** Each month's composite is shifted by that month's median over the
//!    AOI (haze, season and calibration move a whole scene; construction moves a few pixels), and
//!    each band is divided by its robust spread: the interquartile range of month-to-month
//!    differences over the AOI. A magnitude of 1 is then an ordinary month-to-month wobble.
//! 2. **Per-pixel step.** Of all splits of a pixel's clear months into before and after, the one
//!    with the largest change of the mean spectrum is taken; the pixel's magnitude is the RMS over
//!    bands of the difference of the medians of the two sides, divided by the noise of a median of
//!    that many months (counted up to three per side, so a long series does not make small drifts
//!    significant). Most months on each side must be nearer their own side's median than the
//!    other's (`persistence`), so a field cycling bare and green has no step: its "after" looks
//!    like its "before".
//! 3. **Regions, not pixels.** Magnitudes are first replaced by the median of their 3 x 3
//!    neighbourhood (a lone strong pixel, such as a misregistered edge, is dropped; a change two
//!    pixels wide is kept), then averaged over a 5 x 5 window; a changed region is a 4-connected set
//!    of pixels at or above `change_low` that holds at least one pixel at or above `change_high`
//!    (hysteresis). Speckle does not survive; the edge of a real change does.
//!
//! Pure functions over numbers; this module reads nothing.

use serde::{Deserialize, Serialize};

use crate::detect::builtup::DetectParams;
use crate::detect::composite;
use crate::detect::vectorize::label_regions;

/// Bands used, as indices into the composite band order (blue, green, red, nir, swir16, swir22).
pub(crate) const BANDS: [usize; 4] = [0, 1, 2, 3];

/// Radius of the square window magnitudes are averaged over (2: 5 x 5 pixels).
const SMOOTHING_RADIUS: usize = 2;

/// Radius of the square window whose median replaces a magnitude before averaging (1: 3 x 3).
const MEDIAN_RADIUS: usize = 1;

/// Months counted per side at most when scaling a magnitude by the noise of a median.
const MAX_MONTHS_PER_SIDE: usize = 3;

/// Fewest clear pixels for a month's median (or a pair's spread) to be trusted.
const MIN_PIXELS: usize = 50;

/// Smallest spread used, in reflectance: a perfectly still scene must not divide by zero.
const MIN_SPREAD: f32 = 0.002;

/// Per-month shifts and per-band spreads of the magnitude bands, measured over an AOI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per month, per band: the median reflectance over the AOI's clear pixels (months with too
    /// few clear pixels take the median over months).
    pub shift: Vec<[f32; 4]>,
    /// Per band: the interquartile range of month-to-month differences, the median over pairs of
    /// consecutive clear months. None when no two months overlap enough to measure it.
    pub spread: Option<[f32; 4]>,
}

/// The upper median of a non-empty slice (the upper of the two middle values for an even count);
/// reorders the slice.
fn median_of(values: &mut [f32]) -> f32 {
    let mid = values.len() / 2;
    if values.len() <= composite::SMALL {
        composite::insertion_sort(values);
        return values[mid];
    }
    let (_, m, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

fn iqr(values: &mut [f32]) -> f32 {
    let n = values.len();
    let (_, q1, _) = values.select_nth_unstable_by(n / 4, f32::total_cmp);
    let q1 = *q1;
    let (_, q3, _) = values.select_nth_unstable_by(3 * n / 4, f32::total_cmp);
    *q3 - q1
}

impl Normalization {
    /// Measures the normalization from monthly composites of the same pixels (a sample of the
    /// AOI is enough). `months[m]` is `pixels` long; each entry is the composite's magnitude bands,
    /// NaN in a gap.
    pub fn measure(months: &[Vec<[f32; 4]>]) -> Normalization {
        let mut shift: Vec<Option<[f32; 4]>> = months
            .iter()
            .map(|px| {
                let clear: Vec<&[f32; 4]> = px.iter().filter(|v| !v[0].is_nan()).collect();
                (clear.len() >= MIN_PIXELS)
                    .then(|| std::array::from_fn(|b| median_of(&mut clear.iter().map(|v| v[b]).collect::<Vec<_>>())))
            })
            .collect();
        let measured: Vec<usize> = (0..months.len()).filter(|&m| shift[m].is_some()).collect();
        let overall: [f32; 4] = std::array::from_fn(|b| {
            let mut v: Vec<f32> = measured.iter().filter_map(|&m| shift[m].map(|s| s[b])).collect();
            if v.is_empty() {
                0.0
            } else {
                median_of(&mut v)
            }
        });
        let mut pair_spreads: Vec<[f32; 4]> = Vec::new();
        for pair in measured.windows(2) {
            let (m0, m1) = (pair[0], pair[1]);
            let (s0, s1) = (shift[m0].expect("measured"), shift[m1].expect("measured"));
            let both: Vec<(&[f32; 4], &[f32; 4])> = months[m0]
                .iter()
                .zip(&months[m1])
                .filter(|(a, b)| !a[0].is_nan() && !b[0].is_nan())
                .collect();
            if both.len() < MIN_PIXELS {
                continue;
            }
            pair_spreads.push(std::array::from_fn(|b| {
                iqr(&mut both
                    .iter()
                    .map(|(x, y)| (y[b] - s1[b]) - (x[b] - s0[b]))
                    .collect::<Vec<_>>())
            }));
        }
        let spread = (!pair_spreads.is_empty()).then(|| {
            std::array::from_fn(|b| {
                median_of(&mut pair_spreads.iter().map(|s| s[b]).collect::<Vec<_>>()).max(MIN_SPREAD)
            })
        });
        for s in &mut shift {
            s.get_or_insert(overall);
        }
        Normalization {
            shift: shift.into_iter().map(|s| s.expect("filled")).collect(),
            spread,
        }
    }
}

/// A pixel's largest persistent spectral step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectralStep {
    /// Index into the series of the first clear month after the step.
    pub index: usize,
    /// RMS over bands of the standardized difference of medians (see the module documentation).
    pub magnitude: f32,
}

/// Finds the largest persistent spectral step in one pixel's monthly series (NaN = gap), or None.
pub fn spectral_step(series: &[[f32; 4]], norm: &Normalization, p: &DetectParams) -> Option<SpectralStep> {
    let spread = norm.spread?;
    let clear: Vec<(usize, [f32; 4])> = series
        .iter()
        .enumerate()
        .filter(|(_, v)| !v[0].is_nan())
        .map(|(m, v)| (m, std::array::from_fn(|b| (v[b] - norm.shift[m][b]) / spread[b])))
        .collect();
    let n = clear.len();
    if n < p.min_before.max(1) + p.min_after.max(1) {
        return None;
    }
    let noise = |nb: usize, na: usize| {
        let (nb, na) = (nb.min(MAX_MONTHS_PER_SIDE) as f32, na.min(MAX_MONTHS_PER_SIDE) as f32);
        ((1.0 / nb + 1.0 / na) / 2.0).sqrt()
    };
    let total: [f32; 4] = std::array::from_fn(|b| clear.iter().map(|(_, v)| v[b]).sum());
    let mut before = [0f32; 4];
    let mut best: Option<(f32, usize)> = None;
    for k in 1..n {
        for (b, acc) in before.iter_mut().enumerate() {
            *acc += clear[k - 1].1[b];
        }
        if k < p.min_before || n - k < p.min_after {
            continue;
        }
        let (nb, na) = (k as f32, (n - k) as f32);
        let moved: f32 = (0..4)
            .map(|b| ((total[b] - before[b]) / na - before[b] / nb).powi(2))
            .sum();
        let stat = moved.sqrt() / noise(k, n - k);
        if best.is_none_or(|(s, _)| stat > s) {
            best = Some((stat, k));
        }
    }
    let (_, k) = best?;
    let (b_side, a_side) = clear.split_at(k);
    let mut scratch = Vec::with_capacity(n);
    let mut side_median = |side: &[(usize, [f32; 4])]| -> [f32; 4] {
        std::array::from_fn(|b| {
            scratch.clear();
            scratch.extend(side.iter().map(|(_, v)| v[b]));
            median_of(&mut scratch)
        })
    };
    let (med_b, med_a) = (side_median(b_side), side_median(a_side));
    let dist = |v: &[f32; 4], c: &[f32; 4]| (0..4).map(|b| (v[b] - c[b]).powi(2)).sum::<f32>();
    let agreeing = |side: &[(usize, [f32; 4])], own: &[f32; 4], other: &[f32; 4]| {
        side.iter().filter(|(_, v)| dist(v, own) < dist(v, other)).count() as f32 / side.len() as f32
    };
    if agreeing(b_side, &med_b, &med_a) < p.persistence || agreeing(a_side, &med_a, &med_b) < p.persistence {
        return None;
    }
    let rms = (dist(&med_a, &med_b) / 4.0).sqrt();
    Some(SpectralStep {
        index: a_side[0].0,
        magnitude: rms / noise(b_side.len(), a_side.len()),
    })
}

/// The mean of `values` over a (2r+1)² window clipped to the image; NaN counts as 0 (no evidence).
pub(crate) fn box_mean(values: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    // Summed-area table in f64: exact enough over millions of pixels.
    let mut table = vec![0f64; (width + 1) * (height + 1)];
    for r in 0..height {
        let mut row = 0f64;
        for c in 0..width {
            let v = values[r * width + c];
            row += if v.is_nan() { 0.0 } else { v as f64 };
            table[(r + 1) * (width + 1) + c + 1] = table[r * (width + 1) + c + 1] + row;
        }
    }
    let mut out = vec![0f32; width * height];
    for r in 0..height {
        let (r0, r1) = (r.saturating_sub(radius), (r + radius + 1).min(height));
        for c in 0..width {
            let (c0, c1) = (c.saturating_sub(radius), (c + radius + 1).min(width));
            let at = |rr: usize, cc: usize| table[rr * (width + 1) + cc];
            let sum = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0);
            out[r * width + c] = (sum / ((r1 - r0) * (c1 - c0)) as f64) as f32;
        }
    }
    out
}

/// The median of `values` over a (2r+1)² window clipped to the image (the upper of the two middle
/// values when the window holds an even count); NaN counts as 0 (no evidence).
fn median_filter(values: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    let mut window = Vec::with_capacity((2 * radius + 1).pow(2));
    let mut out = vec![0f32; width * height];
    for r in 0..height {
        let (r0, r1) = (r.saturating_sub(radius), (r + radius + 1).min(height));
        for c in 0..width {
            let (c0, c1) = (c.saturating_sub(radius), (c + radius + 1).min(width));
            window.clear();
            for rr in r0..r1 {
                window.extend(
                    values[rr * width + c0..rr * width + c1]
                        .iter()
                        .map(|&v| if v.is_nan() { 0.0 } else { v }),
                );
            }
            out[r * width + c] = median_of(&mut window);
        }
    }
    out
}

/// Per-pixel magnitudes (0 or NaN where a pixel has no step) smoothed as step 3 of the module
/// documentation says: the 3 x 3 median, then the 5 x 5 mean. What the thresholds apply to.
pub(crate) fn smoothed_magnitude(magnitude: &[f32], width: usize, height: usize) -> Vec<f32> {
    let median = median_filter(magnitude, width, height, MEDIAN_RADIUS);
    box_mean(&median, width, height, SMOOTHING_RADIUS)
}

/// Hysteresis: the 4-connected regions of `values >= low` that hold at least one value >= `high`.
pub(crate) fn hysteresis(values: &[f32], width: usize, height: usize, low: f32, high: f32) -> Vec<bool> {
    let candidate: Vec<bool> = values.iter().map(|&v| v >= low).collect();
    let (labels, regions) = label_regions(&candidate, width, height);
    let strong: Vec<bool> = regions
        .iter()
        .map(|pixels| pixels.iter().any(|&p| values[p] >= high))
        .collect();
    labels.iter().map(|&l| l != 0 && strong[l as usize - 1]).collect()
}

/// The changed-region mask from per-pixel magnitudes (0 or NaN where a pixel has no step).
pub fn changed_regions(magnitude: &[f32], width: usize, height: usize, p: &DetectParams) -> Vec<bool> {
    let smooth = smoothed_magnitude(magnitude, width, height);
    hysteresis(&smooth, width, height, p.change_low, p.change_high)
}

#[cfg(test)]
mod tests {
    use super::*;
    const NAN: f32 = f32::NAN;

    #[test]
    fn median_of_is_the_upper_middle_of_the_sorted_values_at_every_length() {
        for n in 1..40usize {
            // A scrambled sequence with repeats and negatives.
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 13) as f32 - 6.0 + (i % 3) as f32 * 0.25)
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(median_of(&mut values.clone()), sorted[n / 2], "n = {n}");
        }
    }

    /// A still scene of `n` pixels with a little deterministic texture, for `months` months.
    fn still(n: usize, months: usize) -> Vec<Vec<[f32; 4]>> {
        (0..months)
            .map(|m| {
                (0..n)
                    .map(|p| {
                        let wobble = ((p * 7 + m * 13) % 11) as f32 * 0.002;
                        [0.05 + wobble, 0.08 + wobble, 0.06 + wobble, 0.30 - wobble]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn normalization_removes_a_scene_wide_shift_and_measures_the_wobble() {
        let mut months = still(400, 3);
        for v in &mut months[1] {
            for b in v.iter_mut() {
                *b += 0.05; // haze or calibration: the whole scene brighter
            }
        }
        let norm = Normalization::measure(&months);
        approx::assert_abs_diff_eq!(norm.shift[1][0] - norm.shift[0][0], 0.05, epsilon = 1e-5);
        let spread = norm.spread.unwrap();
        assert!(spread.iter().all(|&s| (0.002..0.03).contains(&s)), "{spread:?}");
    }

    #[test]
    fn a_month_without_enough_clear_pixels_takes_the_overall_shift() {
        let mut months = still(400, 3);
        months[2].iter_mut().for_each(|v| v[0] = NAN);
        let norm = Normalization::measure(&months);
        for b in 0..4 {
            let (lo, hi) = (
                norm.shift[0][b].min(norm.shift[1][b]),
                norm.shift[0][b].max(norm.shift[1][b]),
            );
            assert!((lo..=hi).contains(&norm.shift[2][b]), "{:?}", norm.shift);
        }
    }

    fn norm() -> Normalization {
        Normalization {
            shift: vec![[0.0; 4]; 8],
            spread: Some([0.01; 4]),
        }
    }

    #[test]
    fn a_persistent_change_is_a_step_dated_at_its_first_clear_month() {
        let field = [0.03, 0.06, 0.04, 0.35];
        let roof = [0.16, 0.17, 0.18, 0.24];
        let gap = [NAN; 4];
        let series = [field, field, gap, field, roof, gap, roof, roof];
        let p = DetectParams::default();
        let step = spectral_step(&series, &norm(), &p).unwrap();
        assert_eq!(step.index, 4);
        assert!(step.magnitude > 10.0, "{}", step.magnitude);
    }

    #[test]
    fn a_field_cycling_bare_and_green_has_no_step() {
        let green = [0.03, 0.06, 0.04, 0.35];
        let bare = [0.07, 0.10, 0.16, 0.23];
        let series = [green, bare, green, bare, green, bare, green, bare];
        assert_eq!(spectral_step(&series, &norm(), &DetectParams::default()), None);
    }

    #[test]
    fn without_a_measured_spread_nothing_is_a_step() {
        let n = Normalization {
            shift: vec![[0.0; 4]; 2],
            spread: None,
        };
        let series = [[0.0; 4], [1.0; 4]];
        let p = DetectParams {
            min_before: 1,
            min_after: 1,
            ..DetectParams::default()
        };
        assert_eq!(spectral_step(&series, &n, &p), None);
    }

    #[test]
    fn the_box_mean_counts_gaps_as_no_evidence() {
        let v = [9.0, NAN, 0.0, 0.0];
        let m = box_mean(&v, 2, 2, 1);
        assert_eq!(m, vec![2.25; 4]);
    }

    #[test]
    fn the_median_filter_drops_a_lone_pixel_and_keeps_a_band_two_pixels_wide() {
        #[rustfmt::skip]
        let v = [
            0.0, 0.0, 0.0, 5.0, 5.0, 0.0,
            0.0, 9.0, 0.0, 5.0, 5.0, 0.0,
            0.0, 0.0, 0.0, 5.0, 5.0, 0.0,
            0.0, 0.0, 0.0, 5.0, 5.0, 0.0,
            0.0, 0.0, 0.0, 5.0, 5.0, 0.0,
        ];
        let m = median_filter(&v, 6, 5, 1);
        assert_eq!(m[7], 0.0, "the lone 9 is gone");
        // Inside the band, and on the image edge (6 values: the upper middle one).
        assert_eq!((m[15], m[16], m[3]), (5.0, 5.0, 5.0));
        assert_eq!(m[14], 0.0, "beside the band: 3 of 9 values are 5");
    }

    #[test]
    fn the_median_filter_counts_gaps_as_no_evidence() {
        let v = [NAN, NAN, 1.0, NAN];
        // Each window is the whole 2 x 2 image: {0, 0, 0, 1}, upper middle 0.
        assert_eq!(median_filter(&v, 2, 2, 1), vec![0.0; 4]);
    }

    #[test]
    fn a_lone_strong_pixel_is_no_region_and_a_block_of_change_is_one() {
        let (w, h) = (16, 12);
        let mut m = vec![0f32; w * h];
        m[2 * w + 2] = 100.0; // alone: the mean over 5 x 5 would still be 4.0, above change_high
        for r in 5..9 {
            for c in 9..13 {
                m[r * w + c] = 10.0;
            }
        }
        let changed = changed_regions(&m, w, h, &DetectParams::default());
        assert!(!changed[2 * w + 2], "the lone pixel");
        assert!(changed[6 * w + 10] && changed[7 * w + 11], "the block");
        assert_eq!(changed[..4 * w].iter().filter(|&&c| c).count(), 0);
    }

    #[test]
    fn hysteresis_keeps_regions_with_a_strong_pixel_and_drops_weak_ones() {
        #[rustfmt::skip]
        let v = [
            2.0, 2.0, 0.0, 2.0,
            4.0, 2.0, 0.0, 2.0,
            0.0, 0.0, 0.0, 2.0,
        ];
        let kept = hysteresis(&v, 4, 3, 1.8, 3.2);
        let idx: Vec<usize> = (0..12).filter(|&i| kept[i]).collect();
        assert_eq!(idx, vec![0, 1, 4, 5]);
    }
}

//! Compositing: one value per pixel, band and month from the clear observations of that month.
//!
//! The per-pixel median of clear observations resists the cloud edges and shadows the mask missed.
//! A pixel with fewer clear observations than asked for is a gap (NaN), never a zero: a gap says
//! "not seen", a zero would say "black". Pure functions; this module reads nothing.

use std::borrow::Cow;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// One month's composite over a set of pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// Median reflectance, shape (bands, pixels); NaN where the pixel is a gap.
    pub bands: Array2<f32>,
    /// Clear observations behind each pixel.
    pub clear_obs: Array1<u16>,
}

/// The per-pixel, per-band median of the clear observations.
///
/// `observations[i]` is scene i's reflectance, shape (bands, pixels); `clear[i]` its clear mask
/// over the same pixels. Pixels with fewer than `min_clear` clear observations are gaps.
pub fn monthly_median(
    observations: &[ArrayView2<f32>],
    clear: &[ArrayView1<bool>],
    bands: usize,
    pixels: usize,
    min_clear: u16,
) -> Composite {
    assert_eq!(observations.len(), clear.len(), "one clear mask per observation");
    // Plain slices: this per-pixel loop is the hot path of a scan.
    let obs: Vec<Cow<[f32]>> = observations
        .iter()
        .map(|o| {
            o.as_slice()
                .map(Cow::Borrowed)
                .unwrap_or_else(|| Cow::Owned(o.iter().copied().collect()))
        })
        .collect();
    let masks: Vec<Cow<[bool]>> = clear
        .iter()
        .map(|m| {
            m.as_slice()
                .map(Cow::Borrowed)
                .unwrap_or_else(|| Cow::Owned(m.iter().copied().collect()))
        })
        .collect();
    let mut out = vec![f32::NAN; bands * pixels];
    let mut counts = Array1::zeros(pixels);
    let mut values = Vec::with_capacity(obs.len());
    let mut seen = Vec::with_capacity(obs.len());
    for p in 0..pixels {
        seen.clear();
        seen.extend((0..obs.len()).filter(|&i| masks[i][p]));
        let n = seen.len() as u16;
        counts[p] = n;
        if n == 0 || n < min_clear {
            continue;
        }
        for b in 0..bands {
            let at = b * pixels + p;
            // Sorting networks for the usual small stacks: the same values as sorting them.
            out[at] = match seen[..] {
                [a] => obs[a][at],
                [a, c] => 0.5 * (obs[a][at] + obs[c][at]),
                [a, c, d] => {
                    let (x, y, z) = (obs[a][at], obs[c][at], obs[d][at]);
                    x.min(y).max(x.max(y).min(z))
                }
                [a, c, d, e] => {
                    let (w, x, y, z) = (obs[a][at], obs[c][at], obs[d][at], obs[e][at]);
                    0.5 * (w.min(x).max(y.min(z)) + w.max(x).min(y.max(z)))
                }
                _ => {
                    values.clear();
                    values.extend(seen.iter().map(|&i| obs[i][at]));
                    median(&mut values)
                }
            };
        }
    }
    let out = Array2::from_shape_vec((bands, pixels), out).expect("bands x pixels");
    Composite {
        bands: out,
        clear_obs: counts,
    }
}

/// Median of a non-empty slice (mean of the middle two for an even count); reorders the slice.
pub(crate) fn median(values: &mut [f32]) -> f32 {
    let n = values.len();
    if n <= SMALL {
        insertion_sort(values);
    } else {
        values.sort_unstable_by(f32::total_cmp);
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Month stacks up to this size (most: six scenes a month at most) are sorted by insertion.
pub(crate) const SMALL: usize = 16;

/// Sorts a short slice in the order of `f32::total_cmp`, without the general sort's set-up.
pub(crate) fn insertion_sort(values: &mut [f32]) {
    for i in 1..values.len() {
        let v = values[i];
        let mut j = i;
        while j > 0 && values[j - 1].total_cmp(&v).is_gt() {
            values[j] = values[j - 1];
            j -= 1;
        }
        values[j] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

    #[test]
    fn the_short_sort_agrees_with_the_general_one() {
        let mut rng = 12345u32;
        for n in 1..=20 {
            let mut a: Vec<f32> = (0..n)
                .map(|_| {
                    rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (rng >> 8) as f32 / 1e5 - 50.0
                })
                .collect();
            let mut b = a.clone();
            b.sort_unstable_by(f32::total_cmp);
            let m = median(&mut a);
            assert_eq!(a, b, "{n} values");
            if n <= 4 {
                let stack: Vec<Array2<f32>> = b.iter().rev().map(|&v| Array2::from_elem((1, 1), v)).collect();
                let views: Vec<_> = stack.iter().map(|a| a.view()).collect();
                let clear = Array1::from_elem(1, true);
                let masks = vec![clear.view(); n];
                let composite = monthly_median(&views, &masks, 1, 1, 1);
                assert_eq!(
                    composite.bands[(0, 0)].to_bits(),
                    median(&mut b.clone()).to_bits(),
                    "network, {n}"
                );
            }
            let expected = if n % 2 == 1 {
                b[n / 2]
            } else {
                0.5 * (b[n / 2 - 1] + b[n / 2])
            };
            assert_eq!(m, expected);
        }
    }

    #[test]
    fn median_ignores_unclear_observations_and_marks_gaps() {
        // Two bands, three pixels, three scenes; the middle scene is a cloud over pixel 0.
        let a = array![[0.10f32, 0.20, 0.30], [0.5, 0.5, 0.5]];
        let b = array![[0.90f32, 0.22, 0.30], [0.9, 0.6, 0.5]];
        let c = array![[0.12f32, 0.24, 0.30], [0.6, 0.7, 0.5]];
        let ma = array![true, true, false];
        let mb = array![false, true, false];
        let mc = array![true, true, false];
        let comp = monthly_median(
            &[a.view(), b.view(), c.view()],
            &[ma.view(), mb.view(), mc.view()],
            2,
            3,
            1,
        );
        assert_relative_eq!(comp.bands[(0, 0)], 0.11);
        assert_relative_eq!(comp.bands[(1, 0)], 0.55);
        assert_relative_eq!(comp.bands[(0, 1)], 0.22);
        assert!(comp.bands[(0, 2)].is_nan() && comp.bands[(1, 2)].is_nan());
        assert_eq!(comp.clear_obs.to_vec(), vec![2, 3, 0]);
    }

    #[test]
    fn too_few_clear_observations_make_a_gap_not_a_zero() {
        let a = array![[0.3f32]];
        let m = array![true];
        let comp = monthly_median(&[a.view()], &[m.view()], 1, 1, 2);
        assert!(comp.bands[(0, 0)].is_nan());
        assert_eq!(comp.clear_obs[0], 1);
    }
}

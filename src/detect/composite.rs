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
            values.clear();
            values.extend(seen.iter().map(|&i| obs[i][b * pixels + p]));
            out[b * pixels + p] = median(&mut values);
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
    values.sort_unstable_by(f32::total_cmp);
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;

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

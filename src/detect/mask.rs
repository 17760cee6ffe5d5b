//! Masking: which pixels of a scene are a clear view of the ground.
//!
//! Pure functions over arrays; this module reads nothing. The rules, in order:
//! 1. no data in any band (digital number 0) is never clear;
//! 2. the Scene Classification Layer must say vegetation (4), not vegetated (5), water (6) or
//!    unclassified (7); saturated (1), dark/topographic shadow (2), cloud shadow (3), cloud (8, 9),
//!    cirrus (10) and snow (11) are not clear;
//! 3. pixels within `buffer` pixels of a cloud, cirrus or cloud-shadow pixel are not clear either,
//!    because SCL outlines are tight and cloud edges are where false "bright new surfaces" come from;
//! 4. temporal consistency overrides rule 2 for clouds that never move: a pixel SCL calls cloud
//!    (classes 8, 9) in at least `PERSISTENT_FRACTION` of the mostly clear scenes from some date on,
//!    and in at least `PERSISTENT_MIN_SCENES` of them, is a bright surface (a new white or metal
//!    roof), not a cloud. Real clouds move between acquisitions five days apart; a roof does not.
//!    From that date on, in mostly clear scenes only, its cloud flag is ignored (and does not grow
//!    the buffer). In cloudy scenes the flag stands: there the pixel may really be under cloud.

use ndarray::{Array2, ArrayView2, Zip};

/// SCL classes that show the ground.
pub(crate) fn scl_is_clear(scl: u16) -> bool {
    matches!(scl, 4..=7)
}

/// SCL classes whose surroundings are also distrusted (cloud shadow, clouds, cirrus).
pub(crate) fn scl_is_cloud_or_shadow(scl: u16) -> bool {
    matches!(scl, 3 | 8 | 9 | 10)
}

/// The clear-pixel mask of one scene window.
///
/// `scl` is the SCL window and `valid` is true where every reflectance band has data; both have
/// the same shape. Cloud, cirrus and shadow are grown by `buffer` pixels (a square neighbourhood).
pub(crate) fn clear_mask(scl: ArrayView2<u16>, valid: ArrayView2<bool>, buffer: usize) -> Array2<bool> {
    let (rows, cols) = scl.dim();
    let mut clear = Array2::from_elem((rows, cols), false);
    Zip::from(&mut clear)
        .and(scl)
        .and(valid)
        .for_each(|c, &s, &v| *c = v && scl_is_clear(s));
    if buffer == 0 {
        return clear;
    }
    let cloudy: Vec<bool> = scl.iter().map(|&s| scl_is_cloud_or_shadow(s)).collect();
    if !cloudy.contains(&true) {
        return clear;
    }
    let near_cloud = dilate(&cloudy, cols, rows, buffer);
    for (c, &near) in clear.iter_mut().zip(&near_cloud) {
        *c &= !near;
    }
    clear
}

/// `mask` (row-major, `width` x `height`) grown by `r` pixels in a square neighbourhood: a separable
/// max filter, first along rows, then along columns.
pub(crate) fn dilate(mask: &[bool], width: usize, height: usize, r: usize) -> Vec<bool> {
    // Each pass slides a window of 2r + 1 along its axis, counting the set pixels in it.
    let mut rows = vec![false; mask.len()];
    for (row, out) in mask.chunks_exact(width).zip(rows.chunks_exact_mut(width)) {
        let mut count = row[..r.min(width)].iter().filter(|&&m| m).count();
        for x in 0..width {
            if x + r < width {
                count += row[x + r] as usize;
            }
            if x > r {
                count -= row[x - r - 1] as usize;
            }
            out[x] = count > 0;
        }
    }
    let mut out = vec![false; mask.len()];
    let mut counts = vec![0u32; width];
    let row = |y: usize| &rows[y * width..(y + 1) * width];
    for y in 0..r.min(height) {
        counts.iter_mut().zip(row(y)).for_each(|(c, &m)| *c += m as u32);
    }
    for y in 0..height {
        if y + r < height {
            counts.iter_mut().zip(row(y + r)).for_each(|(c, &m)| *c += m as u32);
        }
        if y > r {
            counts.iter_mut().zip(row(y - r - 1)).for_each(|(c, &m)| *c -= m as u32);
        }
        out[y * width..(y + 1) * width]
            .iter_mut()
            .zip(&counts)
            .for_each(|(o, &c)| *o = c > 0);
    }
    out
}

/// A scene is mostly clear when at most this share of it is cloud, cirrus or shadow.
pub(crate) const MOSTLY_CLEAR: f64 = 0.3;
/// Share of the mostly clear scenes, from the onset on, that must call the pixel cloud.
pub(crate) const PERSISTENT_FRACTION: f32 = 0.8;
/// Fewest mostly clear scenes calling the pixel cloud before the flag is overridden.
pub(crate) const PERSISTENT_MIN_SCENES: usize = 3;

/// SCL classes a persistent bright surface is mistaken for (cloud medium and high probability).
pub(crate) fn scl_is_cloud(scl: u16) -> bool {
    matches!(scl, 8 | 9)
}

/// Rule 4: for one pixel, `flags[i]` says whether the i-th mostly clear scene (in time order)
/// calls it cloud. Returns the index from which the flags are a surface, not a cloud, or None.
pub(crate) fn persistent_cloud_onset(flags: &[bool]) -> Option<usize> {
    let mut flagged = 0usize;
    let mut onset = None;
    // From the end: the earliest start whose suffix is flagged often enough, starting on a flag.
    for (i, &f) in flags.iter().enumerate().rev() {
        flagged += f as usize;
        let len = flags.len() - i;
        if f && flagged >= PERSISTENT_MIN_SCENES && flagged as f32 >= PERSISTENT_FRACTION * len as f32 {
            onset = Some(i);
        }
    }
    onset
}

/// SCL class 5, "not vegetated": what rule 4 turns a persistent bright surface's cloud flag into.
const SCL_NOT_VEGETATED: u16 = 5;

/// Rule 4 over a set of pixels: `cloud[i][p]` says whether the i-th mostly clear scene (in time
/// order) calls pixel `p` cloud. Returns, per scene, the pixels whose flag is a persistent bright
/// surface from that scene on (None when the scene has none).
pub(crate) fn persistent_surfaces(cloud: &[Vec<bool>]) -> Vec<Option<Vec<bool>>> {
    let pixels = cloud.first().map_or(0, Vec::len);
    let mut flags = Vec::with_capacity(cloud.len());
    let onsets: Vec<Option<usize>> = (0..pixels)
        .map(|p| {
            flags.clear();
            flags.extend(cloud.iter().map(|c| c[p]));
            persistent_cloud_onset(&flags)
        })
        .collect();
    cloud
        .iter()
        .enumerate()
        .map(|(rank, flags)| {
            let surface: Vec<bool> = (0..pixels)
                .map(|p| flags[p] && onsets[p].is_some_and(|o| o <= rank))
                .collect();
            surface.iter().any(|&x| x).then_some(surface)
        })
        .collect()
}

/// Applies rule 4 to one scene's classes: a bright surface mistaken for cloud is "not vegetated",
/// so it is clear and grows no cloud buffer.
pub(crate) fn unflag_surfaces(scl: &mut [u16], surface: &[bool]) {
    scl.iter_mut()
        .zip(surface)
        .filter(|(_, &s)| s)
        .for_each(|(v, _)| *v = SCL_NOT_VEGETATED);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sliding_dilation_equals_the_neighbourhood_definition() {
        let (w, h) = (13, 9);
        let mut state = 7u32;
        let mask: Vec<bool> = (0..w * h)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16).is_multiple_of(9)
            })
            .collect();
        for r in 0..5 {
            let got = dilate(&mask, w, h, r);
            for y in 0..h {
                for x in 0..w {
                    let near = (y.saturating_sub(r)..(y + r + 1).min(h))
                        .any(|yy| (x.saturating_sub(r)..(x + r + 1).min(w)).any(|xx| mask[yy * w + xx]));
                    assert_eq!(got[y * w + x], near, "r {r} at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn dilation_reaches_r_pixels_in_every_direction_and_stops_at_the_edges() {
        // 7 x 5 grid, one pixel at row 2, column 3.
        let mut mask = vec![false; 35];
        mask[2 * 7 + 3] = true;
        let d = dilate(&mask, 7, 5, 1);
        let on: Vec<usize> = (0..35).filter(|&p| d[p]).collect();
        assert_eq!(on, vec![9, 10, 11, 16, 17, 18, 23, 24, 25]);
        let corner = dilate(&[true, false, false, false], 2, 2, 3);
        assert!(corner.iter().all(|&v| v));
    }

    #[test]
    fn clouds_shadows_and_no_data_are_not_clear() {
        let scl = array![[4u16, 5, 6, 7, 0], [3, 8, 9, 10, 11], [1, 2, 4, 4, 4]];
        let mut valid = Array2::from_elem(scl.dim(), true);
        valid[(2, 4)] = false;
        let clear = clear_mask(scl.view(), valid.view(), 0);
        assert_eq!(
            clear,
            array![
                [true, true, true, true, false],
                [false, false, false, false, false],
                [false, false, true, true, false]
            ]
        );
    }

    #[test]
    fn a_roof_called_cloud_in_every_clear_scene_after_it_is_built_is_a_surface() {
        let f = false;
        let t = true;
        assert_eq!(persistent_cloud_onset(&[f, f, t, f, f, t, t, t, t]), Some(5));
        // One missed flag among many does not break the run.
        assert_eq!(persistent_cloud_onset(&[f, f, t, t, f, t, t, t, t, t]), Some(2));
    }

    #[test]
    fn clouds_that_come_and_go_are_clouds() {
        let f = false;
        let t = true;
        assert_eq!(persistent_cloud_onset(&[t, f, t, f, f, t, f, t, f]), None);
        assert_eq!(
            persistent_cloud_onset(&[f, f, f, f, t, t]),
            None,
            "two scenes are too few"
        );
    }

    #[test]
    fn a_buffer_removes_the_ring_around_a_cloud_and_nothing_else() {
        let mut scl = Array2::from_elem((5, 5), 4u16);
        scl[(2, 2)] = 9;
        let valid = Array2::from_elem((5, 5), true);
        let clear = clear_mask(scl.view(), valid.view(), 1);
        let unclear: Vec<(usize, usize)> = clear.indexed_iter().filter(|(_, &c)| !c).map(|(i, _)| i).collect();
        assert_eq!(unclear.len(), 9);
        assert!(unclear
            .iter()
            .all(|&(r, c)| (1..=3).contains(&r) && (1..=3).contains(&c)));
    }
}

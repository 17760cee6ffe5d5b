//! The same-CRS fast path of window reading: when a band file is already in the grid's CRS, north-up,
//! and its pixels are the grid's pixels or whole n x n blocks of them (Sentinel-2's 10 m and 20 m
//! bands on the scan's 10 m grid), the window is cut from one plain read of the file instead of
//! going through GDAL's general warper, which cost most of a cold scan.
//!
//! The result must be exactly what `GDALReprojectImage` gives for the same window (GDAL 3.6,
//! nearest or bilinear, source no-data 0): the pixel-centre convention, the edge rules and the
//! arithmetic below follow GDAL's warp kernel (`GWKCheckAndComputeSrcOffsets`,
//! `GWKBilinearResample4Sample`, the rounding of `GWKSetPixelValueReal`), and `tests/it/aligned.rs`
//! compares both on real files. Bilinear is taken from source pixels of 1 or 2 grid pixels only,
//! and only where GDAL's source coordinates are exact binary fractions (see [`exact_axis`]), so that
//! no floating-point rounding can make the two differ; everything else keeps the warper.
//! Pure arithmetic: no GDAL, no I/O.

/// How a north-up source raster lines up with a north-up target grid in the same CRS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Target pixels per source pixel, along both axes.
    ratio: usize,
    /// The target's left edge lies `ox` target pixels right of the source's left edge (negative:
    /// left of it).
    ox: i64,
    /// The target's top edge lies `oy` target pixels below the source's top edge.
    oy: i64,
    /// Source size (columns, rows).
    src: (usize, usize),
    /// Target size (columns, rows).
    dst: (usize, usize),
    bilinear: bool,
}

/// A rectangle of source pixels: first column, first row, columns, rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SrcWindow {
    pub(crate) col: usize,
    pub(crate) row: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// The largest whole ratio of source to target pixel size nearest is taken for (bilinear: 2).
const MAX_NEAREST_RATIO: usize = 64;

/// `Some(n)` when `x` is exactly `n` (a whole number of modest size).
fn whole(x: f64) -> Option<i64> {
    let n = x.round();
    (n == x && n.abs() < 1e12).then_some(n as i64)
}

impl Plan {
    /// The plan for reading a source with geotransform `src_gt` and size `src` onto a target with
    /// geotransform `dst_gt` and size `dst` (both already known to be in the same CRS), or `None`
    /// when the fast path does not apply: rotated or south-up rasters, pixel sizes that are not a
    /// whole multiple of the target's, edges off the target's pixel edges, or bilinear with a
    /// ratio other than 1 or 2.
    pub(crate) fn new(
        src_gt: [f64; 6],
        src: (usize, usize),
        dst_gt: [f64; 6],
        dst: (usize, usize),
        bilinear: bool,
    ) -> Option<Plan> {
        let north_up = |gt: [f64; 6]| gt[2] == 0.0 && gt[4] == 0.0 && gt[1] > 0.0 && gt[5] == -gt[1];
        if !north_up(src_gt) || !north_up(dst_gt) {
            return None;
        }
        let (s, t) = (src_gt[1], dst_gt[1]);
        let ratio = whole(s / t).filter(|&r| r >= 1 && r as f64 * t == s)? as usize;
        if ratio > if bilinear { 2 } else { MAX_NEAREST_RATIO } {
            return None;
        }
        let ox = whole((dst_gt[0] - src_gt[0]) / t).filter(|&k| src_gt[0] + k as f64 * t == dst_gt[0])?;
        let oy = whole((src_gt[3] - dst_gt[3]) / t).filter(|&k| src_gt[3] - k as f64 * t == dst_gt[3])?;
        // Bilinear from coarser pixels weighs neighbours by the fraction of the centre's source
        // coordinate, which GDAL computes through the source's inverse geotransform; take it only
        // where that computation is exact, or a tie at .5 could round the other way.
        if bilinear && ratio > 1 {
            let exact_x = exact_axis([src_gt[0], src_gt[1]], [dst_gt[0], dst_gt[1]], ox, ratio, dst.0);
            let exact_y = exact_axis([src_gt[3], src_gt[5]], [dst_gt[3], dst_gt[5]], oy, ratio, dst.1);
            if !(exact_x && exact_y) {
                return None;
            }
        }
        Some(Plan {
            ratio,
            ox,
            oy,
            src,
            dst,
            // On the source's own pixels bilinear puts weight 1 on the containing pixel and 0 on
            // the others: the containing pixel's value, exactly, as nearest gives it.
            bilinear: bilinear && ratio > 1,
        })
    }

    /// The source pixels the target needs (with the bilinear neighbours), clipped to the source;
    /// `None` when the target lies wholly outside it.
    pub(crate) fn source_window(&self) -> Option<SrcWindow> {
        let r = self.ratio as i64;
        let span = |o: i64, n: usize, size: usize| -> Option<(usize, usize)> {
            let lo = (o.div_euclid(r) - 1).max(0);
            let hi = ((o + n as i64 + r - 1).div_euclid(r) + 1).min(size as i64);
            (lo < hi).then_some((lo as usize, (hi - lo) as usize))
        };
        let (col, width) = span(self.ox, self.dst.0, self.src.0)?;
        let (row, height) = span(self.oy, self.dst.1, self.src.1)?;
        Some(SrcWindow {
            col,
            row,
            width,
            height,
        })
    }

    /// The target window from the source pixels of `win` (row-major, 0 = no data), as GDAL's
    /// warper computes it: 0 wherever the target pixel's centre falls outside the source or on a
    /// no-data source pixel.
    pub(crate) fn resample(&self, win: SrcWindow, values: &[u16]) -> Vec<u16> {
        debug_assert_eq!(values.len(), win.width * win.height);
        let (w, h) = self.dst;
        let mut out = vec![0u16; w * h];
        let cols: Vec<Option<Axis>> = (0..w)
            .map(|i| Axis::new(self.ox + i as i64, self.ratio, self.src.0, win.col))
            .collect();
        let rows = (0..h).map(|j| Axis::new(self.oy + j as i64, self.ratio, self.src.1, win.row));
        let at = |col: usize, row: usize| values[row * win.width + col];
        for (out_row, row) in out.chunks_exact_mut(w).zip(rows) {
            let Some(row) = row else { continue };
            for (o, col) in out_row.iter_mut().zip(&cols) {
                let Some(col) = col else { continue };
                // A no-data containing pixel leaves the target at no data, for bilinear too.
                let centre = at(col.centre, row.centre);
                if centre == 0 {
                    continue;
                }
                *o = if self.bilinear {
                    bilinear(col, &row, at).unwrap_or(0)
                } else {
                    centre
                };
            }
        }
        out
    }
}

/// Whether GDAL's source pixel coordinate of every target pixel centre along one axis is exactly
/// `(offset + i + 0.5) / ratio`, computed both ways GDAL may compute it: target pixel to map
/// coordinate to source pixel through the source's inverse geotransform (`GDALInvGeoTransform`:
/// `-origin / size` and `1 / size`), and through that composed with the target's geotransform.
/// Exact for Sentinel-2 files (origins on multiples of 60 m); not for every window of a file whose
/// origin is not a whole number of source pixels. `src` and `dst` are (origin, signed pixel size).
fn exact_axis(src: [f64; 2], dst: [f64; 2], offset: i64, ratio: usize, n: usize) -> bool {
    let (inv0, inv1) = (-src[0] / src[1], 1.0 / src[1]);
    let (c0, c1) = (inv0 + dst[0] * inv1, dst[1] * inv1);
    (0..n).all(|i| {
        let p = i as f64 + 0.5;
        let want = (offset as f64 + p) / ratio as f64;
        inv0 + (dst[0] + p * dst[1]) * inv1 == want && c0 + p * c1 == want
    })
}

/// Where one target pixel centre falls along one axis of the source, in the source window's
/// pixels: the containing pixel, and the two bilinear neighbours (when inside the source) with the
/// first one's weight, as GDAL computes them.
#[derive(Debug, Clone, Copy)]
struct Axis {
    centre: usize,
    first: Option<usize>,
    second: Option<usize>,
    ratio: f64,
}

impl Axis {
    /// The axis for target pixel `t` (counted from the source's edge, in target pixels) with
    /// `ratio` target pixels per source pixel, on a source of `size` pixels read from `start`;
    /// `None` when the centre falls outside the source.
    fn new(t: i64, ratio: usize, size: usize, start: usize) -> Option<Axis> {
        // The source coordinate of the centre: exact, as the offsets are whole target pixels and
        // the ratio small (1/r is exact for r = 1, 2; for nearest only the floor matters, which
        // is far from any rounding).
        let x = (t as f64 + 0.5) / ratio as f64;
        // GWKCheckAndComputeSrcOffsets: the containing pixel is floor(coordinate + 1e-10).
        let centre = (x + 1e-10).floor() as i64;
        if centre < 0 || centre >= size as i64 {
            return None;
        }
        // GWKBilinearResample4Sample: the pixel left of the centre and its weight, the first pixel
        // taking all the weight on the source's first half pixel.
        let mut first = (x - 0.5).floor() as i64;
        let mut weight = 1.5 - (x - first as f64);
        if first == -1 {
            first = 0;
            weight = 1.0;
        }
        let inside = |c: i64| (0..size as i64).contains(&c).then(|| (c as usize) - start);
        Some(Axis {
            centre: centre as usize - start,
            first: inside(first),
            second: inside(first + 1),
            ratio: weight,
        })
    }
}

/// GDAL's `GWKBilinearResample4Sample` around (`col`, `row`) with no-data 0, rounded as
/// `GWKSetPixelValueReal` rounds to UInt16; `None` when no neighbour carries weight.
fn bilinear(col: &Axis, row: &Axis, at: impl Fn(usize, usize) -> u16) -> Option<u16> {
    let (rx, ry) = (col.ratio, row.ratio);
    let mut acc = 0.0f64;
    let mut divisor = 0.0f64;
    let mut add = |c: Option<usize>, l: Option<usize>, mult: f64| {
        if let (Some(c), Some(l)) = (c, l) {
            let v = at(c, l);
            if v != 0 {
                divisor += mult;
                acc += f64::from(v) * mult;
            }
        }
    };
    add(col.first, row.first, rx * ry);
    add(col.second, row.first, (1.0 - rx) * ry);
    add(col.first, row.second, rx * (1.0 - ry));
    add(col.second, row.second, (1.0 - rx) * (1.0 - ry));
    let value = if divisor == 1.0 {
        acc
    } else if divisor < 0.00001 {
        return None;
    } else {
        acc / divisor
    };
    Some(if value < 0.0 {
        0
    } else if value > 65535.0 {
        65535
    } else {
        (value + 0.5) as u16
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T10: [f64; 6] = [1000.0, 10.0, 0.0, 5000.0, 0.0, -10.0];

    fn gt(x0: f64, y0: f64, res: f64) -> [f64; 6] {
        [x0, res, 0.0, y0, 0.0, -res]
    }

    fn read(plan: &Plan, src: &[u16]) -> Vec<u16> {
        let win = plan.source_window().unwrap();
        let mut values = vec![];
        for l in win.row..win.row + win.height {
            for c in win.col..win.col + win.width {
                values.push(src[l * plan.src.0 + c]);
            }
        }
        plan.resample(win, &values)
    }

    #[test]
    fn plans_only_aligned_north_up_rasters() {
        let dst = gt(1020.0, 4980.0, 10.0);
        let plan = Plan::new(T10, (4, 4), dst, (3, 3), true).unwrap();
        assert_eq!((plan.ratio, plan.ox, plan.oy), (1, 2, 2));
        assert!(Plan::new(gt(1000.0, 5000.0, 20.0), (4, 4), dst, (3, 3), true).is_some());
        assert!(
            Plan::new(gt(1000.0, 5000.0, 60.0), (4, 4), dst, (3, 3), true).is_none(),
            "bilinear 6:1"
        );
        assert!(
            Plan::new(gt(1000.0, 5000.0, 60.0), (4, 4), dst, (3, 3), false).is_some(),
            "nearest 6:1"
        );
        assert!(
            Plan::new(gt(1005.0, 5000.0, 10.0), (4, 4), dst, (3, 3), false).is_none(),
            "half pixel"
        );
        assert!(
            Plan::new(gt(1000.0, 5000.0, 15.0), (4, 4), dst, (3, 3), false).is_none(),
            "1.5:1"
        );
        assert!(
            Plan::new(gt(1000.0, 5000.0, 5.0), (4, 4), dst, (3, 3), false).is_none(),
            "finer source"
        );
        let rotated = [1000.0, 10.0, 0.1, 5000.0, 0.0, -10.0];
        assert!(Plan::new(rotated, (4, 4), dst, (3, 3), false).is_none());
        let south_up = [1000.0, 10.0, 0.0, 5000.0, 0.0, 10.0];
        assert!(Plan::new(south_up, (4, 4), dst, (3, 3), false).is_none());
        // Sentinel-2's 20 m bands (origin a multiple of 60 m) onto a 10 m grid: exact.
        let s2 = gt(399_960.0, 1_900_020.0, 20.0);
        assert!(Plan::new(s2, (5490, 5490), gt(400_010.0, 1_899_990.0, 10.0), (300, 300), true).is_some());
        // An origin that is not a whole number of source pixels: GDAL's coordinates are inexact
        // for some windows, whose bilinear is left to the warper; nearest is not affected.
        let odd = gt(199_980.0, 2_800_020.0, 200.0);
        let window = gt(254_980.0, 2_801_420.0, 100.0);
        assert!(Plan::new(odd, (549, 549), window, (23, 17), true).is_none());
        assert!(Plan::new(odd, (549, 549), window, (23, 17), false).is_some());
    }

    #[test]
    fn same_pixels_are_copied_and_outside_is_no_data() {
        let src: Vec<u16> = (1..=16).collect();
        // Target one pixel left of and above the source, 3 x 3: its first row and column are outside.
        let plan = Plan::new(T10, (4, 4), gt(990.0, 5010.0, 10.0), (3, 3), true).unwrap();
        assert_eq!(read(&plan, &src), vec![0, 0, 0, 0, 1, 2, 0, 5, 6]);
        let plan = Plan::new(T10, (4, 4), gt(1030.0, 4970.0, 10.0), (2, 2), false).unwrap();
        assert_eq!(read(&plan, &src), vec![16, 0, 0, 0]);
        let far = Plan::new(T10, (4, 4), gt(2000.0, 5000.0, 10.0), (2, 2), false).unwrap();
        assert_eq!(far.source_window(), None);
    }

    #[test]
    fn nearest_takes_the_containing_coarse_pixel() {
        // 2 x 2 source of 20 m onto 10 m, offset by one 10 m pixel: centres at 0.75, 1.25, 1.75.
        let src = [10, 20, 30, 40];
        let plan = Plan::new(
            gt(1000.0, 5000.0, 20.0),
            (2, 2),
            gt(1010.0, 4990.0, 10.0),
            (3, 3),
            false,
        )
        .unwrap();
        assert_eq!(read(&plan, &src), vec![10, 20, 20, 30, 40, 40, 30, 40, 40]);
    }

    #[test]
    fn bilinear_weights_neighbours_and_skips_no_data() {
        let src = [10, 30, 50, 70];
        let plan = Plan::new(gt(1000.0, 5000.0, 20.0), (2, 2), gt(1000.0, 5000.0, 10.0), (4, 4), true).unwrap();
        let out = read(&plan, &src);
        // Column 0 sits on the source's left edge (GDAL: all weight to column 0); columns 1 and 2
        // take 3/4 and 1/4 of their neighbours; column 3 has no right neighbour.
        assert_eq!(&out[..4], &[10, 15, 25, 30]);
        assert_eq!(&out[4..8], &[20, 25, 35, 40]); // row 1: a quarter of the way to the second row
                                                   // A no-data neighbour is left out and the rest re-weighted; a no-data centre gives no data.
        let holes = [10, 0, 50, 70];
        let out = read(&plan, &holes);
        assert_eq!(out[1], 10, "(3/4 * 10) / (3/4)");
        assert_eq!(out[2], 0, "centre on the no-data pixel");
        // Halves round up, as GDAL rounds (value + 0.5).
        let ties = [1, 2, 1, 2];
        assert_eq!(read(&plan, &ties)[1], 1, "1.25");
        assert_eq!(read(&plan, &ties)[2], 2, "1.75");
        let ties = [1, 3, 1, 3];
        assert_eq!(read(&plan, &ties)[1], 2, "1.5 rounds up");
    }
}

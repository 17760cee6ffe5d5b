//! The aligned fast path of window reading gives exactly what GDAL's warper gives: for 10 m and
//! 20 m bands, categorical (nearest) and reflectance (bilinear), windows on the file's pixel grid
//! and off it by odd and even numbers of grid pixels, windows partly and wholly outside the file;
//! on the generated sample's COGs, on the real Earth Search COGs, and on random files full of
//! no-data holes and rounding ties.

use std::path::Path;

use compound_watch::window::{warp_aligned, warp_with_gdal, Target};
use rand::{Rng, SeedableRng};

use crate::common::{sample_dir, shared};

/// Targets of `res` metres in `epsg` around a north-up file with geotransform `gt` and size
/// `size`: small windows at offsets inside, across every edge and corner, and outside, plus one
/// window covering the whole file with a margin.
fn targets(epsg: u32, gt: [f64; 6], size: (usize, usize), res: f64) -> Vec<Target> {
    let ratio = (gt[1] / res).round() as i64;
    let (w, h) = (23i64, 17i64);
    let (fw, fh) = (size.0 as i64 * ratio, size.1 as i64 * ratio);
    let xs = [-w - 1, -w + 2, -1, 0, 3, fw / 2 + 1, fw - w + 1, fw - 2];
    let ys = [-h + 3, -2, 0, 1, fh / 2, fh - h, fh - 3, fh + 1];
    let target = |ox: i64, oy: i64, w: i64, h: i64| Target {
        epsg,
        geo_transform: [gt[0] + ox as f64 * res, res, 0.0, gt[3] - oy as f64 * res, 0.0, -res],
        width: w as usize,
        height: h as usize,
    };
    let mut all: Vec<Target> = xs
        .iter()
        .flat_map(|&ox| ys.iter().map(move |&oy| (ox, oy)))
        .map(|(ox, oy)| target(ox, oy, w, h))
        .collect();
    all.push(target(-3, -5, fw + 7, fh + 8));
    all
}

/// Compares the fast path with the warp on every target; returns the (non-zero, zero) pixels
/// compared, so that callers can check both data and no data were met.
fn compare(href: &Path, categorical: bool, targets: &[Target]) -> (usize, usize) {
    let href = href.display().to_string();
    let (mut set, mut unset) = (0, 0);
    for target in targets {
        let fast = warp_aligned(&href, categorical, target)
            .unwrap()
            .unwrap_or_else(|| panic!("{href} lines up with {target:?}, yet the fast path declined"));
        let warped = warp_with_gdal(&href, categorical, target).unwrap();
        assert_eq!(fast.epsg, warped.epsg);
        let diffs: Vec<(usize, u16, u16)> = (0..warped.values.len())
            .filter(|&p| fast.values[p] != warped.values[p])
            .map(|p| (p, fast.values[p], warped.values[p]))
            .collect();
        assert!(
            diffs.is_empty(),
            "{href} (categorical {categorical}) on {target:?}: {} of {} pixels differ from the warp, \
             first (pixel, fast, warp): {:?}",
            diffs.len(),
            warped.values.len(),
            &diffs[..diffs.len().min(8)]
        );
        set += warped.values.iter().filter(|&&v| v > 0).count();
        unset += warped.values.iter().filter(|&&v| v == 0).count();
    }
    (set, unset)
}

fn geo(path: &Path) -> ([f64; 6], (usize, usize)) {
    let ds = gdal::Dataset::open(path).unwrap();
    (ds.geo_transform().unwrap(), ds.raster_size())
}

#[test]
fn aligned_reads_equal_the_warp_on_the_sample_cogs() {
    let mut items: Vec<_> = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    items.sort();
    let (mut set, mut unset) = (0, 0);
    for item in items.iter().take(2) {
        for (name, categorical) in [
            ("B02", false),
            ("B04", false),
            ("B08", false),
            ("B11", false),
            ("B12", false),
            ("SCL", true),
        ] {
            let path = item.join(format!("{name}.tif"));
            let (gt, size) = geo(&path);
            let epsg = gdal::Dataset::open(&path)
                .unwrap()
                .spatial_ref()
                .unwrap()
                .auth_code()
                .unwrap() as u32;
            let (s, u) = compare(&path, categorical, &targets(epsg, gt, size, 10.0));
            set += s;
            unset += u;
            // A 10 m band read as a category takes the same path (nearest) and must agree too.
            if name == "B04" {
                compare(&path, true, &targets(epsg, gt, size, 10.0));
            }
        }
    }
    assert!(
        set > 100_000 && unset > 10_000,
        "compared {set} data and {unset} no-data pixels"
    );
}

#[test]
fn aligned_reads_equal_the_warp_on_the_earth_search_cog() {
    let Some(shared) = shared() else { return };
    let item = shared.join("data/s2-l2a-cog/S2A_29RKH_20200219_0_L2A");
    // The files are downsampled 10x: 10 m bands at 100 m, 20 m bands and SCL (a Byte band) at
    // 200 m. On a 100 m grid these are the scan's 10 m and 20 m cases, read as they are.
    let (mut set, mut unset) = (0, 0);
    for (name, categorical) in [("B04", false), ("B08", false), ("SCL", true)] {
        let path = item.join(format!("{name}.tif"));
        let (gt, size) = geo(&path);
        let (s, u) = compare(&path, categorical, &targets(32629, gt, size, 100.0));
        set += s;
        unset += u;
    }
    // Their origin (199980 m) is not a whole number of 200 m pixels, so GDAL's source coordinates
    // may carry rounding errors that decide ties at .5 the other way (on the window at 254980 m,
    // 2801420 m, 8 pixels in 391 differed by 1 before the fast path checked for this): the fast
    // path declines bilinear wherever the coordinates are inexact, and elsewhere must agree.
    let (mut taken, mut declined) = (0, 0);
    for name in ["B11", "B12"] {
        let path = item.join(format!("{name}.tif"));
        let (gt, size) = geo(&path);
        let all = targets(32629, gt, size, 100.0);
        let (lined_up, left): (Vec<Target>, Vec<Target>) = all
            .into_iter()
            .partition(|t| warp_aligned(&path.display().to_string(), false, t).unwrap().is_some());
        let known = [254_980.0, 100.0, 0.0, 2_801_420.0, 0.0, -100.0];
        assert!(
            left.iter().any(|t| t.geo_transform == known),
            "{name}: the inexact window is declined"
        );
        compare(&path, false, &lined_up);
        (taken, declined) = (taken + lined_up.len(), declined + left.len());
    }
    assert!(
        taken > 10 && declined > 10,
        "{taken} windows taken, {declined} declined"
    );
    // The same real values on the tile's real full-resolution geometry (origin 199980 m, 2800020 m;
    // 10 m and 20 m pixels), onto a 10 m grid, as the scan reads the original COGs.
    let dir = tempfile::tempdir().unwrap();
    for (name, categorical, res) in [
        ("B04", false, 10.0),
        ("B11", false, 20.0),
        ("B12", false, 20.0),
        ("SCL", true, 20.0),
    ] {
        let ds = gdal::Dataset::open(item.join(format!("{name}.tif"))).unwrap();
        let band = ds.rasterband(1).unwrap();
        let size = ds.raster_size();
        let gt = [199_980.0, res, 0.0, 2_800_020.0, 0.0, -res];
        let path = dir.path().join(format!("{name}.tif"));
        if name == "SCL" {
            let values = band.read_band_as::<u8>().unwrap().into_shape_and_vec().1;
            write_tiff(&path, 32629, gt, size, values);
        } else {
            let values = band.read_band_as::<u16>().unwrap().into_shape_and_vec().1;
            write_tiff(&path, 32629, gt, size, values);
        }
        let (s, u) = compare(&path, categorical, &targets(32629, gt, size, 10.0));
        set += s;
        unset += u;
    }
    assert!(
        set > 1_000_000 && unset > 10_000,
        "compared {set} data and {unset} no-data pixels"
    );
}

/// Writes `data` (`size` pixels) as a tiled, compressed GeoTIFF with no-data 0.
fn write_tiff<T: gdal::raster::GdalType + Copy>(
    path: &Path,
    epsg: u32,
    gt: [f64; 6],
    size: (usize, usize),
    data: Vec<T>,
) {
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let options: gdal::raster::RasterCreationOptions =
        ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"]
            .into_iter()
            .collect();
    let mut ds = driver
        .create_with_band_type_with_options::<T, _>(path, size.0, size.1, 1, &options)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    ds.set_spatial_ref(&compound_watch::srs(epsg).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.set_no_data_value(Some(0.0)).unwrap();
    band.write((0, 0), size, &mut gdal::raster::Buffer::new(size, data))
        .unwrap();
}

/// Values 1-4 make every fourth bilinear result a tie at .5; a fifth of the pixels are no data, in
/// specks and in one block, so that neighbours and containing pixels are missing everywhere.
#[test]
fn aligned_reads_equal_the_warp_on_random_values_with_no_data_holes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let (mut set, mut unset) = (0, 0);
    for (name, res, size) in [("ten", 10.0, (90, 70)), ("twenty", 20.0, (45, 35))] {
        let gt = [600_000.0, res, 0.0, 1_850_000.0, 0.0, -res];
        let data: Vec<u16> = (0..size.0 * size.1)
            .map(|p| {
                let (c, r) = (p % size.0, p / size.0);
                let block = (size.0 / 3..size.0 / 2).contains(&c) && (size.1 / 4..size.1 / 3).contains(&r);
                if block || rng.gen_bool(0.15) {
                    0
                } else {
                    rng.gen_range(1..=4)
                }
            })
            .collect();
        let wide = dir.path().join(format!("{name}-u16.tif"));
        write_tiff(&wide, 32647, gt, size, data.clone());
        let byte = dir.path().join(format!("{name}-u8.tif"));
        write_tiff(
            &byte,
            32647,
            gt,
            size,
            data.iter().map(|&v| v as u8 * 50).collect::<Vec<u8>>(),
        );
        for path in [&wide, &byte] {
            for categorical in [false, true] {
                let (s, u) = compare(path, categorical, &targets(32647, gt, size, 10.0));
                set += s;
                unset += u;
            }
        }
    }
    assert!(
        set > 50_000 && unset > 20_000,
        "compared {set} data and {unset} no-data pixels"
    );
}

#[test]
fn files_that_do_not_line_up_are_left_to_the_warp() {
    let path = sample_dir()
        .join("items")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (b04, b11) = (path.join("B04.tif"), path.join("B11.tif"));
    let (gt, _) = geo(&b04);
    let target = |epsg, dx: f64, res: f64| Target {
        epsg,
        geo_transform: [gt[0] + 100.0 + dx, res, 0.0, gt[3] - 100.0, 0.0, -res],
        width: 20,
        height: 20,
    };
    let declined = |href: &Path, categorical, t: &Target| {
        warp_aligned(&href.display().to_string(), categorical, t)
            .unwrap()
            .is_none()
    };
    assert!(
        !declined(&b04, false, &target(32647, 0.0, 10.0)),
        "the aligned case itself"
    );
    assert!(declined(&b04, false, &target(32647, 5.0, 10.0)), "half a pixel off");
    assert!(declined(&b04, true, &target(32647, 0.0, 15.0)), "15 m grid");
    assert!(
        declined(&b04, true, &target(32647, 0.0, 20.0)),
        "a grid coarser than the file"
    );
    assert!(declined(&b04, false, &target(32646, 0.0, 10.0)), "another UTM zone");
    assert!(
        declined(&b11, false, &target(32647, 0.0, 5.0)),
        "bilinear from 4 x 4 target pixels"
    );
    assert!(
        !declined(&b11, true, &target(32647, 0.0, 5.0)),
        "nearest from 4 x 4 target pixels"
    );
}

//! Reading: one band of one scene, cut to the analysis grid and warped onto it.
//!
//! The reader is a trait with one method so the scan can count reads and tests can serve recorded
//! data; the real one uses GDAL, which reads only the COG blocks the window needs. A GDAL dataset is
//! opened per call and never shared between threads (GDAL 3.6 datasets are `Send`, not `Sync`).

use gdal::Dataset;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::aligned::Plan;
use crate::io::gdal_ext::{self, Resampling};
use crate::io::source::Band;

/// Reads one band of one scene onto a grid.
pub trait WindowReader: Sync {
    /// The band at `href` warped onto `grid`.
    fn read(&self, href: &str, band: Band, grid: &Grid) -> Result<Window>;
}

/// One band of one scene on the analysis grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Raw digital numbers (0 = no data), row-major on the grid.
    pub values: Vec<u16>,
    /// The EPSG code of the file it was warped from, when the file names one.
    pub epsg: Option<u32>,
}

/// Reads local files and URLs through GDAL, retrying what is worth retrying.
///
/// Over HTTP GDAL itself retries 429 and 5xx answers (`GDAL_HTTP_MAX_RETRY`, delay doubling from
/// `GDAL_HTTP_RETRY_DELAY`); on top of that a whole window read that still fails (connection reset,
/// body cut short, timeout) is retried with exponential backoff, after GDAL's cache of that file is
/// cleared. 404 and 403 are never retried.
/// GDAL 3.6 does not read `Retry-After` on asset requests; STAC API requests honour it (`http`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GdalReader {
    retry: crate::io::http::RetryPolicy,
    /// The `--timeout` in seconds, set by [`GdalReader::new`] (None: GDAL's own defaults).
    timeout_secs: Option<u64>,
}

impl GdalReader {
    /// A reader with this retry policy; sets GDAL's HTTP options (timeouts, retries, no directory
    /// listing on open) for the whole process.
    pub fn new(retry: crate::io::http::RetryPolicy, timeout_secs: u64) -> Result<GdalReader> {
        let options = http_options(retry, timeout_secs).into_iter().chain([
            ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR".into()),
            ("GDAL_HTTP_MERGE_CONSECUTIVE_RANGES", "YES".into()),
            ("VSI_CACHE", "FALSE".into()),
        ]);
        for (key, value) in options {
            gdal::config::set_config_option(key, &value).map_err(Error::gdal(format!("setting {key}")))?;
        }
        // Public buckets (Earth Search's s3:// hrefs) are read unsigned unless credentials are set.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            gdal::config::set_config_option("AWS_NO_SIGN_REQUEST", "YES")
                .map_err(Error::gdal("setting AWS_NO_SIGN_REQUEST"))?;
        }
        Ok(GdalReader {
            retry,
            timeout_secs: Some(timeout_secs),
        })
    }

    /// Sets this reader's timeout and retries for GDAL on the calling thread, over the process-wide
    /// values, so that two readers with different settings in one process each get their own.
    fn apply_on_this_thread(&self) -> Result<()> {
        let Some(timeout_secs) = self.timeout_secs else {
            return Ok(());
        };
        for (key, value) in http_options(self.retry, timeout_secs) {
            gdal::config::set_thread_local_config_option(key, &value).map_err(Error::gdal(format!("setting {key}")))?;
        }
        Ok(())
    }
}

/// GDAL's HTTP timeout and retry options for a retry policy and a timeout.
fn http_options(retry: crate::io::http::RetryPolicy, timeout_secs: u64) -> [(&'static str, String); 4] {
    [
        ("GDAL_HTTP_TIMEOUT", timeout_secs.to_string()),
        ("GDAL_HTTP_CONNECTTIMEOUT", timeout_secs.min(10).to_string()),
        ("GDAL_HTTP_MAX_RETRY", retry.max_retries.to_string()),
        (
            "GDAL_HTTP_RETRY_DELAY",
            format!("{:.3}", retry.base_delay.as_secs_f64()),
        ),
    ]
}

/// The HTTP status of a one-byte GET of `href`, for URLs (None for local paths or no answer).
fn http_status(href: &str) -> Option<u16> {
    if !(href.starts_with("http://") || href.starts_with("https://")) {
        return None;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .get(href)
        .header("Range", "bytes=0-0")
        .call()
        .ok()
        .map(|r| r.status().as_u16())
}

/// Whether a failed read is final: the file is not there or not ours to read.
fn is_permanent(message: &str) -> bool {
    [
        "HTTP response code: 404",
        "HTTP response code: 403",
        "HTTP response code: 401",
        "No such file or directory",
        "does not exist",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The GDAL path for an href: URLs go through GDAL's virtual file systems.
pub(crate) fn gdal_path(href: &str) -> String {
    if let Some(rest) = href.strip_prefix("s3://") {
        format!("/vsis3/{rest}")
    } else if href.starts_with("http://") || href.starts_with("https://") {
        format!("/vsicurl/{href}")
    } else {
        href.strip_prefix("file://").unwrap_or(href).to_owned()
    }
}

/// Refuses, before GDAL opens it, a local path that is missing or not a regular file: a FIFO or a
/// device would block a read forever (`--timeout` is for HTTP), and a missing file is no network
/// blip to retry.
fn check_local(href: &str) -> Result<()> {
    let path = gdal_path(href);
    if path.starts_with("/vsi") {
        return Ok(());
    }
    let fail = |reason: &str| {
        Err(Error::Scene {
            id: href.to_owned(),
            reason: reason.to_owned(),
        })
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => fail("is not a regular file (a folder, FIFO or device); an asset must be a GeoTIFF file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fail("file not found; the catalog names a file that is not there (moved or deleted?)")
        }
        Err(e) => fail(&format!("cannot be read ({e})")),
    }
}

impl WindowReader for GdalReader {
    fn read(&self, href: &str, band: Band, grid: &Grid) -> Result<Window> {
        check_local(href)?;
        let local = !gdal_path(href).starts_with("/vsi");
        self.apply_on_this_thread()?;
        let mut attempt = 0;
        loop {
            let e = match read_once(href, band, grid) {
                Ok(window) => return Ok(window),
                Err(e) => e,
            };
            if local || attempt >= self.retry.max_retries || is_permanent(&e.to_string()) {
                return Err(e);
            }
            // GDAL often loses the HTTP status of a failed read; ask once, so that a 404, 403 or
            // 401 is reported as such and never retried.
            if let Some(status @ (401 | 403 | 404)) = http_status(href) {
                return Err(Error::Scene {
                    id: href.to_owned(),
                    reason: format!("HTTP {status} (not retried): {e}"),
                });
            }
            // GDAL keeps what it read of the file, a block cut short included; start afresh.
            gdal_ext::forget_cached(&gdal_path(href));
            std::thread::sleep(self.retry.backoff(attempt));
            attempt += 1;
        }
    }
}

fn read_once(href: &str, band: Band, grid: &Grid) -> Result<Window> {
    let target = Target {
        epsg: grid.epsg,
        geo_transform: grid.geo_transform(),
        width: grid.width,
        height: grid.height,
    };
    warp(href, band.is_categorical(), &target)
}

/// Any north-up raster to warp onto (the scan's grid, or another dataset's grid in evaluation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// EPSG code.
    pub epsg: u32,
    /// GDAL geotransform.
    pub geo_transform: [f64; 6],
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// Reads the first band of `href` warped onto `target` (nearest neighbour for categories,
/// bilinear otherwise), as u16 with 0 = no data. One attempt, no retries.
///
/// A file already in the target's CRS whose pixels line up with the target's (the usual
/// Sentinel-2 band on the scan's grid) is cut from one plain read instead of going through GDAL's
/// warper: the values are the same (see `io::aligned`), the time is a fraction.
pub fn warp(href: &str, categorical: bool, target: &Target) -> Result<Window> {
    let (src, epsg) = open(href)?;
    if let Some(window) = aligned(&src, href, categorical, target, epsg)? {
        return Ok(window);
    }
    gdal_warp(&src, href, categorical, target, epsg)
}

/// The aligned fast path of [`warp`] alone: `None` when `href` does not line up with `target`
/// (another CRS, pixels off the target's, a pixel size that is not a whole multiple of the
/// target's, a band type other than UInt16 or Byte, no-data other than 0).
pub fn warp_aligned(href: &str, categorical: bool, target: &Target) -> Result<Option<Window>> {
    let (src, epsg) = open(href)?;
    aligned(&src, href, categorical, target, epsg)
}

/// [`warp`] always through GDAL's warper (`GDALReprojectImage`), never the aligned fast path: the
/// reference the fast path is tested against.
pub fn warp_with_gdal(href: &str, categorical: bool, target: &Target) -> Result<Window> {
    let (src, epsg) = open(href)?;
    gdal_warp(&src, href, categorical, target, epsg)
}

/// Opens `href` and reads the EPSG code of its CRS, when it names one.
fn open(href: &str) -> Result<(Dataset, Option<u32>)> {
    let path = gdal_path(href);
    let src = Dataset::open(&path).map_err(|e| {
        // GDAL 3.6 often says only "Error msg: ''" here: say what it most likely means.
        let said = e.to_string();
        let reason = if path.starts_with("/vsicurl/") {
            "cannot be opened over HTTP (no answer in time, or not a GeoTIFF)"
        } else if path.starts_with("/vsi") {
            "cannot be opened (no answer in time, no access, or not a GeoTIFF)"
        } else {
            "is not a raster GDAL can read (not a GeoTIFF, or truncated)"
        };
        Error::Scene {
            id: href.to_owned(),
            reason: format!("{reason}; GDAL said: {said}"),
        }
    })?;
    let epsg = src
        .spatial_ref()
        .ok()
        .and_then(|s| s.auth_code().ok())
        .and_then(|c| u32::try_from(c).ok());
    Ok((src, epsg))
}

/// The window cut from one read of `src` when `src` is in the target's CRS and lines up with
/// `target` as `io::aligned` requires, for band 1 of UInt16 or Byte with no-data 0: the case that
/// module reproduces exactly. `None`: the warper must do it.
fn aligned(src: &Dataset, href: &str, categorical: bool, target: &Target, epsg: Option<u32>) -> Result<Option<Window>> {
    if epsg != Some(target.epsg) {
        return Ok(None);
    }
    use gdal::raster::GdalDataType;
    let Ok(gt) = src.geo_transform() else {
        return Ok(None);
    };
    let band = src
        .rasterband(1)
        .map_err(Error::gdal(format!("reading band 1 of {href}")))?;
    if !matches!(band.band_type(), GdalDataType::UInt16 | GdalDataType::UInt8) || band.no_data_value() != Some(0.0) {
        return Ok(None);
    }
    let Some(plan) = Plan::new(
        gt,
        src.raster_size(),
        target.geo_transform,
        (target.width, target.height),
        !categorical,
    ) else {
        return Ok(None);
    };
    let Some(win) = plan.source_window() else {
        return Ok(Some(Window {
            values: vec![0; target.width * target.height],
            epsg,
        }));
    };
    let mut values = vec![0u16; win.width * win.height];
    band.read_into_slice(
        (win.col as isize, win.row as isize),
        (win.width, win.height),
        (win.width, win.height),
        &mut values,
        None,
    )
    .map_err(Error::gdal(format!("reading {href}")))?;
    Ok(Some(Window {
        values: plan.resample(win, &values),
        epsg,
    }))
}

/// `src` warped onto `target` by GDAL's warper.
fn gdal_warp(src: &Dataset, href: &str, categorical: bool, target: &Target, epsg: Option<u32>) -> Result<Window> {
    let grid = target;
    let driver = gdal::DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("loading the MEM driver"))?;
    let mut dst = driver
        .create_with_band_type::<u16, _>("", grid.width, grid.height, 1)
        .map_err(Error::gdal("allocating a window"))?;
    dst.set_geo_transform(&grid.geo_transform)
        .map_err(Error::gdal("georeferencing a window"))?;
    dst.set_spatial_ref(&crate::grid::srs(grid.epsg)?)
        .map_err(Error::gdal("georeferencing a window"))?;
    dst.rasterband(1)
        .and_then(|mut b| b.set_no_data_value(Some(0.0)))
        .map_err(Error::gdal("setting no-data on a window"))?;
    let resampling = if categorical {
        Resampling::Nearest
    } else {
        Resampling::Bilinear
    };
    gdal_ext::reproject(src, &dst, resampling).map_err(Error::gdal(format!("warping {href}")))?;
    let data = dst
        .rasterband(1)
        .and_then(|b| b.read_band_as::<u16>())
        .map_err(Error::gdal(format!("reading the warped window of {href}")))?;
    Ok(Window {
        values: data.into_shape_and_vec().1,
        epsg,
    })
}

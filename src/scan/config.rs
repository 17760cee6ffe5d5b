//! The scan's configuration: every value a scan needs, with the documented defaults, checked
//! before anything is read or allocated.

use std::path::PathBuf;

use crate::aoi::Aoi;
use crate::detect::DetectParams;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::month::Month;
use crate::output::vector::Format;
use crate::scan::region::RegionStats;

/// Everything a scan needs to know, already checked.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// The site.
    pub aoi: Aoi,
    /// First month, included.
    pub from: Month,
    /// Last month, included.
    pub to: Month,
    /// Where the report and composite go.
    pub out_dir: PathBuf,
    /// Where warped windows are cached.
    pub cache_dir: PathBuf,
    /// Largest accepted scene cloud cover, percent.
    pub max_cloud_cover: f64,
    /// Change decision parameters.
    pub detect: DetectParams,
    /// Pixels of margin around SCL clouds and shadows that are not trusted either.
    pub cloud_buffer: usize,
    /// Clear observations a pixel needs in a month for that month not to be a gap.
    pub min_clear_obs: u16,
    /// Minimum mapping unit, m².
    pub min_area_m2: f64,
    /// Rows per processing block.
    pub block_rows: usize,
    /// Scenes read at once (I/O-bound, so more than the cores is fine).
    pub fetch_jobs: usize,
    /// Use only the cache and the previous scan's scene list: no search, no reads.
    pub offline: bool,
    /// Rule 4 of the mask (`detect::mask`): cloud flags that never move are bright surfaces.
    pub persistent_cloud_is_surface: bool,
    /// Fewest usable scenes a scan needs to publish anything; with fewer it leaves the previous
    /// outputs untouched ([`Error::Refused`]).
    pub min_scenes: usize,
    /// Smallest share of the scenes found that must be usable (read without error, with data over
    /// the AOI) for the scan to publish.
    pub min_used_share: f64,
    /// Largest analysis grid accepted, km² (the grid is the AOI's bounding box in UTM, so parts
    /// far apart make a large grid from a small area).
    pub max_grid_km2: f64,
    /// The grid's CRS (a UTM zone's EPSG code); `None` picks the zone of the AOI's centroid. The
    /// tiles of a region (`watch::tile`) are scanned in their region's zone.
    pub epsg: Option<u32>,
    /// Vector formats the report and the diff are also written in (GeoJSON always is).
    pub formats: Vec<Format>,
    /// Statistics of a region this scan is a part of ([`crate::scan::region`]), taken instead of
    /// measuring them on this scan's own pixels; `None` for a scan of its own.
    pub given: Option<RegionStats>,
    /// Also write month-by-month imagery (`months/YYYY-MM.tif`, `--months`): off by default, as it
    /// costs more than the rest of the outputs together (see the README's Outputs).
    pub monthly_composites: bool,
}

/// The first month with Sentinel-2 L2A data (Sentinel-2A began acquiring in June 2015).
pub const FIRST_MONTH: &str = "2015-06";

/// Bytes of memory a scan holds per grid pixel for the whole AOI at once (the recent composite,
/// change magnitudes, masks and per-pixel results); the per-block work comes on top of it.
const BYTES_PER_GRID_PIXEL: u64 = 54;

impl ScanConfig {
    /// A configuration with the documented defaults.
    pub fn new(aoi: Aoi, from: Month, to: Month, out_dir: PathBuf, cache_dir: PathBuf) -> ScanConfig {
        ScanConfig {
            aoi,
            from,
            to,
            out_dir,
            cache_dir,
            max_cloud_cover: 80.0,
            detect: DetectParams::default(),
            cloud_buffer: 2,
            min_clear_obs: 1,
            min_area_m2: 1_000.0,
            block_rows: 64,
            fetch_jobs: 8,
            offline: false,
            persistent_cloud_is_surface: true,
            min_scenes: 4,
            min_used_share: 0.5,
            max_grid_km2: 2_500.0,
            epsg: None,
            formats: Vec::new(),
            given: None,
            monthly_composites: false,
        }
    }

    /// Checks every value, naming the flag that is wrong.
    pub fn check(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::Config {
                field: field.into(),
                reason,
            })
        };
        if self.to < self.from {
            return bad(
                "--to",
                format!(
                    "{} is before --from {}; the period runs from --from to --to",
                    self.to, self.from
                ),
            );
        }
        if !(0.0..=100.0).contains(&self.max_cloud_cover) {
            return bad(
                "--max-cloud-cover",
                format!("{} is not a percentage (0-100)", self.max_cloud_cover),
            );
        }
        if self.min_area_m2 < 0.0 || !self.min_area_m2.is_finite() {
            return bad(
                "--min-area",
                format!("{} must be a positive area in m²", self.min_area_m2),
            );
        }
        if self.block_rows == 0 {
            return bad("block_rows", "must be at least 1".into());
        }
        let first: Month = FIRST_MONTH.parse().expect("a valid month");
        if self.from < first {
            return bad(
                "--from",
                format!(
                    "{} is before Sentinel-2 began ({first}); start at {first} or later",
                    self.from
                ),
            );
        }
        let next = Month::of(chrono::Utc::now().date_naive()).plus(1);
        if self.to > next {
            return bad(
                "--to",
                format!(
                    "{} is in the future; the last month with scenes is at most {next}",
                    self.to
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.min_used_share) {
            return bad(
                "--min-used-share",
                format!("{} is not a share between 0 and 1", self.min_used_share),
            );
        }
        if !(self.max_grid_km2.is_finite() && self.max_grid_km2 > 0.0) {
            return bad(
                "--max-aoi-km2",
                format!("{} must be a finite positive area in km²", self.max_grid_km2),
            );
        }
        Ok(())
    }

    /// Refuses, before anything is allocated, a grid larger than the limit or than this machine's
    /// memory could hold.
    pub fn check_grid(&self, grid: &Grid) -> Result<()> {
        let km2 = grid.len() as f64 * grid.res * grid.res / 1e6;
        let fail = |reason: String| {
            Err(Error::Aoi {
                path: self.aoi.origin.clone().into(),
                reason,
            })
        };
        if km2 > self.max_grid_km2 {
            return fail(format!(
                "its bounding box covers {km2:.0} km² ({} x {} pixels of 10 m), more than the {:.0} km² \
                 maximum (the AOI itself covers {:.1} km²: parts far apart make a large box); scan each \
                 part as its own AOI, or raise the limit with --max-aoi-km2",
                grid.width,
                grid.height,
                self.max_grid_km2,
                self.aoi.area_m2 / 1e6
            ));
        }
        let needed = grid.len() as u64 * BYTES_PER_GRID_PIXEL;
        if let Some(total) = physical_memory() {
            if needed > total / 10 * 8 {
                return fail(format!(
                    "its {km2:.0} km² grid needs about {} GB of memory, more than this machine's {} GB \
                     allow; split it into smaller AOIs",
                    needed >> 30,
                    total >> 30
                ));
            }
        }
        Ok(())
    }
}

/// Total physical memory in bytes, where the system says (Linux `/proc/meminfo`).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

//! Month-by-month imagery: one COG per month of the period, `months/YYYY-MM.tif`, with the red,
//! green, blue and NIR reflectance x 10000 of the month's composite and the clear observations
//! behind each pixel (0, no data, in the month's gaps and everywhere in a month without scenes).
//!
//! The detect stage computes blocks of rows in parallel, in any order, and hands each block's
//! months here as it finishes it ([`MonthStack::write_rows`]), so no more than a block's months
//! are ever held in memory. The rows go into one striped GeoTIFF per month (one row a strip, each
//! band apart, so every write fills whole strips), under a lock per month; [`MonthStack::finish`]
//! then copies each into a COG with the one COG writer of [`crate::output::report`] and deletes
//! the strips. Nothing here knows how a composite is made.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::month::Month;
use crate::output::report;

/// The folder of the monthly COGs, relative to `--out`.
pub(crate) const DIR: &str = "months";
/// The folder of the strips being filled, inside the monthly COGs' folder (removed by `finish`).
const STRIPS: &str = ".strips";
/// The bands of a monthly COG, in order.
pub(crate) const BANDS: [&str; 5] = [
    "red (B04)",
    "green (B03)",
    "blue (B02)",
    "nir (B08)",
    "clear observations",
];

/// The monthly COG of `month`, relative to `--out`.
pub(crate) fn file(month: Month) -> String {
    format!("{DIR}/{month}.tif")
}

/// The monthly COGs of a scan being filled.
pub(crate) struct MonthStack {
    /// The folder the COGs are written to (`months/` of the staging folder).
    dir: PathBuf,
    months: Vec<Month>,
    width: usize,
    /// Per month: its strips.
    strips: Vec<Mutex<gdal::Dataset>>,
}

impl MonthStack {
    /// Empty strips for every month of `months` over `grid`, in `dir`.
    pub(crate) fn create(dir: &Path, grid: &Grid, months: &[Month]) -> Result<MonthStack> {
        let strips_dir = dir.join(STRIPS);
        std::fs::create_dir_all(&strips_dir).map_err(Error::io(&strips_dir))?;
        let gtiff = gdal::DriverManager::get_driver_by_name("GTiff")
            .map_err(Error::gdal(format!("loading GTiff for {}", strips_dir.display())))?;
        let options: gdal::raster::RasterCreationOptions =
            ["INTERLEAVE=BAND", "BLOCKYSIZE=1", "COMPRESS=DEFLATE", "ZLEVEL=1"]
                .into_iter()
                .collect();
        let strips = months
            .iter()
            .map(|&m| {
                let path = strips_dir.join(format!("{m}.tif"));
                let gdal = |what: &str| Error::gdal(format!("{what} {}", path.display()));
                let mut ds = gtiff
                    .create_with_band_type_with_options::<u16, _>(&path, grid.width, grid.height, BANDS.len(), &options)
                    .map_err(gdal("creating"))?;
                ds.set_geo_transform(&grid.geo_transform())
                    .map_err(gdal("georeferencing"))?;
                ds.set_spatial_ref(&crate::grid::srs(grid.epsg)?)
                    .map_err(gdal("georeferencing"))?;
                Ok(Mutex::new(ds))
            })
            .collect::<Result<_>>()?;
        Ok(MonthStack {
            dir: dir.to_path_buf(),
            months: months.to_vec(),
            width: grid.width,
            strips,
        })
    }

    /// Writes whole rows from `row0` on of month `month` (an index into the period's months):
    /// one vector per band of [`BANDS`], row-major.
    pub(crate) fn write_rows(&self, month: usize, row0: usize, bands: &[Vec<u16>; 5]) -> Result<()> {
        let path = self.dir.join(STRIPS).join(format!("{}.tif", self.months[month]));
        let gdal = |what: &str| Error::gdal(format!("{what} {}", path.display()));
        // A block that panicked re-panics in the scan (rayon): a poisoned lock is never read from.
        let ds = self.strips[month].lock().unwrap_or_else(PoisonError::into_inner);
        let rows = bands[0].len() / self.width;
        for (i, data) in bands.iter().enumerate() {
            let mut band = ds.rasterband(i + 1).map_err(gdal("opening a band of"))?;
            let mut buffer = gdal::raster::Buffer::new((self.width, rows), data.clone());
            band.write((0, row0 as isize), (self.width, rows), &mut buffer)
                .map_err(gdal("writing rows of"))?;
        }
        Ok(())
    }

    /// Copies every month into its COG, labelled (`aoi` names the site in each description), and
    /// deletes the strips. Returns the COGs written. The months are copied in parallel.
    pub(crate) fn finish(self, aoi: &str) -> Result<Vec<PathBuf>> {
        let dir = &self.dir;
        let written = self
            .months
            .par_iter()
            .zip(self.strips.into_par_iter())
            .map(|(month, strips)| {
                let mut ds = strips.into_inner().unwrap_or_else(PoisonError::into_inner);
                let path = dir.join(format!("{month}.tif"));
                let description = format!(
                    "compound-watch composite of {aoi} for {month}: per pixel and band, the median of the \
                 month's clear observations (reflectance x 10000, bands 1-4) and how many there were \
                 (band 5); 0 is no data: not seen clearly that month"
                );
                let metadata = [
                    ("SCALE_FACTOR", "0.0001".to_owned()),
                    ("SCALED_BANDS", "1,2,3,4".to_owned()),
                    ("MONTH", month.to_string()),
                    (
                        "TIFFTAG_DATETIME",
                        format!("{}:{:02}:01 00:00:00", month.year, month.month),
                    ),
                ];
                report::label(&mut ds, &path, &BANDS, true, &description, &metadata)?;
                ds.flush_cache()
                    .map_err(Error::gdal(format!("flushing the strips of {}", path.display())))?;
                report::copy_as_cog(&ds, &path, |tmp| same_bands(tmp, &ds))?;
                Ok(path)
            })
            .collect::<Result<Vec<_>>>()?;
        let strips_dir = dir.join(STRIPS);
        std::fs::remove_dir_all(&strips_dir).map_err(Error::io(&strips_dir))?;
        Ok(written)
    }
}

/// Whether the COG at `path` reads back as `source` does, band by band.
fn same_bands(path: &Path, source: &gdal::Dataset) -> std::result::Result<(), String> {
    let ds = gdal::Dataset::open(path).map_err(|e| e.to_string())?;
    if ds.raster_size() != source.raster_size() || ds.raster_count() != source.raster_count() {
        return Err("its size or band count differs".into());
    }
    for i in 1..=source.raster_count() {
        let read = |d: &gdal::Dataset| {
            d.rasterband(i)
                .and_then(|b| b.read_band_as::<u16>())
                .map_err(|e| e.to_string())
        };
        if read(&ds)?.data() != read(source)?.data() {
            return Err(format!("band {i} reads back different"));
        }
    }
    Ok(())
}

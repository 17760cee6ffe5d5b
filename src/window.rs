//! Reading: one band of one scene, cut to the analysis grid and warped onto it.
//!
//! The reader is a trait with one method so the scan can count reads and tests can serve recorded
//! data; the real one uses GDAL, which reads only the COG blocks the window needs. A GDAL dataset is
//! opened per call and never shared between threads (GDAL 3.6 datasets are `Send`, not `Sync`).

use gdal::Dataset;

use crate::error::{Error, Result};
use crate::gdal_ext::{self, Resampling};
use crate::grid::Grid;
use crate::source::Band;

/// Reads one band of one scene onto a grid.
pub trait WindowReader: Sync {
    /// The band at `href` warped onto `grid`, as raw digital numbers (0 = no data), row-major.
    fn read(&self, href: &str, band: Band, grid: &Grid) -> Result<Vec<u16>>;
}

/// Reads local files and URLs through GDAL.
#[derive(Debug, Clone, Copy, Default)]
pub struct GdalReader;

/// The GDAL path for an href: URLs go through GDAL's virtual file systems.
pub fn gdal_path(href: &str) -> String {
    if let Some(rest) = href.strip_prefix("s3://") {
        format!("/vsis3/{rest}")
    } else if href.starts_with("http://") || href.starts_with("https://") {
        format!("/vsicurl/{href}")
    } else {
        href.strip_prefix("file://").unwrap_or(href).to_owned()
    }
}

impl WindowReader for GdalReader {
    fn read(&self, href: &str, band: Band, grid: &Grid) -> Result<Vec<u16>> {
        let path = gdal_path(href);
        let src = Dataset::open(&path).map_err(Error::gdal(format!("opening {href}")))?;
        let driver = gdal::DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("loading the MEM driver"))?;
        let mut dst = driver
            .create_with_band_type::<u16, _>("", grid.width, grid.height, 1)
            .map_err(Error::gdal("allocating a window"))?;
        dst.set_geo_transform(&grid.geo_transform())
            .map_err(Error::gdal("georeferencing a window"))?;
        dst.set_spatial_ref(&grid.spatial_ref()?)
            .map_err(Error::gdal("georeferencing a window"))?;
        dst.rasterband(1)
            .and_then(|mut b| b.set_no_data_value(Some(0.0)))
            .map_err(Error::gdal("setting no-data on a window"))?;
        let resampling = if band.is_categorical() {
            Resampling::Nearest
        } else {
            Resampling::Bilinear
        };
        gdal_ext::reproject(&src, &dst, resampling).map_err(Error::gdal(format!("warping {href}")))?;
        let data = dst
            .rasterband(1)
            .and_then(|b| b.read_band_as::<u16>())
            .map_err(Error::gdal(format!("reading the warped window of {href}")))?;
        Ok(data.into_shape_and_vec().1)
    }
}

//! The few GDAL calls the safe `gdal` crate does not wrap with the options this project needs:
//! warping with a chosen resampling algorithm, and polygonizing a label raster.
//!
//! This is the only module allowed `unsafe`; each block says why it is sound. Nothing else here.
#![allow(unsafe_code)]

use std::ptr::{null, null_mut};

use gdal::errors::GdalError;
use gdal::raster::RasterBand;
use gdal::vector::{Layer, LayerAccess};
use gdal::Dataset;
use gdal_sys::{CPLErr, GDALResampleAlg};

/// How a source band is resampled onto the analysis grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resampling {
    /// For categories (SCL): never invents a class.
    Nearest,
    /// For reflectance: 20 m bands onto the 10 m grid.
    Bilinear,
}

fn last_error(context: &str) -> GdalError {
    // Safety: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated buffer owned by
    // GDAL that stays valid until the next GDAL call on this thread; we copy it out at once.
    let msg = unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) }
        .to_string_lossy()
        .into_owned();
    GdalError::CplError {
        class: CPLErr::CE_Failure,
        number: 0,
        msg: format!("{context}: {msg}"),
    }
}

/// Warps every band of `src` onto `dst`'s grid and CRS. No-data values set on the bands of either
/// dataset are honoured (GDALReprojectImage reads them), so no-data never bleeds into valid pixels.
pub(crate) fn reproject(src: &Dataset, dst: &Dataset, resampling: Resampling) -> Result<(), GdalError> {
    let alg = match resampling {
        Resampling::Nearest => GDALResampleAlg::GRA_NearestNeighbour,
        Resampling::Bilinear => GDALResampleAlg::GRA_Bilinear,
    };
    // Safety: both handles come from live `Dataset`s borrowed for the whole call; null WKTs mean
    // "use the datasets' own CRS"; no progress callback and no warp options are passed.
    let rv = unsafe {
        gdal_sys::GDALReprojectImage(
            src.c_dataset(),
            null(),
            dst.c_dataset(),
            null(),
            alg,
            0.0,
            0.125,
            None,
            null_mut(),
            null_mut(),
        )
    };
    if rv != CPLErr::CE_None {
        return Err(last_error("GDALReprojectImage"));
    }
    Ok(())
}

/// Traces the outline of every 4-connected region of equal non-zero value in `band` into `layer`,
/// writing the value to the layer's field number `field`. Zero pixels are treated as background
/// because the band is also passed as its own mask.
pub(crate) fn polygonize(band: &RasterBand<'_>, layer: &Layer<'_>, field: i32) -> Result<(), GdalError> {
    // Safety: the band and the layer are borrowed from live datasets for the whole call; the band
    // is used as its own mask, which GDAL reads only; no options and no progress callback.
    let rv = unsafe {
        gdal_sys::GDALPolygonize(
            band.c_rasterband(),
            band.c_rasterband(),
            layer.c_layer(),
            field,
            null_mut(),
            None,
            null_mut(),
        )
    };
    if rv != CPLErr::CE_None {
        return Err(last_error("GDALPolygonize"));
    }
    Ok(())
}

/// Makes GDAL forget what its `/vsicurl/` cache holds for `path` (file size, blocks), so that a
/// retried read asks the server again instead of failing on a block that arrived cut short.
pub(crate) fn forget_cached(path: &str) {
    let Ok(prefix) = std::ffi::CString::new(path) else {
        return;
    };
    // Safety: `prefix` is a valid NUL-terminated string that outlives the call; GDAL only reads it.
    unsafe { gdal_sys::VSICurlPartialClearCache(prefix.as_ptr()) }
}

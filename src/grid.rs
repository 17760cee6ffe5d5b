//! The analysis grid: a 10 m UTM raster chosen from the AOI, snapped to whole multiples of the pixel
//! size so that every scan of the same AOI lands on the same pixels (and on Sentinel-2's own 10 m
//! pixel edges, which also sit on multiples of 10 m).
//!
//! Also home to the two coordinate conversions the pipeline needs (lon/lat <-> grid CRS); this module
//! reads no imagery.

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use geo::{Centroid, Coord, MapCoords, MultiPolygon};
use serde::{Deserialize, Serialize};

use crate::aoi::Aoi;
use crate::error::{Error, Result};

/// A north-up raster in a UTM CRS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// EPSG code of the UTM zone (326xx north, 327xx south).
    pub epsg: u32,
    /// Easting of the left edge, metres.
    pub x0: f64,
    /// Northing of the top edge, metres.
    pub y0: f64,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Pixel size, metres.
    pub res: f64,
}

/// The WGS84 UTM zone EPSG code for a lon/lat position.
pub(crate) fn utm_epsg(lon: f64, lat: f64) -> u32 {
    let zone = (((lon + 180.0) / 6.0).floor() as i64).clamp(0, 59) as u32 + 1;
    if lat >= 0.0 {
        32600 + zone
    } else {
        32700 + zone
    }
}

#[cfg(test)]
impl Grid {
    /// A 10 m UTM 47N grid of `width` x `height` pixels at the origin, for tests.
    pub(crate) fn for_tests(width: usize, height: usize) -> Grid {
        Grid {
            epsg: 32647,
            x0: 0.0,
            y0: 0.0,
            width,
            height,
            res: 10.0,
        }
    }
}

impl Grid {
    /// The grid at `res` metres that covers the AOI, in the UTM zone of its centroid.
    pub fn for_aoi(aoi: &Aoi, res: f64) -> Result<Grid> {
        Grid::for_aoi_in(aoi, res, None)
    }

    /// The grid at `res` metres that covers the AOI in the CRS `epsg`, or in the UTM zone of its
    /// centroid when `None`. The tiles of a region keep their region's zone, so that their pixels
    /// are the region's pixels.
    pub fn for_aoi_in(aoi: &Aoi, res: f64, epsg: Option<u32>) -> Result<Grid> {
        let epsg = match epsg {
            Some(epsg) => epsg,
            None => {
                let c = aoi.geometry.centroid().ok_or_else(|| Error::Aoi {
                    path: aoi.origin.clone().into(),
                    reason: "has no centroid".into(),
                })?;
                utm_epsg(c.x(), c.y())
            }
        };
        let utm = Projector::new(4326, epsg)?.multi_polygon(&aoi.geometry)?;
        use geo::BoundingRect;
        let r = utm.bounding_rect().expect("a checked AOI has coordinates");
        let x0 = (r.min().x / res).floor() * res;
        let y0 = (r.max().y / res).ceil() * res;
        let x1 = (r.max().x / res).ceil() * res;
        let y1 = (r.min().y / res).floor() * res;
        Ok(Grid {
            epsg,
            x0,
            y0,
            width: ((x1 - x0) / res).round() as usize,
            height: ((y0 - y1) / res).round() as usize,
            res,
        })
    }

    /// GDAL geotransform.
    pub fn geo_transform(&self) -> [f64; 6] {
        [self.x0, self.res, 0.0, self.y0, 0.0, -self.res]
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// True when the grid has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A name that identifies the grid exactly, used in cache keys.
    pub fn key(&self) -> String {
        format!(
            "{}_{}_{}_{}x{}_{}m",
            self.epsg, self.x0, self.y0, self.width, self.height, self.res
        )
    }

    /// The CRS as a GDAL spatial reference.
    pub fn spatial_ref(&self) -> Result<SpatialRef> {
        srs(self.epsg)
    }

    /// Map coordinates of a pixel corner (col, row may be fractional or equal to width/height).
    pub fn to_map(&self, col: f64, row: f64) -> Coord<f64> {
        Coord {
            x: self.x0 + col * self.res,
            y: self.y0 - row * self.res,
        }
    }

    /// One true per pixel whose centre lies inside the AOI, row-major.
    pub fn aoi_mask(&self, aoi: &Aoi) -> Result<Vec<bool>> {
        use gdal::vector::ToGdal;
        let utm = Projector::new(4326, self.epsg)?.multi_polygon(&aoi.geometry)?;
        let driver = gdal::DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("loading the MEM driver"))?;
        let mut ds = driver
            .create_with_band_type::<u8, _>("", self.width, self.height, 1)
            .map_err(Error::gdal("creating the AOI mask"))?;
        ds.set_geo_transform(&self.geo_transform())
            .map_err(Error::gdal("georeferencing the AOI mask"))?;
        ds.set_spatial_ref(&self.spatial_ref()?)
            .map_err(Error::gdal("georeferencing the AOI mask"))?;
        let geometry = utm.to_gdal().map_err(Error::gdal("converting the AOI"))?;
        gdal::raster::rasterize(&mut ds, &[1], &[geometry], &[1.0], None)
            .map_err(Error::gdal("rasterizing the AOI"))?;
        let band = ds.rasterband(1).map_err(Error::gdal("reading the AOI mask"))?;
        let buf = band.read_band_as::<u8>().map_err(Error::gdal("reading the AOI mask"))?;
        Ok(buf.data().iter().map(|&v| v != 0).collect())
    }
}

/// A GDAL spatial reference for an EPSG code, with x = easting/longitude whatever the authority says.
pub fn srs(epsg: u32) -> Result<SpatialRef> {
    let mut s = SpatialRef::from_epsg(epsg).map_err(Error::gdal(format!("loading EPSG:{epsg}")))?;
    s.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(s)
}

/// Converts geometries between two EPSG codes (x = longitude/easting on both sides).
pub struct Projector {
    transform: CoordTransform,
    from: u32,
    to: u32,
}

impl Projector {
    /// A converter from one EPSG CRS to another.
    pub fn new(from: u32, to: u32) -> Result<Projector> {
        let transform = CoordTransform::new(&srs(from)?, &srs(to)?)
            .map_err(Error::gdal(format!("setting up EPSG:{from} -> EPSG:{to}")))?;
        Ok(Projector { transform, from, to })
    }

    /// Converts one coordinate.
    pub fn coord(&self, c: Coord<f64>) -> Result<Coord<f64>> {
        let (mut x, mut y) = ([c.x], [c.y]);
        self.transform
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(Error::gdal(format!(
                "converting ({}, {}) from EPSG:{} to EPSG:{}",
                c.x, c.y, self.from, self.to
            )))?;
        Ok(Coord { x: x[0], y: y[0] })
    }

    /// Converts every coordinate of a multipolygon.
    pub fn multi_polygon(&self, g: &MultiPolygon<f64>) -> Result<MultiPolygon<f64>> {
        g.try_map_coords(|c| self.coord(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aoi::{from_bbox, AoiLimits};

    #[test]
    fn utm_zone_follows_longitude_and_hemisphere() {
        assert_eq!(utm_epsg(98.5, 16.7), 32647);
        assert_eq!(utm_epsg(103.5, 10.6), 32648);
        assert_eq!(utm_epsg(-47.9, -15.8), 32723);
    }

    #[test]
    fn grid_is_snapped_to_whole_pixels_and_covers_the_aoi() {
        let aoi = from_bbox([98.49, 16.67, 98.54, 16.71], &AoiLimits::default()).unwrap();
        let g = Grid::for_aoi(&aoi, 10.0).unwrap();
        assert_eq!(g.epsg, 32647);
        assert_eq!(g.x0 % 10.0, 0.0);
        assert_eq!(g.y0 % 10.0, 0.0);
        // About 5.3 km x 4.4 km at 10 m, plus the snapping margin.
        assert!((530..=545).contains(&g.width), "{}", g.width);
        assert!((440..=450).contains(&g.height), "{}", g.height);
        let mask = g.aoi_mask(&aoi).unwrap();
        let inside = mask.iter().filter(|&&m| m).count() as f64 * 100.0;
        approx::assert_relative_eq!(inside, aoi.area_m2, max_relative = 0.02);
    }
}

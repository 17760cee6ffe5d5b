//! Vectorizing: connected regions of changed pixels become polygons whose edges follow the pixel grid.
//!
//! Regions are 4-connected (pixels touching only at a corner are separate regions, so no polygon
//! ever touches itself at a point). Regions smaller than the minimum mapping unit are dropped as
//! regions, not pixel by pixel. Outlines are traced by GDAL's polygonizer on the grid and carry a
//! vertex only where the outline turns: no stair-step bloat, no collinear points.

use std::collections::VecDeque;

use gdal::vector::{LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use geo::{Coord, LineString, Polygon};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::gdal_ext;

/// One connected region of change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Region {
    /// Row-major indices of its pixels on the grid, ascending.
    pub pixels: Vec<usize>,
    /// Its outline in the grid's CRS.
    pub outline: Polygon<f64>,
}

/// Labels 4-connected regions of `true` pixels; returns one label per pixel (0 = none) and the
/// pixel lists of the regions, numbered from 1 in raster order of their first pixel.
pub(crate) fn label_regions(changed: &[bool], width: usize, height: usize) -> (Vec<u32>, Vec<Vec<usize>>) {
    let mut labels = vec![0u32; changed.len()];
    let mut regions = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..changed.len() {
        if !changed[start] || labels[start] != 0 {
            continue;
        }
        let label = regions.len() as u32 + 1;
        let mut pixels = Vec::new();
        labels[start] = label;
        queue.push_back(start);
        while let Some(p) = queue.pop_front() {
            pixels.push(p);
            let (r, c) = (p / width, p % width);
            let mut visit = |q: usize| {
                if changed[q] && labels[q] == 0 {
                    labels[q] = label;
                    queue.push_back(q);
                }
            };
            if c > 0 {
                visit(p - 1);
            }
            if c + 1 < width {
                visit(p + 1);
            }
            if r > 0 {
                visit(p - width);
            }
            if r + 1 < height {
                visit(p + width);
            }
        }
        pixels.sort_unstable();
        regions.push(pixels);
    }
    (labels, regions)
}

/// Removes vertices that lie on a straight line between their neighbours (exactly, on the grid).
fn drop_collinear(ring: &LineString<f64>) -> LineString<f64> {
    let pts: Vec<Coord<f64>> = ring.0[..ring.0.len().saturating_sub(1)].to_vec();
    let n = pts.len();
    if n < 4 {
        return ring.clone();
    }
    let mut keep: Vec<Coord<f64>> = (0..n)
        .filter(|&i| {
            let (a, b, c) = (pts[(i + n - 1) % n], pts[i], pts[(i + 1) % n]);
            let cross = (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x);
            cross.abs() > 1e-9
        })
        .map(|i| pts[i])
        .collect();
    keep.push(keep[0]);
    LineString::new(keep)
}

/// Finds the regions of `changed` with at least `min_pixels` pixels and traces their outlines.
pub(crate) fn regions(changed: &[bool], grid: &Grid, min_pixels: usize) -> Result<Vec<Region>> {
    let (mut labels, pixel_lists) = label_regions(changed, grid.width, grid.height);
    // Drop small regions, renumbering the kept ones 1..=n in raster order.
    let mut new_label = vec![0u32; pixel_lists.len() + 1];
    let mut kept = Vec::new();
    for (i, pixels) in pixel_lists.into_iter().enumerate() {
        if pixels.len() >= min_pixels {
            kept.push(pixels);
            new_label[i + 1] = kept.len() as u32;
        }
    }
    for l in labels.iter_mut() {
        *l = new_label[*l as usize];
    }
    if kept.is_empty() {
        return Ok(Vec::new());
    }
    let mut outlines: Vec<Option<Polygon<f64>>> = vec![None; kept.len()];
    let gdal = |what: &str| Error::gdal(format!("{what} while vectorizing"));
    let mem = gdal::DriverManager::get_driver_by_name("MEM").map_err(gdal("loading MEM"))?;
    let mut raster = mem
        .create_with_band_type::<u32, _>("", grid.width, grid.height, 1)
        .map_err(gdal("creating the label raster"))?;
    raster
        .set_geo_transform(&grid.geo_transform())
        .map_err(gdal("georeferencing labels"))?;
    {
        let mut band = raster.rasterband(1).map_err(gdal("opening the label band"))?;
        let mut buffer = gdal::raster::Buffer::new((grid.width, grid.height), labels);
        band.write((0, 0), (grid.width, grid.height), &mut buffer)
            .map_err(gdal("writing labels"))?;
    }
    let memory = gdal::DriverManager::get_driver_by_name("Memory").map_err(gdal("loading Memory"))?;
    let mut vectors = memory.create_vector_only("").map_err(gdal("creating a vector layer"))?;
    let layer = vectors
        .create_layer(LayerOptions {
            name: "regions",
            srs: None,
            ty: OGRwkbGeometryType::wkbPolygon,
            options: None,
        })
        .map_err(gdal("creating a vector layer"))?;
    layer
        .create_defn_fields(&[("label", OGRFieldType::OFTInteger)])
        .map_err(gdal("adding a field"))?;
    let band = raster.rasterband(1).map_err(gdal("opening the label band"))?;
    gdal_ext::polygonize(&band, &layer, 0).map_err(gdal("polygonizing"))?;
    let mut layer = vectors.layer(0).map_err(gdal("reopening the layer"))?;
    for feature in layer.features() {
        let label = feature
            .field_as_integer(0)
            .map_err(gdal("reading a label"))?
            .unwrap_or(0) as usize;
        let geometry = feature.geometry().ok_or_else(|| Error::Gdal {
            context: "polygonizing".into(),
            source: gdal::errors::GdalError::BadArgument("a region without geometry".into()),
        })?;
        let geo_types::Geometry::Polygon(polygon) = geometry.to_geo().map_err(gdal("converting an outline"))? else {
            continue;
        };
        if (1..=kept.len()).contains(&label) {
            let exterior = drop_collinear(polygon.exterior());
            let interiors = polygon.interiors().iter().map(drop_collinear).collect();
            outlines[label - 1] = Some(Polygon::new(exterior, interiors));
        }
    }
    kept.into_iter()
        .zip(outlines)
        .map(|(pixels, outline)| {
            let outline = outline.ok_or_else(|| Error::Gdal {
                context: "polygonizing".into(),
                source: gdal::errors::GdalError::BadArgument(format!(
                    "no outline for the region at pixel {}",
                    pixels[0]
                )),
            })?;
            Ok(Region { pixels, outline })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::Area;

    fn grid(width: usize, height: usize) -> Grid {
        Grid {
            epsg: 32647,
            x0: 500_000.0,
            y0: 1_800_000.0,
            width,
            height,
            res: 10.0,
        }
    }

    fn mask(rows: &[&str]) -> Vec<bool> {
        rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect()
    }

    #[test]
    fn diagonal_neighbours_are_separate_regions() {
        let m = mask(&["#....", ".#...", ".....", "...##", "...##"]);
        let (_, regions) = label_regions(&m, 5, 5);
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[2], vec![18, 19, 23, 24]);
    }

    #[test]
    fn an_l_shape_has_six_corners_and_its_exact_area() {
        let m = mask(&[".....", ".##..", ".##..", ".####", "....."]);
        let found = regions(&m, &grid(5, 5), 1).unwrap();
        assert_eq!(found.len(), 1);
        let outline = &found[0].outline;
        assert_eq!(outline.exterior().0.len(), 7, "{outline:?}");
        approx::assert_relative_eq!(outline.unsigned_area(), 800.0);
        // Pixel (1,1) has its top-left corner at x0 + 10, y0 - 10.
        assert!(outline.exterior().0.contains(&Coord {
            x: 500_010.0,
            y: 1_799_990.0
        }));
    }

    #[test]
    fn the_minimum_mapping_unit_drops_whole_regions() {
        let m = mask(&["##...", "##...", ".....", "....#", "....."]);
        let found = regions(&m, &grid(5, 5), 2).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pixels, vec![0, 1, 5, 6]);
    }

    #[test]
    fn a_ring_keeps_its_hole() {
        let m = mask(&["###", "#.#", "###"]);
        let found = regions(&m, &grid(3, 3), 1).unwrap();
        assert_eq!(found[0].outline.interiors().len(), 1);
        approx::assert_relative_eq!(found[0].outline.unsigned_area(), 800.0);
    }
}

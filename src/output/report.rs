//! Reports: the GeoJSON of new construction and the recent composite as a Cloud-Optimized GeoTIFF.
//!
//! The GeoJSON follows RFC 7946 to the letter: WGS84 longitude/latitude, at most 6 decimals
//! (~0.1 m), exterior rings counter-clockwise and holes clockwise, no `crs` member. Everything that
//! produced the figures (AOI, period, parameters, scenes and their offset decisions, skipped scenes,
//! software version) travels with it in one foreign member, `compound_watch`. Nothing volatile
//! (no clock time, no absolute temp paths) goes in, so the same scan writes the same bytes.

use std::path::Path;

use geo::{GeodesicArea, MapCoords, MultiPolygon, Orient, Polygon};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::grid::Projector;
use crate::io::atomic;
use crate::month::Month;
use crate::output::round;

/// Decimal places kept in coordinates (RFC 7946 §11.2 recommends no more than 6).
pub(crate) const DECIMALS: i32 = 6;

/// One polygon of new construction, ready to be written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Detection {
    /// Stable id: AOI slug and the grid row/column of the region's first pixel.
    pub id: String,
    /// Outline in WGS84, rounded and oriented for RFC 7946.
    #[serde(skip)]
    pub outline: Polygon<f64>,
    /// Geodesic area of `outline`, m².
    pub area_m2: f64,
    /// Confirmed, or provisional (seen in fewer clear months than confirmation needs).
    pub status: Status,
    /// The first clear month that shows the new surface.
    pub first_detected: Month,
    /// The last clear month before it: the change happened after this month and by
    /// `first_detected`.
    pub last_clear_before: Month,
    /// The month the detection became confirmed; None while provisional.
    pub confirmed_on: Option<Month>,
    /// 0..1, how well the change is supported (see `detect::step`).
    pub confidence: f64,
    /// Median, over the polygon's pixels, of the clear observations in the whole period.
    pub n_clear_obs: u32,
    /// Items whose clear pixels show the change: the last clear month before it, the month of
    /// first detection and the clear month after.
    pub scenes: Vec<String>,
}

/// Whether a detection is sure yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Seen in enough clear months after the change.
    Confirmed,
    /// Seen in fewer clear months after the change than confirmation needs (at the end of the
    /// period): a later scan confirms it (same id) or withdraws it.
    Provisional,
}

impl Status {
    /// The value of the `status` property.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Provisional => "provisional",
        }
    }
}

/// Converts a grid-CRS outline to a WGS84 polygon fit for RFC 7946.
pub(crate) fn wgs84_outline(outline: &Polygon<f64>, to_wgs84: &Projector) -> Result<Polygon<f64>> {
    let lonlat = outline.try_map_coords(|c| to_wgs84.coord(c))?;
    let rounded = lonlat.map_coords(|c| geo::Coord {
        x: round(c.x, DECIMALS),
        y: round(c.y, DECIMALS),
    });
    Ok(rounded.orient(geo::orient::Direction::Default))
}

/// The one way this project computes areas: geodesic, on the WGS84 ellipsoid, in m².
pub(crate) fn area_m2(polygon: &Polygon<f64>) -> f64 {
    polygon.geodesic_area_unsigned()
}

/// Writes every number of `value` that is exactly an `f32` as the shortest decimal that reads back
/// as that `f32` (`0.4`, not the `0.4000000059604645` of its widening to `f64`). For parameters and
/// statistics kept in `f32`; a true `f64` is left alone (it is almost never exactly an `f32`).
pub(crate) fn f32_as_written(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or_default();
                let narrow = x as f32;
                if narrow as f64 == x {
                    if let Some(short) = format!("{narrow}")
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                    {
                        *n = short;
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// The report as a GeoJSON FeatureCollection; `provenance` becomes the `compound_watch` member.
pub(crate) fn feature_collection(
    aoi_slug: &str,
    detections: &[Detection],
    provenance: &crate::output::provenance::Provenance,
) -> Result<geojson::FeatureCollection> {
    let features = detections
        .iter()
        .map(|d| {
            let mut props = Map::new();
            props.insert("id".into(), json!(d.id));
            props.insert("area_m2".into(), json!(round(d.area_m2, 1)));
            props.insert("area_ha".into(), json!(round(d.area_m2 / 10_000.0, 3)));
            props.insert("status".into(), json!(d.status.name()));
            props.insert("first_detected".into(), json!(d.first_detected.first_day().to_string()));
            props.insert(
                "last_clear_before".into(),
                json!(d.last_clear_before.first_day().to_string()),
            );
            props.insert(
                "confirmed_on".into(),
                json!(d.confirmed_on.map(|m| m.first_day().to_string())),
            );
            props.insert("confidence".into(), json!(round(d.confidence, 3)));
            props.insert("aoi".into(), json!(aoi_slug));
            props.insert("n_clear_obs".into(), json!(d.n_clear_obs));
            props.insert("scenes".into(), json!(d.scenes));
            geojson::Feature {
                bbox: None,
                geometry: Some(geojson::Geometry::from(&d.outline)),
                id: Some(geojson::feature::Id::String(d.id.clone())),
                properties: Some(props),
                foreign_members: None,
            }
        })
        .collect();
    let mut foreign = Map::new();
    foreign.insert(crate::output::provenance::MEMBER.into(), provenance.to_value()?);
    Ok(geojson::FeatureCollection {
        bbox: None,
        features,
        foreign_members: Some(foreign),
    })
}

/// Smallest region of construction counted in [`BelowUnit`], m²: a small building (four 10 m
/// pixels). Under it a region is as likely a speck of noise as a roof.
pub(crate) const BELOW_UNIT_FROM_M2: f64 = 400.0;

/// Regions of confirmed construction from [`BELOW_UNIT_FROM_M2`] up to the minimum mapping unit:
/// small buildings the scan saw and left out of the report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BelowUnit {
    /// How many regions.
    pub(crate) regions: usize,
    /// Their area together, m² (pixels x pixel area).
    pub(crate) area_m2: f64,
}

/// Member of the report that counts the construction below the mapping unit.
pub(crate) const BELOW_UNIT_MEMBER: &str = "below_mapping_unit";

/// Adds the [`BELOW_UNIT_MEMBER`] member to a report: `{"regions", "area_m2", "from_m2", "to_m2"}`,
/// `to_m2` being the minimum mapping unit `min_area_m2`.
pub(crate) fn add_below_unit(collection: &mut geojson::FeatureCollection, below: &BelowUnit, min_area_m2: f64) {
    collection.foreign_members.get_or_insert_with(Map::new).insert(
        BELOW_UNIT_MEMBER.into(),
        json!({
            "regions": below.regions,
            "area_m2": round(below.area_m2, 1),
            "from_m2": BELOW_UNIT_FROM_M2,
            "to_m2": min_area_m2,
        }),
    );
}

/// The AOI outline as a FeatureCollection (`aoi.geojson`, drawn in the QGIS project), rounded and
/// oriented like the report.
pub(crate) fn aoi_feature_collection(aoi: &crate::aoi::Aoi) -> geojson::FeatureCollection {
    let outline = aoi
        .geometry
        .map_coords(|c| geo::Coord {
            x: round(c.x, DECIMALS),
            y: round(c.y, DECIMALS),
        })
        .orient(geo::orient::Direction::Default);
    let mut props = Map::new();
    props.insert("id".into(), json!(aoi.slug));
    props.insert("name".into(), json!(aoi.name));
    props.insert("area_m2".into(), json!(round(aoi.area_m2, 1)));
    geojson::FeatureCollection {
        bbox: None,
        features: vec![geojson::Feature {
            bbox: None,
            geometry: Some(geojson::Geometry::from(&outline)),
            id: Some(geojson::feature::Id::String(aoi.slug.clone())),
            properties: Some(props),
            foreign_members: None,
        }],
        foreign_members: None,
    }
}

/// Writes a FeatureCollection atomically, pretty-printed, with a final newline.
pub(crate) fn write_geojson(path: &Path, collection: &geojson::FeatureCollection) -> Result<()> {
    atomic::write_json(path, collection)
}

/// Reads a report back (for incremental scans and diffs). A missing or malformed file is an error
/// that names it and says what was expected.
pub fn read_geojson(path: &Path) -> Result<geojson::FeatureCollection> {
    let fail = |what: String| Error::Report {
        path: path.to_path_buf(),
        reason: format!("{what}; expected a GeoJSON FeatureCollection such as the report.geojson a scan writes"),
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
    parse_geojson(&text, path)
}

/// Parses the text of a report; `path` is where it came from, named in errors. [`read_geojson`] is
/// this after reading the file.
pub fn parse_geojson(text: &str, path: &Path) -> Result<geojson::FeatureCollection> {
    let fail = |what: String| Error::Report {
        path: path.to_path_buf(),
        reason: format!("{what}; expected a GeoJSON FeatureCollection such as the report.geojson a scan writes"),
    };
    let value: Value = serde_json::from_str(text).map_err(|e| fail(format!("is not JSON ({e})")))?;
    serde_json::from_value(value).map_err(|e| fail(format!("is not a GeoJSON FeatureCollection ({e})")))
}

/// The polygons of a feature's geometry (a report's detection, a diff's change, a truth event):
/// a Polygon or MultiPolygon as a MultiPolygon, anything else (or no geometry) as an empty one.
pub fn multipolygon_of(feature: &geojson::Feature) -> MultiPolygon<f64> {
    feature
        .geometry
        .as_ref()
        .and_then(|g| geo_types::Geometry::<f64>::try_from(g.clone()).ok())
        .map(|g| match g {
            geo_types::Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
            geo_types::Geometry::MultiPolygon(m) => m,
            _ => MultiPolygon::new(vec![]),
        })
        .unwrap_or_else(|| MultiPolygon::new(vec![]))
}

/// A u16 raster to be written as a Cloud-Optimized GeoTIFF (0 = no data in every band).
pub(crate) struct CogRaster<'a> {
    /// EPSG code of the CRS.
    pub epsg: u32,
    /// GDAL geotransform.
    pub geo_transform: [f64; 6],
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Band values (row-major) with their descriptions.
    pub bands: Vec<(&'a [u16], &'a str)>,
    /// Colour interpretation: red, green, blue for the first three bands.
    pub rgb: bool,
    /// Free text stored in the file's metadata.
    pub description: &'a str,
    /// Extra metadata items.
    pub metadata: Vec<(&'a str, String)>,
}

/// Writes a raster as a deflate-compressed COG with overviews, atomically. The one COG writer.
pub(crate) fn write_cog(path: &Path, raster: &CogRaster<'_>) -> Result<()> {
    let gdal = |what: &str| Error::gdal(format!("{what} {}", path.display()));
    let mem = gdal::DriverManager::get_driver_by_name("MEM").map_err(gdal("loading MEM for"))?;
    let mut ds = mem
        .create_with_band_type::<u16, _>("", raster.width, raster.height, raster.bands.len())
        .map_err(gdal("allocating"))?;
    ds.set_geo_transform(&raster.geo_transform)
        .map_err(gdal("georeferencing"))?;
    ds.set_spatial_ref(&crate::grid::srs(raster.epsg)?)
        .map_err(gdal("georeferencing"))?;
    for (i, (data, _)) in raster.bands.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(gdal("opening a band of"))?;
        let mut buffer = gdal::raster::Buffer::new((raster.width, raster.height), data.to_vec());
        band.write((0, 0), (raster.width, raster.height), &mut buffer)
            .map_err(gdal("writing"))?;
    }
    let names: Vec<&str> = raster.bands.iter().map(|(_, name)| *name).collect();
    label(&mut ds, path, &names, raster.rgb, raster.description, &raster.metadata)?;
    copy_as_cog(&ds, path, |tmp| verify_cog(tmp, raster))
}

/// Labels a u16 raster as every COG of a scan is labelled: a description and metadata items, and
/// per band its name, 0 as no data and, with `rgb`, red, green, blue for the first three bands.
/// `path` is the file it becomes, for errors.
pub(crate) fn label(
    ds: &mut gdal::Dataset,
    path: &Path,
    names: &[&str],
    rgb: bool,
    description: &str,
    metadata: &[(&str, String)],
) -> Result<()> {
    use gdal::raster::ColorInterpretation as C;
    use gdal::Metadata;
    let gdal = |what: &str| Error::gdal(format!("{what} {}", path.display()));
    ds.set_metadata_item("DESCRIPTION", description, "")
        .map_err(gdal("describing"))?;
    for (key, value) in metadata {
        ds.set_metadata_item(key, value, "").map_err(gdal("describing"))?;
    }
    for (i, name) in names.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(gdal("opening a band of"))?;
        band.set_no_data_value(Some(0.0)).map_err(gdal("setting no-data in"))?;
        let interp = match (rgb, i) {
            (true, 0) => C::RedBand,
            (true, 1) => C::GreenBand,
            (true, 2) => C::BlueBand,
            (false, 0) if names.len() == 1 => C::GrayIndex,
            _ => C::Undefined,
        };
        band.set_color_interpretation(interp)
            .map_err(gdal("labelling bands of"))?;
        band.set_description(name).map_err(gdal("naming bands of"))?;
    }
    Ok(())
}

/// Copies a labelled raster into a deflate-compressed COG with overviews at `path`, atomically:
/// into a temp file beside it, synced, `check`ed (its reason names what is wrong), then renamed.
pub(crate) fn copy_as_cog(
    ds: &gdal::Dataset,
    path: &Path,
    check: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    let gdal = |what: &str| Error::gdal(format!("{what} {}", path.display()));
    let cog = gdal::DriverManager::get_driver_by_name("COG").map_err(gdal("loading the COG driver for"))?;
    let tmp = atomic::temp_path_beside(path)?;
    let options: gdal::raster::RasterCreationOptions = [
        "COMPRESS=DEFLATE",
        "PREDICTOR=2",
        "BLOCKSIZE=256",
        "OVERVIEWS=AUTO",
        "RESAMPLING=AVERAGE",
    ]
    .into_iter()
    .collect();
    let out = ds.create_copy(&cog, &tmp, &options).map_err(gdal("writing the COG"))?;
    out.close().map_err(gdal("closing"))?;
    // GDAL 3.6 does not report every write error (a full disk can leave a truncated file behind a
    // successful close): sync it, then read every band back before it may be published.
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(path))?;
    check(&tmp).map_err(|reason| Error::Report {
        path: path.to_path_buf(),
        reason: format!("was not written whole ({reason}); check the free disk space and rerun"),
    })?;
    atomic::publish(tmp, path)
}

/// Reads a written COG back and compares it with what was meant to be written.
fn verify_cog(path: &Path, raster: &CogRaster<'_>) -> std::result::Result<(), String> {
    let ds = gdal::Dataset::open(path).map_err(|e| e.to_string())?;
    if ds.raster_size() != (raster.width, raster.height) || ds.raster_count() != raster.bands.len() {
        return Err("its size or band count differs".into());
    }
    for (i, (data, _)) in raster.bands.iter().enumerate() {
        let band = ds.rasterband(i + 1).map_err(|e| e.to_string())?;
        let read = band.read_band_as::<u16>().map_err(|e| e.to_string())?;
        if read.data() != *data {
            return Err(format!("band {} reads back different", i + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Winding};

    #[test]
    fn f32_parameters_are_written_as_set_not_as_widened() {
        let v = f32_as_written(json!({"min_step": 0.4f32, "spread": [0.0123f32], "cc": 12.3456789f64}));
        assert_eq!(v.to_string(), r#"{"min_step":0.4,"spread":[0.0123],"cc":12.3456789}"#);
    }

    #[test]
    fn outlines_are_rounded_to_six_decimals_and_counter_clockwise() {
        // A clockwise 100 m square in UTM 47N near Myawaddy.
        let utm = polygon![(x: 480_000.0, y: 1_845_000.0), (x: 480_000.0, y: 1_845_100.0), (x: 480_100.0, y: 1_845_100.0), (x: 480_100.0, y: 1_845_000.0)];
        let p = wgs84_outline(&utm, &Projector::new(32647, 4326).unwrap()).unwrap();
        assert!(p.exterior().is_ccw());
        for c in p.exterior().coords() {
            assert_eq!((c.x * 1e6).round() / 1e6, c.x);
            assert!((98.0..99.0).contains(&c.x) && (16.0..17.0).contains(&c.y));
        }
        approx::assert_relative_eq!(area_m2(&p), 10_000.0, max_relative = 0.01);
    }
}

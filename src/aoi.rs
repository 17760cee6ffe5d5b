//! Areas of interest: load a site polygon from GeoJSON (or `--bbox`) and refuse, with a sentence
//! naming the file and the fix, anything that would silently give a wrong scan.
//!
//! This module only reads the AOI file; it knows nothing of grids or imagery.

use std::path::{Path, PathBuf};

use geo::{Coord, GeodesicArea, LineString, MultiPolygon, Polygon, Validation};
use geojson::GeoJson;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Limits an AOI must respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AoiLimits {
    /// Largest accepted area in km² (the default 2,500 km² is a 50 km square).
    pub max_area_km2: f64,
    /// Smallest accepted area in m²; anything smaller holds no minimum mapping unit worth scanning.
    pub min_area_m2: f64,
}

/// Most vertices an AOI may have. A site outline needs tens or hundreds; the validity check is
/// quadratic in them, so a traced coastline of a million vertices would hang a scan.
pub const MAX_VERTICES: usize = 10_000;

/// Largest AOI file read, bytes (10,000 vertices take well under 1 MB of GeoJSON).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

impl Default for AoiLimits {
    fn default() -> Self {
        AoiLimits {
            max_area_km2: 2_500.0,
            min_area_m2: 10_000.0,
        }
    }
}

/// A checked area of interest in WGS84 longitude/latitude.
#[derive(Debug, Clone)]
pub struct Aoi {
    /// Human name (the `name` property, else the file stem).
    pub name: String,
    /// Short identifier used in file names and feature ids (the file stem).
    pub slug: String,
    /// Where it came from: a file path or the `--bbox` text.
    pub origin: String,
    /// The site outline, lon/lat degrees.
    pub geometry: MultiPolygon<f64>,
    /// Geodesic area in m².
    pub area_m2: f64,
    /// The first feature's properties (`country`, `description`, `sources`, ...), kept for reports.
    pub properties: Map<String, Value>,
}

impl Aoi {
    /// Bounding box `[west, south, east, north]` in degrees.
    pub fn bbox(&self) -> [f64; 4] {
        use geo::BoundingRect;
        let r = self.geometry.bounding_rect().expect("a checked AOI has coordinates");
        [r.min().x, r.min().y, r.max().x, r.max().y]
    }

    /// The AOI as a JSON record that [`Aoi::from_record`] reads back exactly: every field, the
    /// outline as a GeoJSON geometry with coordinates at full precision (the shortest decimal
    /// that reads back as the same `f64`), so the same grid and mask follow from it.
    pub fn to_record(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "slug": self.slug,
            "origin": self.origin,
            "area_m2": self.area_m2,
            "properties": self.properties,
            "geometry": geojson::Geometry::from(&self.geometry),
        })
    }

    /// An AOI from a record written by [`Aoi::to_record`]; `path` is where it came from, named in
    /// errors. The outline was checked when the record was written and is taken as it is.
    pub fn from_record(record: &Value, path: &Path) -> Result<Aoi> {
        let fail = |reason: String| Error::Aoi {
            path: path.to_path_buf(),
            reason: format!("{reason}; it is not an AOI record written by compound-watch"),
        };
        let text = |key: &str| {
            record[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| fail(format!("has no `{key}` string")))
        };
        let geometry: geojson::Geometry = serde_json::from_value(record["geometry"].clone())
            .map_err(|e| fail(format!("its `geometry` is not GeoJSON ({e})")))?;
        let geometry = match MultiPolygon::<f64>::try_from(geometry.value) {
            Ok(m) => m,
            Err(e) => return Err(fail(format!("its `geometry` is not a MultiPolygon ({e})"))),
        };
        Ok(Aoi {
            name: text("name")?,
            slug: text("slug")?,
            origin: text("origin")?,
            area_m2: record["area_m2"]
                .as_f64()
                .ok_or_else(|| fail("has no `area_m2` number".into()))?,
            properties: record["properties"].as_object().cloned().unwrap_or_default(),
            geometry,
        })
    }
}

/// Loads and checks an AOI from a GeoJSON file (Polygon, MultiPolygon, Feature or FeatureCollection).
pub fn load(path: &Path, limits: &AoiLimits) -> Result<Aoi> {
    let fail = |reason: String| Error::Aoi {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(format!(
            "cannot be read ({e}); check the path, or pass a box with --bbox W,S,E,N"
        ))
    })?;
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a folder, FIFO or device); give a GeoJSON file".into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "is {} MB, more than an AOI outline needs ({} MB at most); simplify the outline \
             (QGIS: Vector > Geometry Tools > Simplify) or draw a box with --bbox",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(format!(
            "cannot be read ({e}); check the path, or pass a box with --bbox W,S,E,N"
        ))
    })?;
    parse(&text, path, limits)
}

/// Checks an AOI from the text of a GeoJSON file; `path` is where it came from, named in errors and
/// giving the AOI its slug. [`load`] is this after reading the file.
pub fn parse(text: &str, path: &Path, limits: &AoiLimits) -> Result<Aoi> {
    let fail = |reason: String| Error::Aoi {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(format!(
            "is not JSON ({e}); an AOI file must be GeoJSON: a Polygon or MultiPolygon geometry, \
             a Feature or a FeatureCollection"
        ))
    })?;
    let geojson: GeoJson = serde_json::from_value(value).map_err(|e| {
        fail(format!(
            "is JSON but not valid GeoJSON ({e}); save the site from QGIS (Export > Save Features As \
             > GeoJSON) or geojson.io"
        ))
    })?;
    let (polygons, properties) = polygons_of(&geojson).map_err(&fail)?;
    let slug = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "aoi".to_owned());
    let name = properties
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| slug.clone());
    let geometry = check(polygons, limits).map_err(&fail)?;
    let area_m2 = geometry.geodesic_area_unsigned();
    Ok(Aoi {
        name,
        slug,
        origin: path.display().to_string(),
        geometry,
        area_m2,
        properties,
    })
}

/// Parses `W,S,E,N` in degrees (the `--bbox` text): four finite numbers, west below east, south
/// below north. The one parser of boxes; [`from_bbox`] checks the box as an AOI.
pub fn parse_bbox(text: &str) -> std::result::Result<[f64; 4], String> {
    let v: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| "expected four numbers W,S,E,N in degrees, e.g. 98.49,16.67,98.54,16.71".to_owned())?;
    let b = <[f64; 4]>::try_from(v)
        .map_err(|_| "expected exactly four numbers W,S,E,N, e.g. 98.49,16.67,98.54,16.71".to_owned())?;
    if b.iter().any(|v| !v.is_finite()) {
        return Err("every number must be finite".into());
    }
    if b[0] >= b[2] || b[1] >= b[3] {
        return Err(format!(
            "west must be less than east and south less than north (got W={} E={} S={} N={}); the order is W,S,E,N",
            b[0], b[2], b[1], b[3]
        ));
    }
    Ok(b)
}

/// Builds and checks an AOI from `--bbox W,S,E,N` (degrees).
pub fn from_bbox(bbox: [f64; 4], limits: &AoiLimits) -> Result<Aoi> {
    let [w, s, e, n] = bbox;
    let text = format!("{w},{s},{e},{n}");
    let fail = |reason: String| Error::Aoi {
        path: PathBuf::from(format!("--bbox {text}")),
        reason,
    };
    if w >= e || s >= n {
        return Err(fail(format!(
            "west must be less than east and south less than north (got W={w} E={e} S={s} N={n}); \
             the order is W,S,E,N"
        )));
    }
    let ring = LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]);
    let geometry = check(vec![Polygon::new(ring, vec![])], limits).map_err(&fail)?;
    let area_m2 = geometry.geodesic_area_unsigned();
    let slug = format!("bbox_{w}_{s}_{e}_{n}");
    Ok(Aoi {
        name: slug.clone(),
        slug,
        origin: format!("--bbox {text}"),
        geometry,
        area_m2,
        properties: Map::new(),
    })
}

/// Polygons found in a document, and the properties of the first feature that has one.
type PolygonsAndProperties = (Vec<Polygon<f64>>, Map<String, Value>);

/// The polygons of a GeoJSON document and the properties of its first polygon feature.
fn polygons_of(geojson: &GeoJson) -> std::result::Result<PolygonsAndProperties, String> {
    let mut polygons = Vec::new();
    let mut properties = None;
    let mut other = Vec::new();
    let mut add = |geometry: &geojson::Geometry, props: Option<&Map<String, Value>>| {
        let before = polygons.len();
        collect(geometry, &mut polygons, &mut other);
        if polygons.len() > before && properties.is_none() {
            properties = Some(props.cloned().unwrap_or_default());
        }
    };
    match geojson {
        GeoJson::Geometry(g) => add(g, None),
        GeoJson::Feature(f) => {
            if let Some(g) = &f.geometry {
                add(g, f.properties.as_ref());
            }
        }
        GeoJson::FeatureCollection(fc) => {
            for f in &fc.features {
                if let Some(g) = &f.geometry {
                    add(g, f.properties.as_ref());
                }
            }
        }
    }
    if polygons.is_empty() {
        let found = if other.is_empty() {
            "no geometry".to_owned()
        } else {
            other.join(", ")
        };
        return Err(format!(
            "contains no Polygon or MultiPolygon (found {found}); points and lines have no area: \
             draw the site as a polygon"
        ));
    }
    Ok((polygons, properties.unwrap_or_default()))
}

fn collect(geometry: &geojson::Geometry, polygons: &mut Vec<Polygon<f64>>, other: &mut Vec<String>) {
    use geojson::GeometryValue as G;
    match &geometry.value {
        G::Polygon { coordinates } => polygons.push(polygon(coordinates)),
        G::MultiPolygon { coordinates } => polygons.extend(coordinates.iter().map(|rings| polygon(rings))),
        G::GeometryCollection { geometries } => geometries.iter().for_each(|g| collect(g, polygons, other)),
        v => other.push(v.type_name().to_owned()),
    }
}

fn polygon(rings: &[Vec<geojson::Position>]) -> Polygon<f64> {
    let ring = |r: &Vec<geojson::Position>| {
        LineString::from(
            r.iter()
                .map(|p| {
                    let p = p.as_slice();
                    Coord {
                        x: p.first().copied().unwrap_or(f64::NAN),
                        y: p.get(1).copied().unwrap_or(f64::NAN),
                    }
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut rings = rings.iter().map(ring);
    let exterior = rings.next().unwrap_or_else(|| LineString::new(vec![]));
    Polygon::new(exterior, rings.collect())
}

/// Checks coordinates, topology and size, in that order; returns the geometry as a MultiPolygon.
fn check(polygons: Vec<Polygon<f64>>, limits: &AoiLimits) -> std::result::Result<MultiPolygon<f64>, String> {
    use geo::CoordsIter;
    let geometry = MultiPolygon::new(polygons);
    let coords: Vec<Coord<f64>> = geometry.coords_iter().collect();
    check_vertices(&coords)?;
    check_degrees(&coords)?;
    check_antimeridian(&geometry, &coords)?;
    check_rings(&geometry)?;
    if let Err(problem) = geometry.check_validation() {
        return Err(format!(
            "is not a valid polygon ({problem}): a ring crosses itself or another ring. Redraw it, \
             or repair it in QGIS with Vector > Geometry Tools > Fix Geometries"
        ));
    }
    check_area(geometry.geodesic_area_unsigned(), limits)?;
    Ok(geometry)
}

/// Refuses more than [`MAX_VERTICES`] vertices.
fn check_vertices(coords: &[Coord<f64>]) -> std::result::Result<(), String> {
    if coords.len() > MAX_VERTICES {
        return Err(format!(
            "has {} vertices, more than the {MAX_VERTICES} a site outline needs; simplify it (QGIS: \
             Vector > Geometry Tools > Simplify, tolerance 0.0001° = about 10 m, the pixel size)",
            coords.len()
        ));
    }
    Ok(())
}

/// Refuses positions that are not finite longitude/latitude degrees, saying what they look like
/// instead: swapped pairs, longitudes from 0 to 360, or projected metres.
fn check_degrees(coords: &[Coord<f64>]) -> std::result::Result<(), String> {
    if coords.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return Err("has a position without two finite numbers [longitude, latitude]".into());
    }
    let Some(c) = coords.iter().find(|c| c.x.abs() > 180.0 || c.y.abs() > 90.0) else {
        return Ok(());
    };
    let swapped = coords.iter().all(|c| c.x.abs() <= 90.0 && c.y.abs() <= 180.0);
    let wrapped = coords.iter().all(|c| c.x.abs() <= 360.0 && c.y.abs() <= 90.0);
    Err(if swapped {
        format!(
            "position [{}, {}] has a latitude beyond ±90: the coordinates look like \
             [latitude, longitude]; GeoJSON order is [longitude, latitude] (RFC 7946 §3.1.1): \
             swap each pair",
            c.x, c.y
        )
    } else if wrapped {
        format!(
            "position [{}, {}] has a longitude beyond ±180; GeoJSON longitudes run from -180 to \
             180 (RFC 7946 §4): subtract 360 from longitudes above 180",
            c.x, c.y
        )
    } else {
        format!(
            "position [{}, {}] is not in degrees: the coordinates look like projected metres; \
             GeoJSON must be WGS84 longitude/latitude (RFC 7946 §4): reproject it, e.g. \
             `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`",
            c.x, c.y
        )
    })
}

/// Refuses an edge across the antimeridian, and parts spread over more than half the globe.
fn check_antimeridian(geometry: &MultiPolygon<f64>, coords: &[Coord<f64>]) -> std::result::Result<(), String> {
    let crosses = geometry
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .any(|ring| ring.lines().any(|l| (l.end.x - l.start.x).abs() > 180.0));
    if crosses {
        return Err(
            "has an edge that crosses the antimeridian (longitude ±180); split it into one polygon \
             on each side of 180° and scan each as its own AOI"
                .into(),
        );
    }
    let (min_x, max_x) = coords
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), c| (lo.min(c.x), hi.max(c.x)));
    if max_x - min_x > 180.0 {
        return Err(format!(
            "spans {:.0}° of longitude ({min_x} to {max_x}); if its parts lie on both sides of the \
             antimeridian, scan each side as its own AOI",
            max_x - min_x
        ));
    }
    Ok(())
}

/// Refuses a polygon whose exterior ring has fewer than three distinct corners.
fn check_rings(geometry: &MultiPolygon<f64>) -> std::result::Result<(), String> {
    for (i, p) in geometry.iter().enumerate() {
        let mut distinct: Vec<(u64, u64)> = p.exterior().0.iter().map(|c| (c.x.to_bits(), c.y.to_bits())).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if p.exterior().0.len() < 4 || distinct.len() < 3 {
            return Err(format!(
                "polygon {} is empty or degenerate: its ring has fewer than three distinct corners, so it \
                 encloses no area. Draw the site's outline (at least three corners, ending where it starts)",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Refuses an area outside the limits.
fn check_area(area_m2: f64, limits: &AoiLimits) -> std::result::Result<(), String> {
    if area_m2 < limits.min_area_m2 {
        return Err(format!(
            "encloses {area_m2:.0} m², less than the {:.0} m² minimum: the polygon is empty or \
             degenerate (collapsed ring, repeated points). Draw the site's outline with a margin",
            limits.min_area_m2
        ));
    }
    let km2 = area_m2 / 1e6;
    if km2 > limits.max_area_km2 {
        return Err(format!(
            "covers {km2:.0} km², more than the {:.0} km² maximum; draw a tighter outline around \
             the site, split it into several AOIs, or raise the limit with --max-aoi-km2",
            limits.max_area_km2
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aoi_record_reads_back_exactly() {
        let ring = LineString::from(vec![
            (98.512_345_678_901_23, 16.7),
            (98.6, 16.700_000_000_000_003),
            (98.6, 16.8),
            (98.512_345_678_901_23, 16.7),
        ]);
        let aoi = Aoi {
            name: "Site".into(),
            slug: "site".into(),
            origin: "aoi/site.geojson".into(),
            geometry: MultiPolygon::new(vec![Polygon::new(ring, vec![])]),
            area_m2: 1_234.567_890_123,
            properties: [("country".to_owned(), Value::from("MM"))].into_iter().collect(),
        };
        let text = serde_json::to_string(&aoi.to_record()).unwrap();
        let back = Aoi::from_record(&serde_json::from_str(&text).unwrap(), Path::new("a.json")).unwrap();
        assert_eq!(back.geometry, aoi.geometry);
        assert_eq!(
            (back.name, back.slug, back.origin, back.area_m2, back.properties),
            (aoi.name, aoi.slug, aoi.origin, aoi.area_m2, aoi.properties)
        );
        let err = Aoi::from_record(&serde_json::json!({"name": 1}), Path::new("a.json")).unwrap_err();
        assert!(err.to_string().contains("a.json"), "{err}");
    }

    fn limits() -> AoiLimits {
        AoiLimits::default()
    }

    #[test]
    fn bbox_builds_a_counter_clockwise_rectangle_with_its_area() {
        let aoi = from_bbox([98.49, 16.67, 98.54, 16.71], &limits()).unwrap();
        assert_eq!(aoi.bbox(), [98.49, 16.67, 98.54, 16.71]);
        // 0.05° x 0.04° at 16.7°N is about 5.33 km x 4.42 km.
        approx::assert_relative_eq!(aoi.area_m2 / 1e6, 23.6, max_relative = 0.02);
    }

    #[test]
    fn bbox_in_wrong_order_is_refused() {
        let err = from_bbox([98.54, 16.67, 98.49, 16.71], &limits())
            .unwrap_err()
            .to_string();
        assert!(err.contains("west must be less than east"), "{err}");
    }

    #[test]
    fn bbox_larger_than_the_limit_names_the_flag() {
        let err = from_bbox([97.0, 15.0, 99.0, 17.0], &limits()).unwrap_err().to_string();
        assert!(err.contains("--max-aoi-km2"), "{err}");
    }
}

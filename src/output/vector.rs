//! The report and the diff in the vector formats users ask for besides GeoJSON: GeoPackage,
//! FlatGeobuf and KML through GDAL/OGR, and a polygon CSV with WKT geometry.
//!
//! The GeoJSON written by `report` stays the one source: these layers are translations of its
//! features, field by field, never a second computation. A list property (`scenes`, `prev_ids`)
//! becomes a StringList field where the driver can create one, else one string joined with
//! [`LIST_SEPARATOR`] (GeoPackage, FlatGeobuf and KML in GDAL 3.6 cannot), never OGR's `(9:...)`
//! text form of a list.

use std::path::{Path, PathBuf};

use gdal::vector::{Feature, FieldDefn, Geometry, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use gdal::{DriverManager, Metadata};
use serde_json::Value;

use crate::error::{Error, Result};

/// What joins the items of a list property where the format has no list field.
pub const LIST_SEPARATOR: &str = ";";

/// A vector format a scan can write besides GeoJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// OGC GeoPackage (`.gpkg`).
    Gpkg,
    /// FlatGeobuf (`.fgb`).
    Fgb,
    /// Keyhole Markup Language (`.kml`), for Google Earth.
    Kml,
    /// Comma-separated values with the polygon as WKT (`.csv`), for spreadsheets.
    Csv,
}

impl Format {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [Format; 4] = [Format::Gpkg, Format::Fgb, Format::Kml, Format::Csv];

    /// The name `--format` takes, also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gpkg => "gpkg",
            Format::Fgb => "fgb",
            Format::Kml => "kml",
            Format::Csv => "csv",
        }
    }

    /// The GDAL driver that writes it.
    fn driver(self) -> &'static str {
        match self {
            Format::Gpkg => "GPKG",
            Format::Fgb => "FlatGeobuf",
            Format::Kml => "KML",
            Format::Csv => "CSV",
        }
    }

    /// The media type of the file (for STAC assets).
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Gpkg => "application/geopackage+sqlite3",
            Format::Fgb => "application/vnd.flatgeobuf",
            Format::Kml => "application/vnd.google-earth.kml+xml",
            Format::Csv => "text/csv",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("{s:?} is not a format; choose from {}", names.join(", "))
            })
    }
}

/// The OGR type a property becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Date,
    Integer,
    Real,
    List,
}

/// The report's fields, for a report with no polygon to infer them from.
const REPORT_FIELDS: [(&str, Kind); 11] = [
    ("id", Kind::Text),
    ("area_m2", Kind::Real),
    ("area_ha", Kind::Real),
    ("status", Kind::Text),
    ("first_detected", Kind::Date),
    ("last_clear_before", Kind::Date),
    ("confirmed_on", Kind::Date),
    ("confidence", Kind::Real),
    ("aoi", Kind::Text),
    ("n_clear_obs", Kind::Integer),
    ("scenes", Kind::List),
];

fn kind_of(value: &Value) -> Option<Kind> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(Kind::Integer),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Kind::Integer),
        Value::Number(_) => Some(Kind::Real),
        Value::String(s) if s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {
            Some(Kind::Date)
        }
        Value::Array(_) => Some(Kind::List),
        Value::String(_) | Value::Object(_) => Some(Kind::Text),
    }
}

/// The fields of a layer, in the order of the first feature's properties, each with the widest kind
/// its values need (an integer somewhere and a real elsewhere is a real).
fn fields_of(collection: &geojson::FeatureCollection) -> Vec<(String, Kind)> {
    if collection.features.is_empty() {
        return REPORT_FIELDS.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    }
    let mut fields: Vec<(String, Option<Kind>)> = Vec::new();
    for props in collection.features.iter().filter_map(|f| f.properties.as_ref()) {
        for (name, value) in props {
            let kind = kind_of(value);
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some((_, k)) => *k = wider(*k, kind),
                None => fields.push((name.clone(), kind)),
            }
        }
    }
    fields.into_iter().map(|(n, k)| (n, k.unwrap_or(Kind::Text))).collect()
}

/// The kind that holds values of both kinds (`None`: only nulls so far).
fn wider(a: Option<Kind>, b: Option<Kind>) -> Option<Kind> {
    match (a, b) {
        (None, k) | (k, None) => k,
        (Some(Kind::Integer), Some(Kind::Real)) | (Some(Kind::Real), Some(Kind::Integer)) => Some(Kind::Real),
        (Some(a), Some(b)) if a == b => Some(a),
        _ => Some(Kind::Text),
    }
}

/// Whether a driver can create a field of this OGR type name (e.g. `StringList`).
fn driver_creates(driver: &gdal::Driver, type_name: &str) -> bool {
    driver
        .metadata_item("DMD_CREATIONFIELDDATATYPES", "")
        .is_some_and(|types| types.split_whitespace().any(|t| t == type_name))
}

/// A layer written in a format: its file and whether list properties are true lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// The format.
    pub format: Format,
    /// True when list properties are StringList fields, false when joined with [`LIST_SEPARATOR`].
    pub lists: bool,
}

/// Writes `collection` (WGS84 GeoJSON, as the report) as the layer `layer` of a new file `path` in
/// `format`, replacing any file there.
pub fn write(collection: &geojson::FeatureCollection, layer: &str, format: Format, path: &Path) -> Result<Written> {
    let gdal_err = |what: &str| Error::gdal(format!("{what} {}", path.display()));
    let driver = DriverManager::get_driver_by_name(format.driver())
        .map_err(Error::gdal(format!("loading the GDAL driver {}", format.driver())))?;
    // The CSV driver's own list form is OGR's "(2:a,b)"; joined strings read better there too.
    let lists = format != Format::Csv && driver_creates(&driver, "StringList");
    // CSV's Date columns print as 2021/10/01; the report's ISO text reads better in a spreadsheet.
    let dates = format != Format::Csv && driver_creates(&driver, "Date");
    if path.exists() {
        std::fs::remove_file(path).map_err(Error::io(path))?;
    }
    let mut dataset = driver.create_vector_only(path).map_err(gdal_err("creating"))?;
    let srs = crate::grid::srs(4326)?;
    let csv_options = ["GEOMETRY=AS_WKT"];
    let out = dataset
        .create_layer(LayerOptions {
            name: layer,
            srs: Some(&srs),
            ty: OGRwkbGeometryType::wkbMultiPolygon,
            options: (format == Format::Csv).then_some(&csv_options[..]),
        })
        .map_err(gdal_err("creating a layer in"))?;
    let fields = fields_of(collection);
    for (name, kind) in &fields {
        let ty = match kind {
            Kind::Text => OGRFieldType::OFTString,
            Kind::Date if dates => OGRFieldType::OFTDate,
            Kind::Date => OGRFieldType::OFTString,
            Kind::Integer => OGRFieldType::OFTInteger64,
            Kind::Real => OGRFieldType::OFTReal,
            Kind::List if lists => OGRFieldType::OFTStringList,
            Kind::List => OGRFieldType::OFTString,
        };
        FieldDefn::new(name, ty)
            .and_then(|d| d.add_to_layer(&out))
            .map_err(gdal_err(&format!("adding the field {name} to")))?;
    }
    for feature in &collection.features {
        let mut f = Feature::new(out.defn()).map_err(gdal_err("a feature of"))?;
        if let Some(geometry) = &feature.geometry {
            f.set_geometry(multi(geometry)?).map_err(gdal_err("a geometry of"))?;
        }
        for (name, kind) in &fields {
            let value = feature.property(name).unwrap_or(&Value::Null);
            // By name: a driver may add fields of its own first (CSV's `WKT`).
            let at = |f: &Feature<'_>| f.field_index(name);
            at(&f)
                .and_then(|i| set(&mut f, i, value, *kind, lists))
                .map_err(gdal_err(&format!("the field {name} of")))?;
        }
        f.create(&out).map_err(gdal_err("writing a feature to"))?;
    }
    dataset.close().map_err(gdal_err("closing"))?;
    Ok(Written {
        path: path.to_path_buf(),
        format,
        lists,
    })
}

/// Writes the report and the diff of the scan output `out` (its `report.geojson` and
/// `diff.geojson`) in each of `formats`, beside them: `report.gpkg`, `diff.gpkg`, ...
pub fn export(out: &Path, formats: &[Format]) -> Result<Vec<Written>> {
    let mut written = Vec::new();
    for layer in ["report", "diff"] {
        let collection = crate::output::report::read_geojson(&out.join(format!("{layer}.geojson")))?;
        for &format in formats {
            let path = out.join(format!("{layer}.{}", format.name()));
            // GDAL writes the file itself: into a temp name beside it, then renamed over it whole.
            let tmp = crate::io::atomic::temp_path_beside(&path)?;
            let w = write(&collection, layer, format, &tmp)?;
            crate::io::atomic::publish(tmp, &path)?;
            written.push(Written { path, ..w });
        }
    }
    Ok(written)
}

/// A geometry as an OGR MultiPolygon: one geometry type per layer, so a Polygon becomes a
/// MultiPolygon of one.
fn multi(geometry: &geojson::Geometry) -> Result<Geometry> {
    let bad = |reason: String| Error::Report {
        path: "report.geojson".into(),
        reason: format!("a polygon cannot be converted ({reason})"),
    };
    let geometry: geo::Geometry<f64> = geometry
        .clone()
        .try_into()
        .map_err(|e: geojson::Error| bad(e.to_string()))?;
    let multi = match geometry {
        geo::Geometry::Polygon(p) => geo::MultiPolygon::new(vec![p]),
        geo::Geometry::MultiPolygon(m) => m,
        other => return Err(bad(format!("a {other:?} is not a polygon"))),
    };
    Geometry::from_geojson(&geojson::Geometry::from(&multi).to_string())
        .map_err(Error::gdal("reading a report geometry"))
}

/// Sets field `i` of `f` from a GeoJSON property value.
fn set(f: &mut Feature<'_>, i: usize, value: &Value, kind: Kind, lists: bool) -> gdal::errors::Result<()> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (value, kind) {
        (Value::Null, _) => f.set_field_null(i),
        (Value::Array(items), Kind::List) if lists => {
            let items: Vec<String> = items.iter().map(text).collect();
            let refs: Vec<&str> = items.iter().map(String::as_str).collect();
            f.set_field_string_list(i, &refs)
        }
        (Value::Array(items), _) => {
            let items: Vec<String> = items.iter().map(text).collect();
            f.set_field_string(i, &items.join(LIST_SEPARATOR))
        }
        (Value::Bool(b), _) => f.set_field_integer64(i, i64::from(*b)),
        (Value::Number(n), Kind::Integer) => f.set_field_integer64(i, n.as_i64().unwrap_or_default()),
        (Value::Number(n), Kind::Real) => f.set_field_double(i, n.as_f64().unwrap_or_default()),
        (other, _) => f.set_field_string(i, &text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_from_their_names_and_refuse_others_with_the_choices() {
        assert_eq!("GPKG".parse::<Format>().unwrap(), Format::Gpkg);
        assert_eq!(" fgb".parse::<Format>().unwrap(), Format::Fgb);
        let err = "shp".parse::<Format>().unwrap_err();
        assert!(err.contains("gpkg, fgb, kml, csv"), "{err}");
    }

    #[test]
    fn fields_take_the_widest_kind_of_their_values() {
        let fc: geojson::FeatureCollection = serde_json::from_value(serde_json::json!({
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": null, "properties":
                    {"id": "a", "n": 1, "x": 1, "d": "2022-10-01", "l": ["s1", "s2"], "c": null}},
                {"type": "Feature", "geometry": null, "properties":
                    {"id": "b", "n": 2, "x": 1.5, "d": "2022-11-01", "l": [], "c": "2023-01-01"}},
            ]
        }))
        .unwrap();
        let mut fields = fields_of(&fc);
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [
            ("c", Kind::Date),
            ("d", Kind::Date),
            ("id", Kind::Text),
            ("l", Kind::List),
            ("n", Kind::Integer),
            ("x", Kind::Real),
        ];
        assert_eq!(fields, expected.map(|(n, k)| (n.to_owned(), k)));
    }
}

//! Scores a scan's `report.geojson` against a scenario's `truth.geojson`, object by object.
//!
//! A detection is *real* if it overlaps a construction object by >= 30% of its own area or >= 50%
//! of the object's; an object is *found* if a detection overlaps it so. Recall counts reportable
//! objects (construction >= 1,000 m² with a clear view in the period); precision counts every
//! detection. A detection that is not real but overlaps a non-construction change by the same rule
//! is a *false polygon on non-construction change*. Date error = month of `first_detected` minus
//! month of `first_clear_view` (of the earliest matching detection). Pure: no I/O.

use geo::{Area, BooleanOps, BoundingRect, Coord, Intersects, LineString, MultiPolygon, Polygon};
use serde_json::Value;

/// Own-area share a detection must overlap an object by to match it.
pub const OWN_SHARE: f64 = 0.30;
/// Object-area share a detection must overlap it by to match it.
pub const OBJECT_SHARE: f64 = 0.50;
/// Distance (m) from a construction object within which an unmatched detection is counted as
/// "beside construction" rather than elsewhere (it is still not real).
pub const BESIDE_M: f64 = 20.0;

/// One truth object and how the scan did on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRow {
    /// Truth id.
    pub id: String,
    /// Kind (compound, building, small_building, quarry, ...).
    pub kind: String,
    /// Whether it is construction.
    pub construction: bool,
    /// Roof material or surface.
    pub material: String,
    /// Hard-case tags.
    pub tags: Vec<String>,
    /// Area, m².
    pub area_m2: f64,
    /// Whether the scan should report it.
    pub reportable: bool,
    /// First clear view "YYYY-MM".
    pub first_clear_view: Option<String>,
    /// Whether a detection matches it.
    pub found: bool,
    /// Earliest first_detected month of its matching detections.
    pub first_detected: Option<String>,
    /// Months from first clear view to first detection.
    pub date_error: Option<i32>,
    /// Detections matching it (for a non-construction change: false polygons on it).
    pub hits: usize,
}

/// The score of one scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// Objects, in truth order.
    pub objects: Vec<ObjectRow>,
    /// Detections in the report.
    pub detections: usize,
    /// Detections on construction.
    pub real: usize,
    /// Detections that are not real and lie on a non-construction change.
    pub false_on_change: usize,
    /// Detections that are neither real nor on a listed change but within `BESIDE_M` of a
    /// construction object (typically the cleared pad or yard around a building whose roof is not
    /// in the polygon).
    pub false_beside_construction: usize,
    /// Detections that are neither real, nor on a listed change, nor beside construction.
    pub false_elsewhere: usize,
    /// Detections with `status` "provisional" (seen in too few clear months to confirm).
    pub provisional: usize,
    /// Of those, real ones.
    pub provisional_real: usize,
    /// How steady the scan's monthly built-up estimate was (from its `summary.json`).
    pub stability: Stability,
}

/// The month-to-month moves of a scan's stable built-up estimate (`builtup_ha` in `summary.json`)
/// against that month's confirmed construction (`new_ha`) and demolition (`demolished_ha`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stability {
    /// Pairs of consecutive months compared.
    pub pairs: usize,
    /// Pairs whose move is outside [-demolished, +new] widened by [`STABILITY_TOLERANCE`].
    pub beyond: usize,
    /// Largest move of the estimate, ha (absolute).
    pub largest_move_ha: f64,
    /// Largest excess of a move over what construction and demolition allow, ha.
    pub largest_excess_ha: f64,
    /// Largest move of the raw single-month measurement (`builtup_measured_ha`) between two
    /// measured months, ha: what the estimate is steadier than.
    pub largest_measured_move_ha: f64,
}

/// Tolerance of a move: a share of that month's construction and demolition, and hectares. Pixel
/// counts (the estimate) against geodesic polygon areas (`new_ha`).
pub const STABILITY_TOLERANCE: (f64, f64) = (0.05, 0.01);

/// The [`Stability`] of a scan's `summary.json`.
pub fn stability(summary: &Value) -> Result<Stability, FormatError> {
    let months = summary
        .get("months")
        .and_then(Value::as_array)
        .ok_or_else(|| FormatError("summary: no `months` list".into()))?;
    let num = |m: &Value, k: &str| m.get(k).and_then(Value::as_f64);
    let mut st = Stability::default();
    for pair in months.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if let (Some(x), Some(y)) = (num(a, "builtup_measured_ha"), num(b, "builtup_measured_ha")) {
            st.largest_measured_move_ha = st.largest_measured_move_ha.max((y - x).abs());
        }
        let (Some(x), Some(y)) = (num(a, "builtup_ha"), num(b, "builtup_ha")) else {
            return Err(FormatError(format!(
                "summary: month {} or the one before has no `builtup_ha`",
                b.get("month").and_then(Value::as_str).unwrap_or("?")
            )));
        };
        let (new, gone) = (num(b, "new_ha").unwrap_or(0.0), num(b, "demolished_ha").unwrap_or(0.0));
        let (share, ha) = STABILITY_TOLERANCE;
        let jump = y - x;
        let excess = (jump - new * (1.0 + share) - ha).max(-jump - gone * (1.0 + share) - ha);
        st.pairs += 1;
        st.largest_move_ha = st.largest_move_ha.max(jump.abs());
        if excess > 0.0 {
            st.beyond += 1;
            st.largest_excess_ha = st.largest_excess_ha.max(excess);
        }
    }
    Ok(st)
}

impl Score {
    /// Reportable objects.
    pub fn reportable(&self) -> usize {
        self.objects.iter().filter(|o| o.reportable).count()
    }
    /// Reportable objects found.
    pub fn found(&self) -> usize {
        self.objects.iter().filter(|o| o.reportable && o.found).count()
    }
    /// Date errors of the reportable objects found.
    pub fn date_errors(&self) -> Vec<i32> {
        self.objects
            .iter()
            .filter(|o| o.reportable)
            .filter_map(|o| o.date_error)
            .collect()
    }
    /// Adds another scan's counts (objects appended).
    pub fn absorb(&mut self, other: &Score) {
        self.objects.extend(other.objects.iter().cloned());
        self.detections += other.detections;
        self.real += other.real;
        self.false_on_change += other.false_on_change;
        self.false_beside_construction += other.false_beside_construction;
        self.false_elsewhere += other.false_elsewhere;
        self.provisional += other.provisional;
        self.provisional_real += other.provisional_real;
        let (a, b) = (&mut self.stability, &other.stability);
        a.pairs += b.pairs;
        a.beyond += b.beyond;
        a.largest_move_ha = a.largest_move_ha.max(b.largest_move_ha);
        a.largest_excess_ha = a.largest_excess_ha.max(b.largest_excess_ha);
        a.largest_measured_move_ha = a.largest_measured_move_ha.max(b.largest_measured_move_ha);
    }
}

/// Why a file could not be scored.
#[derive(Debug, PartialEq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Month index (year * 12 + month - 1) of "YYYY-MM" or "YYYY-MM-DD".
pub fn month_index(s: &str) -> Option<i32> {
    let y: i32 = s.get(0..4)?.parse().ok()?;
    let m: i32 = s.get(5..7)?.parse().ok()?;
    (s.as_bytes().get(4) == Some(&b'-') && (1..=12).contains(&m)).then_some(y * 12 + m - 1)
}

/// Lon/lat to local metres around (lon0, lat0) (equirectangular; < 0.1% error over a few km).
struct Local {
    lon0: f64,
    lat0: f64,
    kx: f64,
}

impl Local {
    const KY: f64 = 110_574.0;
    fn coord(&self, p: &Value) -> Option<Coord<f64>> {
        let a = p.as_array()?;
        Some(Coord {
            x: (a.first()?.as_f64()? - self.lon0) * self.kx,
            y: (a.get(1)?.as_f64()? - self.lat0) * Self::KY,
        })
    }
    fn polygon(&self, rings: &Value) -> Option<Polygon<f64>> {
        let rings = rings.as_array()?;
        let ring = |r: &Value| -> Option<LineString<f64>> {
            Some(LineString::new(
                r.as_array()?
                    .iter()
                    .map(|p| self.coord(p))
                    .collect::<Option<Vec<_>>>()?,
            ))
        };
        let exterior = ring(rings.first()?)?;
        let holes = rings[1..].iter().map(ring).collect::<Option<Vec<_>>>()?;
        Some(Polygon::new(exterior, holes))
    }
    fn geometry(&self, g: &Value) -> Option<MultiPolygon<f64>> {
        match g.get("type")?.as_str()? {
            "Polygon" => Some(MultiPolygon::new(vec![self.polygon(g.get("coordinates")?)?])),
            "MultiPolygon" => Some(MultiPolygon::new(
                g.get("coordinates")?
                    .as_array()?
                    .iter()
                    .map(|p| self.polygon(p))
                    .collect::<Option<Vec<_>>>()?,
            )),
            _ => None,
        }
    }
}

fn features<'a>(doc: &'a Value, what: &str) -> Result<&'a Vec<Value>, FormatError> {
    doc.get("features").and_then(Value::as_array).ok_or_else(|| {
        FormatError(format!(
            "the {what} is not a GeoJSON FeatureCollection (no `features` array)"
        ))
    })
}

fn first_coord(doc: &Value) -> Option<(f64, f64)> {
    let mut v = doc
        .get("features")?
        .as_array()?
        .first()?
        .get("geometry")?
        .get("coordinates")?;
    while let Some(a) = v.as_array() {
        if a.first()?.is_number() {
            return Some((a[0].as_f64()?, a.get(1)?.as_f64()?));
        }
        v = a.first()?;
    }
    None
}

/// Whether `det` comes within `BESIDE_M` of `shape` (by bounding rectangles: the truth objects
/// are rectangles).
fn beside(det: &MultiPolygon<f64>, shape: &MultiPolygon<f64>) -> bool {
    match (det.bounding_rect(), shape.bounding_rect()) {
        (Some(a), Some(b)) => {
            let grown = geo::Rect::new(
                Coord {
                    x: b.min().x - BESIDE_M,
                    y: b.min().y - BESIDE_M,
                },
                Coord {
                    x: b.max().x + BESIDE_M,
                    y: b.max().y + BESIDE_M,
                },
            );
            a.intersects(&grown) && det.intersects(&grown.to_polygon())
        }
        _ => false,
    }
}

/// Scores `report` (a scan's report.geojson) against `truth` (a scenario's truth.geojson).
pub fn score(report: &Value, truth: &Value) -> Result<Score, FormatError> {
    let objects_in = features(truth, "truth")?;
    let detections_in = features(report, "report")?;
    let (lon0, lat0) = first_coord(truth).ok_or_else(|| FormatError("the truth has no polygon".into()))?;
    let local = Local {
        lon0,
        lat0,
        kx: 111_320.0 * lat0.to_radians().cos(),
    };
    let prop = |f: &Value, k: &str| {
        f.get("properties")
            .and_then(|p| p.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };

    let mut objects = Vec::new();
    let mut shapes = Vec::new();
    for (i, f) in objects_in.iter().enumerate() {
        let shape = f
            .get("geometry")
            .and_then(|g| local.geometry(g))
            .ok_or_else(|| FormatError(format!("truth feature {i} has no Polygon or MultiPolygon geometry")))?;
        let construction = prop(f, "class").as_str() == Some("construction");
        let str_of = |k: &str| prop(f, k).as_str().unwrap_or("").to_owned();
        objects.push(ObjectRow {
            id: str_of("id"),
            kind: str_of("kind"),
            construction,
            material: str_of("material"),
            tags: prop(f, "tags")
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            area_m2: prop(f, "area_m2").as_f64().unwrap_or(shape.unsigned_area()),
            reportable: prop(f, "reportable").as_bool().unwrap_or(false),
            first_clear_view: prop(f, "first_clear_view").as_str().map(str::to_owned),
            found: false,
            first_detected: None,
            date_error: None,
            hits: 0,
        });
        shapes.push(shape);
    }

    let mut s = Score {
        detections: detections_in.len(),
        ..Score::default()
    };
    for (j, d) in detections_in.iter().enumerate() {
        let det = d
            .get("geometry")
            .and_then(|g| local.geometry(g))
            .ok_or_else(|| FormatError(format!("report feature {j} has no Polygon or MultiPolygon geometry")))?;
        let det_area = det.unsigned_area();
        let detected = prop(d, "first_detected").as_str().map(str::to_owned);
        let (mut real, mut on_change) = (false, false);
        for (o, shape) in objects.iter_mut().zip(&shapes) {
            let overlap = det.intersection(shape).unsigned_area();
            let obj_area = shape.unsigned_area();
            let matches = overlap > 0.0 && (overlap >= OWN_SHARE * det_area || overlap >= OBJECT_SHARE * obj_area);
            if !matches {
                continue;
            }
            o.hits += 1;
            if o.construction {
                real = true;
                o.found = true;
                let earlier = match (&o.first_detected, &detected) {
                    (None, Some(_)) => true,
                    (Some(a), Some(b)) => month_index(b) < month_index(a),
                    _ => false,
                };
                if earlier {
                    o.first_detected = detected.as_ref().map(|m| m.get(0..7).unwrap_or(m).to_owned());
                }
            } else {
                on_change = true;
            }
        }
        if prop(d, "status").as_str() == Some("provisional") {
            s.provisional += 1;
            s.provisional_real += usize::from(real);
        }
        if real {
            s.real += 1;
        } else if on_change {
            s.false_on_change += 1;
        } else if objects
            .iter()
            .zip(&shapes)
            .any(|(o, shape)| o.construction && beside(&det, shape))
        {
            s.false_beside_construction += 1;
        } else {
            s.false_elsewhere += 1;
        }
    }
    for o in objects.iter_mut() {
        o.date_error = match (&o.first_detected, &o.first_clear_view) {
            (Some(d), Some(c)) => month_index(d).zip(month_index(c)).map(|(d, c)| d - c),
            _ => None,
        };
    }
    s.objects = objects;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_estimate_may_move_by_construction_and_demolition_only() {
        let month = |m: &str, builtup: f64, measured: Option<f64>, new: f64, gone: f64| {
            json!({"month": m, "builtup_ha": builtup, "builtup_measured_ha": measured,
                   "new_ha": new, "demolished_ha": gone})
        };
        let summary = json!({"months": [
            month("2022-01", 10.0, Some(10.0), 0.0, 0.0),
            month("2022-02", 12.0, None, 2.0, 0.0),       // construction: allowed
            month("2022-03", 11.5, Some(300.0), 0.0, 0.5), // demolition: allowed
            month("2022-04", 13.0, Some(11.0), 0.5, 0.0),  // 1.5 ha with 0.5 ha new: 0.965 too far
        ]});
        let st = stability(&summary).unwrap();
        assert_eq!((st.pairs, st.beyond), (3, 1));
        assert!((st.largest_move_ha - 2.0).abs() < 1e-9);
        assert!((st.largest_excess_ha - (1.5 - 0.525 - 0.01)).abs() < 1e-9);
        assert!((st.largest_measured_move_ha - 289.0).abs() < 1e-9);
        let broken = json!({"months": [month("2022-01", 1.0, None, 0.0, 0.0), {"month": "2022-02"}]});
        assert!(stability(&broken).unwrap_err().0.contains("2022-02"));
    }

    /// A square of `side` metres at (x, y) metres east and north of 98.4 E, 15.3 N.
    fn square(x: f64, y: f64, side: f64) -> Value {
        let kx = 111_320.0 * 15.3f64.to_radians().cos();
        let p = |dx: f64, dy: f64| json!([98.4 + (x + dx) / kx, 15.3 + (y + dy) / 110_574.0]);
        json!({"type": "Polygon", "coordinates": [[p(0.0, 0.0), p(side, 0.0), p(side, side), p(0.0, side), p(0.0, 0.0)]]})
    }

    fn object(x: f64, side: f64, kind: &str, fcv: &str) -> Value {
        let construction = matches!(kind, "compound" | "building" | "small_building");
        let area = side * side;
        json!({"type": "Feature", "geometry": square(x, 0.0, side), "properties": {
            "id": format!("o{x}"), "class": if construction {"construction"} else {"non-construction"},
            "kind": kind, "material": "concrete", "area_m2": area, "first_clear_view": fcv,
            "reportable": construction && area >= 1000.0}})
    }

    fn detection(x: f64, y: f64, side: f64, month: &str) -> Value {
        json!({"type": "Feature", "geometry": square(x, y, side), "properties": {"id": "d", "first_detected": format!("{month}-15"), "confidence": 0.9}})
    }

    fn fc(f: Vec<Value>) -> Value {
        json!({"type": "FeatureCollection", "features": f})
    }

    #[test]
    fn a_detection_on_a_compound_finds_it_and_dates_it_in_months() {
        let truth = fc(vec![object(0.0, 150.0, "compound", "2022-03")]);
        // A detection covering only the brightest quarter of the yard: still inside the object.
        let s = score(&fc(vec![detection(10.0, 10.0, 40.0, "2022-05")]), &truth).unwrap();
        assert_eq!((s.reportable(), s.found(), s.real, s.detections), (1, 1, 1, 1));
        assert_eq!(s.date_errors(), vec![2]);
        let early = score(&fc(vec![detection(10.0, 10.0, 40.0, "2022-01")]), &truth).unwrap();
        assert_eq!(early.date_errors(), vec![-2]);
    }

    #[test]
    fn overlap_must_reach_30_percent_of_the_detection_or_half_the_object() {
        let truth = fc(vec![object(0.0, 50.0, "building", "2022-03")]);
        // A 100 m square over a 50 m building: overlap 2,500 = 25% of the detection but 100% of
        // the object: matches by the object's share.
        let big = score(&fc(vec![detection(-25.0, -25.0, 100.0, "2022-03")]), &truth).unwrap();
        assert_eq!(big.found(), 1);
        // A 100 m square over 20 m x 50 m of it: 1,000 m² = 10% of itself, 40% of the object.
        let off = score(&fc(vec![detection(30.0, -25.0, 100.0, "2022-03")]), &truth).unwrap();
        assert_eq!((off.found(), off.real, off.false_beside_construction), (0, 0, 1));
        // A strip of the pad 10 m east of it, touching nothing: beside construction, not real.
        let pad = score(&fc(vec![detection(60.0, 0.0, 30.0, "2022-03")]), &truth).unwrap();
        assert_eq!(
            (pad.real, pad.false_beside_construction, pad.false_elsewhere),
            (0, 1, 0)
        );
    }

    #[test]
    fn false_polygons_on_non_construction_change_are_counted_apart() {
        let truth = fc(vec![
            object(0.0, 60.0, "building", "2022-03"),
            object(500.0, 100.0, "quarry", "2022-01"),
        ]);
        let report = fc(vec![
            detection(510.0, 10.0, 50.0, "2022-04"),
            detection(2000.0, 0.0, 50.0, "2022-04"),
        ]);
        let s = score(&report, &truth).unwrap();
        assert_eq!(
            (s.detections, s.real, s.false_on_change, s.false_elsewhere),
            (2, 0, 1, 1)
        );
        assert_eq!((s.reportable(), s.found()), (1, 0));
        assert_eq!(s.objects[0].date_error, None);
        assert_eq!((s.objects[0].hits, s.objects[1].hits), (0, 1));
    }

    #[test]
    fn a_small_building_is_not_reportable_but_a_detection_on_it_is_real() {
        let truth = fc(vec![object(0.0, 25.0, "small_building", "2022-03")]);
        let s = score(&fc(vec![detection(0.0, 0.0, 25.0, "2022-03")]), &truth).unwrap();
        assert_eq!((s.reportable(), s.found(), s.real), (0, 0, 1));
        assert!(s.objects[0].found);
    }

    #[test]
    fn the_earliest_of_several_matching_detections_dates_the_object() {
        let truth = fc(vec![object(0.0, 150.0, "compound", "2022-03")]);
        let report = fc(vec![
            detection(0.0, 0.0, 60.0, "2022-09"),
            detection(80.0, 80.0, 60.0, "2022-04"),
        ]);
        let s = score(&report, &truth).unwrap();
        assert_eq!((s.real, s.date_errors()), (2, vec![1]));
    }

    #[test]
    fn a_report_that_is_not_a_feature_collection_is_refused_with_the_reason() {
        let truth = fc(vec![object(0.0, 50.0, "building", "2022-03")]);
        let err = score(&json!({"type": "Feature"}), &truth).unwrap_err();
        assert!(err.0.contains("report"), "{err}");
    }

    #[test]
    fn months_parse_from_dates_and_months() {
        assert_eq!(month_index("2022-03-31"), Some(2022 * 12 + 2));
        assert_eq!(month_index("2022-03"), month_index("2022-03-01"));
        assert_eq!(month_index("2022-13"), None);
        assert_eq!(month_index("22-03"), None);
    }
}

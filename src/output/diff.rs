//! Diffs: what changed between two reports of the same site, with ids that survive growth, merges
//! and splits.
//!
//! Polygons of the two reports are matched by overlap: the geodesic area of their intersection,
//! measured the one way this project measures areas ([`report::area_m2`]). From the overlaps:
//!
//! - every previous polygon has at most one **heir**, the current polygon it overlaps most;
//! - a current polygon that is the heir of one or more previous polygons keeps the id of the one it
//!   overlaps most and lists the others in `merged_ids` (a merge);
//! - a current polygon that overlaps previous polygons but is the heir of none is a piece split off
//!   them: it keeps its own id and lists them in `split_from`;
//! - a current polygon that overlaps nothing is `added`; a previous polygon with no heir is `removed`.
//!
//! The scan's own ids come from a region's first pixel, which moves when a region grows upwards or
//! leftwards; [`stabilize_ids`] gives matched polygons back their previous ids before a report is
//! written, so ids stay the same from scan to scan. Everything here is pure except [`read`] and
//! [`diff_files`], the thin file layer of the `diff` command.

use std::collections::BTreeSet;
use std::path::Path;

use geo::{BooleanOps, BoundingRect, Intersects, MultiPolygon, Rect};
use geojson::{Feature, FeatureCollection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::output::provenance::Provenance;
use crate::output::{report, round};

/// Two polygons overlap when their intersection is at least this large, m². Half a 10 m pixel: polygons
/// that only touch, or whose shared edges differ by coordinate rounding (6 decimals, ~0.1 m), do not
/// match, while two outlines of the same pixels always share whole pixels.
pub(crate) const MIN_OVERLAP_M2: f64 = 50.0;

/// An area change within this fraction of the previous area is `unchanged` ...
pub(crate) const TOLERANCE_RELATIVE: f64 = 0.05;

/// ... and so is one within one 10 m pixel, m² (small polygons gain or lose a pixel from noise).
pub(crate) const TOLERANCE_M2: f64 = 100.0;

/// Values of the `status` property: a report's two, and the diff's word for a provisional polygon
/// that a later scan did not confirm.
const CONFIRMED: &str = "confirmed";
const PROVISIONAL: &str = "provisional";
const WITHDRAWN: &str = "withdrawn";

/// Areas in a diff are written to 0.1 m², as in the report.
const AREA_DECIMALS: i32 = 1;

/// What happened to a polygon between two reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    /// New: it overlaps no previous polygon.
    Added,
    /// Larger than the previous area it takes over, beyond the tolerance.
    Grown,
    /// Smaller than the previous area it takes over, beyond the tolerance.
    Shrunk,
    /// The same area, within the tolerance.
    Unchanged,
    /// A previous polygon that no current polygon overlaps (kept with its last geometry).
    Removed,
}

impl Change {
    /// Every kind, in the order they are listed.
    pub(crate) const ALL: [Change; 5] = [
        Change::Added,
        Change::Grown,
        Change::Shrunk,
        Change::Unchanged,
        Change::Removed,
    ];

    /// The value of the `change` property.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Grown => "grown",
            Change::Shrunk => "shrunk",
            Change::Unchanged => "unchanged",
            Change::Removed => "removed",
        }
    }
}

/// Grown, shrunk or unchanged, by the documented tolerance.
pub(crate) fn classify(area_m2: f64, area_m2_prev: f64) -> Change {
    let delta = area_m2 - area_m2_prev;
    let tolerance = (TOLERANCE_RELATIVE * area_m2_prev).max(TOLERANCE_M2);
    if delta > tolerance {
        Change::Grown
    } else if delta < -tolerance {
        Change::Shrunk
    } else {
        Change::Unchanged
    }
}

/// How many features of each kind a diff holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// New polygons.
    pub added: usize,
    /// Polygons that grew.
    pub grown: usize,
    /// Polygons that shrank.
    pub shrunk: usize,
    /// Polygons within the tolerance.
    pub unchanged: usize,
    /// Previous polygons with no successor.
    pub removed: usize,
    /// Of all these, provisional polygons now confirmed (their heir is confirmed).
    pub confirmed: usize,
    /// Of the removed, provisional polygons a later scan did not confirm.
    pub withdrawn: usize,
}

impl Counts {
    fn add(&mut self, change: Change) {
        match change {
            Change::Added => self.added += 1,
            Change::Grown => self.grown += 1,
            Change::Shrunk => self.shrunk += 1,
            Change::Unchanged => self.unchanged += 1,
            Change::Removed => self.removed += 1,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} grown, {} shrunk, {} unchanged, {} removed ({} provisional now confirmed, {} withdrawn)",
            self.added, self.grown, self.shrunk, self.unchanged, self.removed, self.confirmed, self.withdrawn
        )
    }
}

/// A diff: the FeatureCollection to write and its counts.
#[derive(Debug, Clone)]
pub struct Diff {
    /// One feature per current polygon, then one per removed previous polygon.
    pub collection: FeatureCollection,
    /// Features of each kind.
    pub counts: Counts,
}

/// One polygon of a report, as the matching sees it.
struct Outline {
    id: String,
    /// The `status` property: `provisional`, `confirmed`, or None in a report without statuses
    /// (read as confirmed).
    status: Option<String>,
    shape: MultiPolygon<f64>,
    rect: Option<Rect<f64>>,
    area_m2: f64,
}

fn outlines(collection: &FeatureCollection) -> Vec<Outline> {
    collection
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let shape = report::multipolygon_of(f);
            Outline {
                id: feature_id(f).unwrap_or_else(|| format!("feature-{i}")),
                status: f.property("status").and_then(Value::as_str).map(str::to_owned),
                rect: shape.bounding_rect(),
                area_m2: area(&shape),
                shape,
            }
        })
        .collect()
}

fn area(shape: &MultiPolygon<f64>) -> f64 {
    // fold from +0.0: `sum` of no floats is -0.0, which would be written as "-0.0".
    shape.iter().map(report::area_m2).fold(0.0, |a, b| a + b)
}

/// The feature's id: the GeoJSON `id` member, else the `id` property.
fn feature_id(f: &Feature) -> Option<String> {
    match &f.id {
        Some(geojson::feature::Id::String(s)) => Some(s.clone()),
        Some(geojson::feature::Id::Number(n)) => Some(n.to_string()),
        None => f.property("id").and_then(Value::as_str).map(str::to_owned),
    }
}

/// The result of matching the previous report's polygons to the current one's.
struct Matching {
    /// Per current polygon: (previous index, overlap m²) for every previous polygon it overlaps.
    overlaps: Vec<Vec<(usize, f64)>>,
    /// Per previous polygon: the current polygon that overlaps it most.
    heir: Vec<Option<usize>>,
    /// Per current polygon: its stable id.
    ids: Vec<String>,
}

impl Matching {
    fn new(previous: &[Outline], current: &[Outline]) -> Matching {
        let overlaps: Vec<Vec<(usize, f64)>> = current
            .iter()
            .map(|c| {
                previous
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| matches!((p.rect, c.rect), (Some(a), Some(b)) if a.intersects(&b)))
                    .map(|(j, p)| (j, area(&p.shape.intersection(&c.shape))))
                    .filter(|&(_, overlap)| overlap >= MIN_OVERLAP_M2)
                    .collect()
            })
            .collect();
        let mut heir: Vec<Option<(usize, f64)>> = vec![None; previous.len()];
        for (i, list) in overlaps.iter().enumerate() {
            for &(j, overlap) in list {
                // Strictly larger: on a tie the earlier current polygon stays the heir.
                if heir[j].is_none_or(|(_, best)| overlap > best) {
                    heir[j] = Some((i, overlap));
                }
            }
        }
        let heir: Vec<Option<usize>> = heir.into_iter().map(|h| h.map(|(i, _)| i)).collect();
        let mut ids: Vec<Option<String>> = vec![None; current.len()];
        for (i, list) in overlaps.iter().enumerate() {
            ids[i] = list
                .iter()
                .filter(|(j, _)| heir[*j] == Some(i))
                .max_by(|a, b| {
                    a.1.total_cmp(&b.1)
                        .then_with(|| previous[b.0].id.cmp(&previous[a.0].id))
                })
                .map(|(j, _)| previous[*j].id.clone());
        }
        // Unmatched and split-off polygons keep their own id unless a previous polygon had it (a
        // piece split off may start at the pixel that named its parent): then a suffix tells them apart.
        let mut taken: BTreeSet<String> = previous.iter().map(|p| p.id.clone()).collect();
        taken.extend(ids.iter().flatten().cloned());
        let ids = ids
            .into_iter()
            .zip(current)
            .map(|(kept, c)| {
                kept.unwrap_or_else(|| {
                    let id = (1..)
                        .map(|k| if k == 1 { c.id.clone() } else { format!("{}-{k}", c.id) })
                        .find(|id| !taken.contains(id))
                        .expect("an unbounded range always yields a free id");
                    taken.insert(id.clone());
                    id
                })
            })
            .collect();
        Matching { overlaps, heir, ids }
    }
}

/// Gives the current report's polygons the ids of the previous polygons they continue (see the
/// module documentation), in the GeoJSON `id` member and the `id` property alike. Applying it twice
/// changes nothing.
pub(crate) fn stabilize_ids(previous: &FeatureCollection, current: &mut FeatureCollection) {
    let matching = Matching::new(&outlines(previous), &outlines(current));
    for (feature, id) in current.features.iter_mut().zip(matching.ids) {
        if let Some(props) = feature.properties.as_mut() {
            props.insert("id".into(), json!(id));
        }
        feature.id = Some(geojson::feature::Id::String(id));
    }
}

/// The diff of two reports. Feature properties: `id` (stable), `change`, `area_m2` (of this
/// geometry), `area_m2_prev` (the previous area this polygon takes over), `area_delta_m2`,
/// `status` (`confirmed`, `provisional`, or `withdrawn` for a removed provisional polygon),
/// `status_prev` (the status of the previous polygon whose id it keeps; null when added),
/// `first_detected`, `last_clear_before`, `confirmed_on`, `confidence`, `prev_ids` (every previous
/// polygon it overlaps), `merged_ids` and `split_from`. The `compound_watch_diff` member holds the counts, the rule's constants and
/// what each report covered.
///
/// `area_m2_prev` splits every previous polygon's area without double counting: a split-off piece
/// takes over the previous area it covers, the heir takes over the rest of each polygon it inherits
/// (including any part no current polygon covers, which is how a polygon shrinks).
pub(crate) fn diff(previous: &FeatureCollection, current: &FeatureCollection) -> Diff {
    let (prev, cur) = (outlines(previous), outlines(current));
    let m = Matching::new(&prev, &cur);
    let claimed = m.claimed(prev.len());
    let mut counts = Counts::default();
    let mut features = Vec::with_capacity(cur.len());
    for (i, (c, feature)) in cur.iter().zip(&current.features).enumerate() {
        let (change, f) = successor(&m, &prev, &claimed, i, c, feature);
        counts.add(change);
        if f.property("status_prev") == Some(&json!(PROVISIONAL)) && f.property("status") == Some(&json!(CONFIRMED)) {
            counts.confirmed += 1;
        }
        features.push(f);
    }
    for (j, (p, feature)) in prev.iter().zip(&previous.features).enumerate() {
        if m.heir[j].is_none() {
            counts.add(Change::Removed);
            counts.withdrawn += usize::from(p.status.as_deref() == Some(PROVISIONAL));
            features.push(removed_feature(p, feature));
        }
    }
    let mut foreign = Map::new();
    foreign.insert(
        "compound_watch_diff".into(),
        json!({
            "counts": counts,
            "previous": describe(previous),
            "current": describe(current),
            "rule": {
                "min_overlap_m2": MIN_OVERLAP_M2,
                "unchanged_within_relative": TOLERANCE_RELATIVE,
                "unchanged_within_m2": TOLERANCE_M2,
                "area": "geodesic, WGS84 ellipsoid",
            },
        }),
    );
    Diff {
        collection: FeatureCollection {
            bbox: None,
            features,
            foreign_members: Some(foreign),
        },
        counts,
    }
}

impl Matching {
    /// Per previous polygon: the part of it claimed by pieces other than its heir, m².
    fn claimed(&self, n_previous: usize) -> Vec<f64> {
        let mut claimed = vec![0.0; n_previous];
        for (i, list) in self.overlaps.iter().enumerate() {
            for &(j, overlap) in list {
                if self.heir[j] != Some(i) {
                    claimed[j] += overlap;
                }
            }
        }
        claimed
    }
}

/// The diff feature of current polygon `i` (outline `c`, report feature `feature`): the previous
/// area it takes over, its change, and the previous polygons it inherits or split off.
fn successor(
    m: &Matching,
    prev: &[Outline],
    claimed: &[f64],
    i: usize,
    c: &Outline,
    feature: &Feature,
) -> (Change, Feature) {
    let list = &m.overlaps[i];
    let inherits = |j: usize| m.heir[j] == Some(i);
    let mut inherited: Vec<&(usize, f64)> = list.iter().filter(|(j, _)| inherits(*j)).collect();
    inherited.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| prev[a.0].id.cmp(&prev[b.0].id)));
    let area_prev: f64 = list
        .iter()
        .map(|&(j, overlap)| {
            if inherits(j) {
                (prev[j].area_m2 - claimed[j]).max(0.0)
            } else {
                overlap
            }
        })
        .fold(0.0, |a, b| a + b);
    let change = if list.is_empty() {
        Change::Added
    } else {
        classify(c.area_m2, area_prev)
    };
    let ids_of = |js: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        let mut ids: Vec<String> = js.map(|j| prev[j].id.clone()).collect();
        ids.sort();
        ids
    };
    let merged = ids_of(&mut inherited.iter().skip(1).map(|(j, _)| *j));
    let split_from = ids_of(&mut list.iter().filter(|(j, _)| !inherits(*j)).map(|(j, _)| *j));
    let prev_ids = ids_of(&mut list.iter().map(|(j, _)| *j));
    let status_prev = inherited
        .first()
        .map(|(j, _)| prev[*j].status.as_deref().unwrap_or(CONFIRMED));
    let f = diff_feature(
        feature,
        &m.ids[i],
        (change, status_prev),
        c.area_m2,
        area_prev,
        [prev_ids, merged, split_from],
    );
    (change, f)
}

/// The diff feature of a previous polygon no current polygon continues.
fn removed_feature(p: &Outline, feature: &Feature) -> Feature {
    // A removed polygon's own area is still its geometry's, so the file stays self-consistent;
    // its delta is the whole area lost.
    let status = p.status.as_deref().unwrap_or(CONFIRMED);
    let mut f = diff_feature(
        feature,
        &p.id,
        (Change::Removed, Some(status)),
        p.area_m2,
        p.area_m2,
        Default::default(),
    );
    if let Some(props) = f.properties.as_mut() {
        props.insert("area_delta_m2".into(), json!(round(-p.area_m2, AREA_DECIMALS)));
        if status == PROVISIONAL {
            props.insert("status".into(), json!(WITHDRAWN));
        }
    }
    f
}

fn diff_feature(
    source: &Feature,
    id: &str,
    (change, status_prev): (Change, Option<&str>),
    area_m2: f64,
    area_m2_prev: f64,
    [prev_ids, merged_ids, split_from]: [Vec<String>; 3],
) -> Feature {
    let copied = |key: &str| source.property(key).cloned().unwrap_or(Value::Null);
    let mut props = Map::new();
    props.insert("id".into(), json!(id));
    props.insert("change".into(), json!(change.name()));
    props.insert("area_m2".into(), json!(round(area_m2, AREA_DECIMALS)));
    props.insert("area_m2_prev".into(), json!(round(area_m2_prev, AREA_DECIMALS)));
    props.insert(
        "area_delta_m2".into(),
        json!(round(area_m2 - area_m2_prev, AREA_DECIMALS)),
    );
    props.insert("status".into(), copied("status"));
    props.insert("status_prev".into(), json!(status_prev));
    props.insert("first_detected".into(), copied("first_detected"));
    props.insert("last_clear_before".into(), copied("last_clear_before"));
    props.insert("confirmed_on".into(), copied("confirmed_on"));
    props.insert("confidence".into(), copied("confidence"));
    props.insert("prev_ids".into(), json!(prev_ids));
    props.insert("merged_ids".into(), json!(merged_ids));
    props.insert("split_from".into(), json!(split_from));
    Feature {
        bbox: None,
        geometry: source.geometry.clone(),
        id: Some(geojson::feature::Id::String(id.to_owned())),
        properties: Some(props),
        foreign_members: None,
    }
}

/// What a report covered, from its provenance: period, AOI and polygon count (period and AOI are
/// null for a report without a scan's provenance).
fn describe(collection: &FeatureCollection) -> Value {
    let provenance = Provenance::of(collection).ok();
    json!({
        "period": provenance.as_ref().map(|p| p.period),
        "aoi": provenance.as_ref().map(|p| &p.aoi.slug),
        "features": collection.features.len(),
    })
}

/// Checks that a FeatureCollection can be diffed: every feature has a Polygon or MultiPolygon and an
/// id, and no two share an id. The reason names the feature and says what to fix.
pub(crate) fn check(collection: &FeatureCollection) -> std::result::Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, f) in collection.features.iter().enumerate() {
        let Some(id) = feature_id(f) else {
            return Err(format!(
                "feature {i} has no id (neither an `id` member nor an `id` property); compare reports written by `compound-watch scan`, whose features all have one"
            ));
        };
        let polygonal = matches!(
            f.geometry.as_ref().map(|g| &g.value),
            Some(geojson::GeometryValue::Polygon { .. } | geojson::GeometryValue::MultiPolygon { .. })
        );
        if !polygonal {
            return Err(format!(
                "feature {id:?} has no Polygon or MultiPolygon geometry; a report holds polygons of new construction"
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(format!("two features share the id {id:?}; ids must be unique"));
        }
    }
    Ok(())
}

/// Reads a report for diffing: GeoJSON, and passing [`check`].
pub(crate) fn read(path: &Path) -> Result<FeatureCollection> {
    checked(report::read_geojson(path)?, path)
}

/// Parses the text of a report for diffing and `check`s it; `path` is where it came from, named in
/// errors. `read` is this on a file.
pub fn parse(text: &str, path: &Path) -> Result<FeatureCollection> {
    checked(report::parse_geojson(text, path)?, path)
}

fn checked(collection: FeatureCollection, path: &Path) -> Result<FeatureCollection> {
    check(&collection).map_err(|reason| Error::Report {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(collection)
}

/// The `diff` command: reads two reports, writes their diff to `out` (and its QGIS style beside it).
pub fn diff_files(previous: &Path, current: &Path, out: &Path) -> Result<Diff> {
    let (old, new) = (read(previous)?, read(current)?);
    let mut d = diff(&old, &new);
    if let Some(member) = d
        .collection
        .foreign_members
        .as_mut()
        .and_then(|m| m.get_mut("compound_watch_diff"))
    {
        member["previous"]["file"] = json!(previous.display().to_string());
        member["current"]["file"] = json!(current.display().to_string());
    }
    report::write_geojson(out, &d.collection)?;
    crate::output::qgis::style::write_qml(out, &crate::output::qgis::style::diff_style())?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Degrees per metre near Myawaddy (16.7 N): enough for squares of known area within 1 %.
    const LAT: f64 = 16.7;
    fn deg_lon(m: f64) -> f64 {
        m / (111_320.0 * LAT.to_radians().cos())
    }
    fn deg_lat(m: f64) -> f64 {
        m / 110_600.0
    }

    /// A report feature: a rectangle `w` x `h` metres whose south-west corner is `(x, y)` metres
    /// east and north of 98.5 E, 16.7 N.
    fn rect(id: &str, x: f64, y: f64, w: f64, h: f64) -> Feature {
        let (x0, y0) = (98.5 + deg_lon(x), LAT + deg_lat(y));
        let (x1, y1) = (98.5 + deg_lon(x + w), LAT + deg_lat(y + h));
        let polygon = geo::Rect::new((x0, y0), (x1, y1)).to_polygon();
        let mut props = Map::new();
        props.insert("id".into(), json!(id));
        props.insert("first_detected".into(), json!("2023-01-01"));
        props.insert("confidence".into(), json!(0.8));
        Feature {
            bbox: None,
            geometry: Some(geojson::Geometry::from(&polygon)),
            id: Some(geojson::feature::Id::String(id.into())),
            properties: Some(props),
            foreign_members: None,
        }
    }

    fn collection(features: Vec<Feature>) -> FeatureCollection {
        FeatureCollection {
            bbox: None,
            features,
            foreign_members: None,
        }
    }

    fn prop<'a>(d: &'a Diff, id: &str, key: &str) -> &'a Value {
        let f = d
            .collection
            .features
            .iter()
            .find(|f| f.property("id") == Some(&json!(id)))
            .unwrap_or_else(|| panic!("no feature {id} in the diff"));
        f.property(key).unwrap()
    }

    fn change<'a>(d: &'a Diff, id: &str) -> &'a str {
        prop(d, id, "change").as_str().unwrap()
    }

    #[test]
    fn tolerance_is_five_percent_or_one_pixel() {
        assert_eq!(classify(10_400.0, 10_000.0), Change::Unchanged);
        assert_eq!(classify(10_600.0, 10_000.0), Change::Grown);
        assert_eq!(classify(9_400.0, 10_000.0), Change::Shrunk);
        // Small polygons: one 10 m pixel either way is noise, not change.
        assert_eq!(classify(1_100.0, 1_000.0), Change::Unchanged);
        assert_eq!(classify(1_200.0, 1_000.0), Change::Grown);
    }

    #[test]
    fn each_change_kind_is_recognised() {
        let previous = collection(vec![
            rect("same", 0.0, 0.0, 100.0, 100.0),
            rect("grows", 300.0, 0.0, 100.0, 100.0),
            rect("shrinks", 600.0, 0.0, 100.0, 100.0),
            rect("goes", 900.0, 0.0, 100.0, 100.0),
        ]);
        let current = collection(vec![
            rect("same-now", 0.0, 0.0, 100.0, 102.0),
            rect("grows-now", 300.0, 0.0, 100.0, 150.0),
            rect("shrinks-now", 600.0, 0.0, 100.0, 60.0),
            rect("new", 1_200.0, 0.0, 50.0, 50.0),
        ]);
        let d = diff(&previous, &current);
        assert_eq!(change(&d, "same"), "unchanged");
        assert_eq!(change(&d, "grows"), "grown");
        assert_eq!(change(&d, "shrinks"), "shrunk");
        assert_eq!(change(&d, "goes"), "removed");
        assert_eq!(change(&d, "new"), "added");
        assert_eq!(
            d.counts,
            Counts {
                added: 1,
                grown: 1,
                shrunk: 1,
                unchanged: 1,
                removed: 1,
                ..Counts::default()
            }
        );
        assert_relative_eq!(
            prop(&d, "grows", "area_m2").as_f64().unwrap(),
            15_000.0,
            max_relative = 0.01
        );
        assert_relative_eq!(
            prop(&d, "grows", "area_m2_prev").as_f64().unwrap(),
            10_000.0,
            max_relative = 0.01
        );
        assert_relative_eq!(
            prop(&d, "grows", "area_delta_m2").as_f64().unwrap(),
            5_000.0,
            max_relative = 0.02
        );
        assert_relative_eq!(
            prop(&d, "goes", "area_delta_m2").as_f64().unwrap(),
            -10_000.0,
            max_relative = 0.01
        );
        assert_eq!(
            prop(&d, "new", "area_m2_prev").to_string(),
            "0.0",
            "written as 0.0, not -0.0"
        );
        assert_eq!(prop(&d, "grows", "prev_ids"), &json!(["grows"]));
        // The removed polygon keeps its last geometry and figures.
        let goes = d
            .collection
            .features
            .iter()
            .find(|f| f.property("id") == Some(&json!("goes")));
        assert_eq!(goes.unwrap().geometry, previous.features[3].geometry);
        assert_eq!(prop(&d, "goes", "first_detected"), &json!("2023-01-01"));
        let member = &d.collection.foreign_members.as_ref().unwrap()["compound_watch_diff"];
        assert_eq!(member["counts"]["removed"], 1);
    }

    #[test]
    fn a_grown_polygon_keeps_its_id_when_its_first_pixel_moves() {
        // The scan names a region by its top-left pixel, so growing north renames it.
        let previous = collection(vec![rect("site-r00100c00050", 0.0, 0.0, 100.0, 100.0)]);
        let mut current = collection(vec![rect("site-r00090c00050", 0.0, 0.0, 100.0, 200.0)]);
        stabilize_ids(&previous, &mut current);
        let f = &current.features[0];
        assert_eq!(f.id, Some(geojson::feature::Id::String("site-r00100c00050".into())));
        assert_eq!(f.property("id"), Some(&json!("site-r00100c00050")));
        let d = diff(&previous, &current);
        assert_eq!(change(&d, "site-r00100c00050"), "grown");
        assert_eq!(d.collection.features.len(), 1);
        let before = current.clone();
        stabilize_ids(&previous, &mut current);
        assert_eq!(current, before, "stabilizing twice must change nothing");
    }

    #[test]
    fn touching_polygons_do_not_match() {
        let previous = collection(vec![rect("a", 0.0, 0.0, 100.0, 100.0)]);
        let mut current = collection(vec![rect("b", 100.0, 0.0, 100.0, 100.0)]);
        stabilize_ids(&previous, &mut current);
        let d = diff(&previous, &current);
        assert_eq!(change(&d, "b"), "added");
        assert_eq!(change(&d, "a"), "removed");
    }

    #[test]
    fn a_merge_keeps_the_id_of_the_largest_overlap_and_lists_the_others() {
        let previous = collection(vec![
            rect("small", 0.0, 0.0, 50.0, 100.0),
            rect("large", 100.0, 0.0, 150.0, 100.0),
        ]);
        let mut current = collection(vec![rect("joined", 0.0, 0.0, 250.0, 100.0)]);
        stabilize_ids(&previous, &mut current);
        assert_eq!(current.features[0].property("id"), Some(&json!("large")));
        let d = diff(&previous, &current);
        assert_eq!(d.collection.features.len(), 1, "merged polygons are not removed");
        assert_eq!(prop(&d, "large", "merged_ids"), &json!(["small"]));
        assert_eq!(prop(&d, "large", "prev_ids"), &json!(["large", "small"]));
        // 20,000 m² before (both), 25,000 m² now: the gap between them was built on.
        assert_relative_eq!(
            prop(&d, "large", "area_m2_prev").as_f64().unwrap(),
            20_000.0,
            max_relative = 0.01
        );
        assert_eq!(change(&d, "large"), "grown");
    }

    #[test]
    fn a_split_keeps_the_id_on_the_largest_piece_and_the_totals_add_up() {
        let previous = collection(vec![rect("site-r00001c00001", 0.0, 0.0, 300.0, 100.0)]);
        // The west piece starts at the parent's first pixel, so it would take the parent's id.
        let mut current = collection(vec![
            rect("site-r00001c00001", 0.0, 0.0, 100.0, 100.0),
            rect("site-r00001c00015", 150.0, 0.0, 150.0, 100.0),
        ]);
        stabilize_ids(&previous, &mut current);
        let ids: Vec<&Value> = current.features.iter().map(|f| f.property("id").unwrap()).collect();
        assert_eq!(ids, [&json!("site-r00001c00001-2"), &json!("site-r00001c00001")]);
        let d = diff(&previous, &current);
        assert_eq!(
            prop(&d, "site-r00001c00001-2", "split_from"),
            &json!(["site-r00001c00001"])
        );
        assert_eq!(prop(&d, "site-r00001c00001", "split_from"), &json!([]));
        // The piece took over the 10,000 m² it covers and is unchanged; the heir took over the other
        // 20,000 m² of which it covers 15,000.
        assert_eq!(change(&d, "site-r00001c00001-2"), "unchanged");
        assert_eq!(change(&d, "site-r00001c00001"), "shrunk");
        let total_prev: f64 = d
            .collection
            .features
            .iter()
            .map(|f| f.property("area_m2_prev").unwrap().as_f64().unwrap())
            .sum();
        assert_relative_eq!(total_prev, 30_000.0, max_relative = 0.01);
    }

    #[test]
    fn against_an_empty_previous_report_everything_is_added() {
        let current = collection(vec![
            rect("a", 0.0, 0.0, 100.0, 100.0),
            rect("b", 500.0, 0.0, 100.0, 100.0),
        ]);
        let d = diff(&collection(vec![]), &current);
        assert_eq!(d.counts.added, 2);
        assert_eq!(
            d.counts,
            Counts {
                added: 2,
                ..Counts::default()
            }
        );
        assert_eq!(change(&d, "a"), "added");
    }

    fn with_status(mut f: Feature, status: &str) -> Feature {
        f.properties.as_mut().unwrap().insert("status".into(), json!(status));
        f
    }

    #[test]
    fn a_provisional_polygon_is_confirmed_by_its_heir_or_withdrawn_when_it_has_none() {
        let previous = collection(vec![
            with_status(rect("stays", 0.0, 0.0, 100.0, 100.0), "provisional"),
            with_status(rect("cloud", 400.0, 0.0, 50.0, 50.0), "provisional"),
            with_status(rect("old", 800.0, 0.0, 50.0, 50.0), "confirmed"),
        ]);
        let current = collection(vec![
            with_status(rect("stays-new-id", 0.0, 0.0, 100.0, 100.0), "confirmed"),
            with_status(rect("old", 800.0, 0.0, 50.0, 50.0), "confirmed"),
        ]);
        let d = diff(&previous, &current);
        assert_eq!((d.counts.confirmed, d.counts.withdrawn, d.counts.removed), (1, 1, 1));
        assert_eq!(prop(&d, "stays", "status"), "confirmed");
        assert_eq!(prop(&d, "stays", "status_prev"), "provisional");
        assert_eq!(prop(&d, "cloud", "status"), "withdrawn");
        assert_eq!(change(&d, "cloud"), "removed");
        assert_eq!(prop(&d, "old", "status_prev"), "confirmed");
        // A confirmed polygon that disappears is removed, not withdrawn.
        let d = diff(&current, &collection(vec![]));
        assert_eq!((d.counts.removed, d.counts.withdrawn), (2, 0));
        assert_eq!(prop(&d, "old", "status"), "confirmed");
    }

    #[test]
    fn check_names_the_feature_and_the_problem() {
        let mut point = rect("p", 0.0, 0.0, 10.0, 10.0);
        point.geometry = Some(geojson::Geometry::new_point([98.5, 16.7]));
        let reason = check(&collection(vec![point])).unwrap_err();
        assert!(reason.contains("\"p\"") && reason.contains("Polygon"), "{reason}");
        let twice = collection(vec![rect("a", 0.0, 0.0, 10.0, 10.0), rect("a", 50.0, 0.0, 10.0, 10.0)]);
        assert!(check(&twice).unwrap_err().contains("share the id"));
    }
}

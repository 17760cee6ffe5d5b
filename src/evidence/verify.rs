//! `verify`: checks a bundle's manifest, then runs the scan again from the bundle alone, offline,
//! and compares what it writes with the bundled outputs, byte for byte.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::manifest::{self, Problem};
use super::{Scanned, INPUTS, OUTPUTS};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{scene_from_item, Band, Found, SceneSearch, SearchQuery};
use crate::io::window::{Window, WindowReader};
use crate::scan::{ScanConfig, Silent};

/// The outputs a verification compares, relative to the output folder. The imagery (`composite.tif`,
/// `months/`, quicklooks) and the summary are derived outputs: the manifest covers them, the re-run
/// does not compare them (they follow from the same composites as the report).
const COMPARED: [&str; 3] = ["report.geojson", "diff.geojson", "demolition.geojson"];

/// What a verification found.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every file is as the manifest lists it and the scan, run again from the bundle, wrote the
    /// same bytes.
    Confirmed {
        /// Files checked against the manifest.
        files: usize,
        /// Input windows the re-run read, all from the bundle.
        windows: usize,
        /// Polygons in the report.
        polygons: usize,
        /// The outputs compared byte for byte.
        compared: Vec<String>,
    },
    /// Files of the bundle differ from its manifest; nothing was run.
    Tampered(Vec<Problem>),
    /// The re-run wrote other bytes than the bundle holds.
    Differs(Vec<Difference>),
}

/// One output that the re-run wrote differently, and the first place it differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The output, relative to the bundle (e.g. `outputs/report.geojson`).
    pub file: String,
    /// The first difference, in words: which feature and property, or which member.
    pub first: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.first)
    }
}

/// Verifies the bundle in `dir`: the manifest first, then a re-run of the scan in a temporary
/// folder (a copy of `inputs/` as its cache, the bundle's records as its source, no reads).
pub fn verify(dir: &Path) -> Result<Verdict> {
    let problems = manifest::check(dir)?;
    if !problems.is_empty() {
        return Ok(Verdict::Tampered(problems));
    }
    let files = manifest::files(dir)?.len();
    let outputs = dir.join(OUTPUTS);
    let scanned = Scanned::read(&outputs)?;
    let work = tempfile::tempdir().map_err(Error::io(std::env::temp_dir()))?;
    let (cache_dir, out) = (work.path().join("cache"), work.path().join("out"));
    copy_tree(&dir.join(INPUTS), &cache_dir)?;
    let windows = check_windows(&scanned, &Cache::new(&cache_dir), dir)?;
    // The diff compared against the report kept beside the outputs; put it back where the scan
    // finds it (a rerun of the same period diffs against the kept report).
    let kept = outputs.join(crate::scan::state::PREVIOUS_REPORT_FILE);
    if kept.is_file() {
        super::copy(&kept, &out.join(crate::scan::state::PREVIOUS_REPORT_FILE))?;
        super::copy(&outputs.join("report.geojson"), &out.join("report.geojson"))?;
    }
    let config = config(&scanned, &out, &cache_dir);
    let source = Recorded::of(&scanned);
    let summary = crate::scan::run(&config, &source, &Refuse { bundle: dir }, &Silent)?;
    let mut differences = Vec::new();
    for name in COMPARED {
        let (bundled, rerun) = (outputs.join(name), out.join(name));
        let a = std::fs::read(&bundled).map_err(Error::io(&bundled))?;
        let b = std::fs::read(&rerun).map_err(Error::io(&rerun))?;
        if a != b {
            differences.push(Difference {
                file: format!("{OUTPUTS}/{name}"),
                first: first_difference(&a, &b),
            });
        }
    }
    if !differences.is_empty() {
        return Ok(Verdict::Differs(differences));
    }
    Ok(Verdict::Confirmed {
        files,
        windows,
        polygons: summary.detections,
        compared: COMPARED.iter().map(|n| format!("{OUTPUTS}/{n}")).collect(),
    })
}

/// The scan's configuration as the report records it. Refusal thresholds are off: the scan being
/// verified published, and the question is what it computed, not whether it would publish again.
fn config(scanned: &Scanned, out: &Path, cache: &Path) -> ScanConfig {
    let p = &scanned.provenance;
    let mut config = ScanConfig::new(
        scanned.aoi.clone(),
        p.period.from,
        p.period.to,
        out.to_path_buf(),
        cache.to_path_buf(),
    );
    let params = &p.parameters;
    config.detect = params.detect;
    config.max_cloud_cover = params.max_cloud_cover;
    config.cloud_buffer = params.cloud_buffer_px;
    config.persistent_cloud_is_surface = params.persistent_cloud_is_surface;
    config.min_clear_obs = params.min_clear_obs;
    config.min_area_m2 = params.min_area_m2;
    config.min_scenes = 0;
    config.min_used_share = 0.0;
    config.max_grid_km2 = f64::MAX;
    config
}

/// Every window of every scene the scan read must be in the bundle's inputs: one that is not is an
/// error naming it, never a read from the network. Returns how many windows there are.
fn check_windows(scanned: &Scanned, cache: &Cache, bundle: &Path) -> Result<usize> {
    let held = scanned.held_windows(cache).map_err(|missing| {
        let rel = missing.entry.strip_prefix(cache.root()).unwrap_or(&missing.entry);
        Error::Evidence {
            path: bundle.join(INPUTS).join(rel),
            reason: format!(
                "the {} window of scene {} is missing or unreadable, and verify reads nothing from \
                 the network; the bundle is incomplete: write it again with `compound-watch evidence`",
                missing.band.asset_key(),
                missing.scene
            ),
        }
    })?;
    Ok(held.len())
}

/// The scan's search, replayed from its records: the scenes it found (with the hrefs that key the
/// cache), the items it set aside as superseded (rebuilt from the recorded item documents, as
/// their ids are all the dedupe needs), and the items it rejected with their reasons.
struct Recorded {
    found: Found,
    description: String,
}

impl Recorded {
    fn of(scanned: &Scanned) -> Recorded {
        let p = &scanned.provenance;
        let mut scenes = scanned.state.scenes.clone();
        let superseded: BTreeSet<&str> = p.superseded.iter().map(String::as_str).collect();
        scenes.extend(
            scanned
                .items
                .iter()
                .filter(|i| i["id"].as_str().is_some_and(|id| superseded.contains(id)))
                .filter_map(|i| serde_json::from_value::<stac::Item>(i.clone()).ok())
                .filter_map(|item| scene_from_item(&item, "", str::to_owned).ok()),
        );
        scenes.sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
        let found_ids: BTreeSet<&str> = scanned.state.scenes.iter().map(|s| s.id.as_str()).collect();
        let rejected = p
            .skipped
            .iter()
            .filter(|s| !found_ids.contains(s.id.as_str()))
            .cloned()
            .collect();
        Recorded {
            found: Found {
                scenes,
                rejected,
                items: scanned.items.clone(),
            },
            description: scanned.state.source.clone(),
        }
    }
}

impl SceneSearch for Recorded {
    fn search(&self, _query: &SearchQuery) -> Result<Found> {
        Ok(self.found.clone())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// The reader of a verification: every window must come from the bundle, so any read is refused.
struct Refuse<'a> {
    bundle: &'a Path,
}

impl WindowReader for Refuse<'_> {
    fn read(&self, href: &str, band: Band, _grid: &Grid) -> Result<Window> {
        Err(Error::Evidence {
            path: self.bundle.join(INPUTS),
            reason: format!(
                "holds no {} window for {href}, and verify reads nothing from the network",
                band.asset_key()
            ),
        })
    }
}

/// Copies a folder and everything in it.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for rel in manifest::files(from)? {
        super::copy(&from.join(&rel), &to.join(&rel))?;
    }
    Ok(())
}

/// The first difference between two GeoJSON files, in words: the feature (by index and id) and
/// property, or the member; the byte offset when they are not both JSON.
fn first_difference(bundled: &[u8], rerun: &[u8]) -> String {
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<Value>(bundled),
        serde_json::from_slice::<Value>(rerun),
    ) else {
        let at = bundled
            .iter()
            .zip(rerun)
            .position(|(x, y)| x != y)
            .unwrap_or(bundled.len().min(rerun.len()));
        return format!("the bytes differ from offset {at}");
    };
    let empty = Vec::new();
    let (fa, fb) = (
        a["features"].as_array().unwrap_or(&empty),
        b["features"].as_array().unwrap_or(&empty),
    );
    for (i, (x, y)) in fa.iter().zip(fb).enumerate() {
        if x == y {
            continue;
        }
        let id = x["id"].as_str().unwrap_or("?");
        return match json_path(x, y, "") {
            Some((path, va, vb)) => format!("feature {i} (id {id}) {path}: the bundle has {va}, the re-run {vb}"),
            None => format!("feature {i} (id {id}) differs"),
        };
    }
    if fa.len() != fb.len() {
        return format!("the bundle has {} features, the re-run {}", fa.len(), fb.len());
    }
    match json_path(&a, &b, "") {
        Some((path, va, vb)) => format!("member {path}: the bundle has {va}, the re-run {vb}"),
        None => "the same JSON written with other bytes (formatting or number spelling)".into(),
    }
}

/// The first path at which two JSON values differ, with both values there (cut short).
fn json_path(a: &Value, b: &Value, at: &str) -> Option<(String, String, String)> {
    let short = |v: Option<&Value>| {
        let s = v.map_or("nothing".to_owned(), Value::to_string);
        if s.len() > 80 {
            format!("{}...", &s[..s.char_indices().nth(77).map_or(s.len(), |(i, _)| i)])
        } else {
            s
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => json_path(p, q, &here),
                    (p, q) => Some((here, short(p), short(q))),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| json_path(p, q, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some((
            if at.is_empty() {
                "(root)".into()
            } else {
                at.trim_start_matches('.').to_owned()
            },
            short(Some(a)),
            short(Some(b)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_names_the_feature_and_property() {
        let a = br#"{"type":"FeatureCollection","features":[{"id":"a","properties":{"area_m2":10.0}},{"id":"b","properties":{"area_m2":20.0,"scenes":["x","y"]}}]}"#;
        let b = br#"{"type":"FeatureCollection","features":[{"id":"a","properties":{"area_m2":10.0}},{"id":"b","properties":{"area_m2":20.0,"scenes":["x","z"]}}]}"#;
        assert_eq!(
            first_difference(a, b),
            r#"feature 1 (id b) properties.scenes[1]: the bundle has "y", the re-run "z""#
        );
        let c = br#"{"type":"FeatureCollection","features":[],"compound_watch":{"version":"0.1.0"}}"#;
        let d = br#"{"type":"FeatureCollection","features":[],"compound_watch":{"version":"0.2.0"}}"#;
        assert_eq!(
            first_difference(c, d),
            r#"member compound_watch.version: the bundle has "0.1.0", the re-run "0.2.0""#
        );
        assert_eq!(first_difference(b"{ x", b"{ y"), "the bytes differ from offset 2");
    }
}

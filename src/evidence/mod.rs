//! Evidence bundles: a scan's outputs together with everything they were computed from, so that a
//! reader can check, offline and without trusting the person who ran the scan, that the report
//! follows from these inputs and this version's code.
//!
//! [`write()`] copies a published scan output (`--out` of `scan`) into a bundle folder:
//!
//! - `outputs/`: every file the scan published (report, diff, demolition, composite, the monthly
//!   composites of `months/`, summary and its quicklooks, QGIS files, and `.compound-watch/` with
//!   the scan's state, the STAC items its search was served, the exact AOI and the report its diff
//!   compared against);
//! - `items.json`: the STAC items of the scenes the report used, as the source served them;
//! - `inputs/`: every window of those scenes as the cache holds it, in the cache's own layout
//!   (located only through [`Cache::entry`], each entry an opaque file);
//! - `params.json`: the tool version, the period, the AOI, the source and every parameter;
//! - `MANIFEST.sha256`: the SHA-256 of every other file, as `sha256sum -c` reads it.
//!
//! [`verify`] checks the manifest, then runs the scan again through the public entry point
//! ([`crate::scan::run`]) with the bundle's items as the source and a copy of `inputs/` as the
//! cache, with a reader that refuses to read anything, and compares the outputs byte for byte.
//!
//! This module must not reach into the scan's stages or the cache's format: the scan is being
//! rewritten for speed, and a bundle is only worth what the public path behind it is.

mod manifest;
mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene};
use crate::output::provenance::Provenance;
use crate::scan::state::{self, State};

pub use manifest::{Problem, FILE as MANIFEST};
pub use verify::{verify, Difference, Verdict};

/// Where a bundle keeps the scan's published outputs.
pub const OUTPUTS: &str = "outputs";
/// Where a bundle keeps the input windows, in the cache's layout.
pub const INPUTS: &str = "inputs";

/// Files of a scan output that are not outputs: the lock (it holds a pid), the attempt log (one
/// timestamped line per run), and a publish in progress.
const NOT_OUTPUTS: [&str; 4] = [
    ".compound-watch/lock",
    ".compound-watch/attempts.jsonl",
    ".compound-watch/publish.json",
    ".compound-watch/staging",
];

/// What [`write()`] put in a bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle folder.
    pub dir: PathBuf,
    /// Output files copied.
    pub outputs: usize,
    /// Input windows copied.
    pub windows: usize,
    /// Items of the scenes used, in `items.json`.
    pub items: usize,
    /// Files the manifest lists.
    pub files: usize,
}

/// A window a bundle must hold that the cache does not.
pub(crate) struct MissingWindow {
    /// Where the cache would hold it.
    pub(crate) entry: PathBuf,
    /// Its band.
    pub(crate) band: Band,
    /// Its scene's id.
    pub(crate) scene: String,
}

/// A scan output read for a bundle or a verification.
pub(crate) struct Scanned {
    pub(crate) provenance: Provenance,
    pub(crate) state: State,
    pub(crate) aoi: crate::aoi::Aoi,
    pub(crate) items: Vec<Value>,
}

impl Scanned {
    /// Reads what a scan published in `out`, naming the file that is missing and why it matters.
    pub(crate) fn read(out: &Path) -> Result<Scanned> {
        let need = |rel: &str| {
            let path = out.join(rel);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::Evidence {
                    path: path.clone(),
                    reason: format!(
                        "is missing: {} is not the output folder of a finished scan by this version (a scan \
                         writes {rel}); run `compound-watch scan` again into it and retry",
                        out.display()
                    ),
                })
            }
        };
        let report = crate::output::report::read_geojson(&need("report.geojson")?)?;
        let provenance = Provenance::of(&report).map_err(|reason| Error::Evidence {
            path: out.join("report.geojson"),
            reason,
        })?;
        let state = state::load(out)?.ok_or_else(|| Error::Evidence {
            path: out.join(state::STATE_FILE),
            reason: "is missing: the scan's state names its scenes".into(),
        })?;
        let aoi_path = need(state::AOI_FILE)?;
        let text = std::fs::read_to_string(&aoi_path).map_err(Error::io(&aoi_path))?;
        let record: Value = serde_json::from_str(&text).map_err(|e| Error::Evidence {
            path: aoi_path.clone(),
            reason: format!("is not JSON ({e})"),
        })?;
        let aoi = crate::aoi::Aoi::from_record(&record, &aoi_path)?;
        need(state::ITEMS_FILE)?;
        let items = state::load_items(out)?;
        Ok(Scanned {
            provenance,
            state,
            aoi,
            items,
        })
    }

    /// The cache entries of every window of [`Self::read_scenes`] that `cache` holds, in scene
    /// and band order; or the first window a bundle must hold that it does not.
    pub(crate) fn held_windows(&self, cache: &Cache) -> std::result::Result<Vec<PathBuf>, MissingWindow> {
        let grid = &self.state.grid;
        let mut held = Vec::new();
        for (scene, required) in self.read_scenes() {
            for band in Band::ALL {
                let entry = cache.entry(scene, band, grid);
                if cache.holds(&entry, scene, band, grid) {
                    held.push(entry);
                } else if required.contains(&band) {
                    return Err(MissingWindow {
                        entry,
                        band,
                        scene: scene.id.clone(),
                    });
                }
            }
        }
        Ok(held)
    }

    /// The scenes the scan read, with the bands that must be in a bundle: every band of those it
    /// used, the classes of those without data or cloudy over the AOI.
    pub(crate) fn read_scenes(&self) -> Vec<(&Scene, &'static [Band])> {
        let used: BTreeSet<&str> = self.provenance.scenes.iter().map(|s| s.id.as_str()).collect();
        // Scenes without data or with nothing clear over the AOI may have been read no further
        // than their classes (the fetch's scout): those must be there, the other bands if held.
        let classes_only: BTreeSet<&str> = self
            .provenance
            .no_data
            .iter()
            .chain(&self.provenance.cloudy)
            .map(String::as_str)
            .collect();
        self.state
            .scenes
            .iter()
            .filter_map(|s| {
                if used.contains(s.id.as_str()) {
                    Some((s, &Band::ALL[..]))
                } else if classes_only.contains(s.id.as_str()) {
                    Some((s, &[Band::Scl][..]))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Writes the evidence bundle of the scan output `out` (windows from `cache`) into `dir`, which
/// must be absent or empty.
pub fn write(out: &Path, cache: &Cache, dir: &Path) -> Result<Bundle> {
    let scanned = Scanned::read(out)?;
    if dir.exists() && std::fs::read_dir(dir).map_err(Error::io(dir))?.next().is_some() {
        return Err(Error::Evidence {
            path: dir.to_path_buf(),
            reason: "exists and is not empty; give a new folder for the bundle".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let outputs = copy_outputs(out, &dir.join(OUTPUTS))?;
    let windows = copy_windows(&scanned, cache, &dir.join(INPUTS))?;
    let used: BTreeSet<&str> = scanned.provenance.scenes.iter().map(|s| s.id.as_str()).collect();
    let items: Vec<Value> = scanned
        .items
        .iter()
        .filter(|i| i["id"].as_str().is_some_and(|id| used.contains(id)))
        .cloned()
        .collect();
    crate::io::atomic::write_json(&dir.join("items.json"), &state::item_collection(&items))?;
    crate::io::atomic::write_json(&dir.join("params.json"), &params(&scanned, windows)?)?;
    let files = manifest::write(dir)?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        outputs,
        windows,
        items: items.len(),
        files,
    })
}

/// The tool version and every parameter, for people (verify reads the outputs' own records).
fn params(scanned: &Scanned, windows: usize) -> Result<Value> {
    let p = &scanned.provenance;
    Ok(json!({
        "software": "compound-watch",
        "version": env!("CARGO_PKG_VERSION"),
        "scan_version": p.version,
        "aoi": {"name": p.aoi.name, "slug": p.aoi.slug, "origin": p.aoi.origin, "bbox": p.aoi.bbox},
        "period": p.period,
        "grid": p.grid,
        "source": p.source,
        "parameters": p.to_value()?.get("parameters").cloned().unwrap_or(Value::Null),
        "scenes_used": p.scenes.len(),
        "input_windows": windows,
        "bands": Band::ALL.map(Band::asset_key),
    }))
}

/// Copies every published file of `out` into `to`; returns how many.
fn copy_outputs(out: &Path, to: &Path) -> Result<usize> {
    let mut n = 0;
    for rel in manifest::files(out)? {
        if NOT_OUTPUTS
            .iter()
            .any(|skip| rel == *skip || rel.starts_with(&format!("{skip}/")))
        {
            continue;
        }
        let target = to.join(&rel);
        copy(&out.join(&rel), &target)?;
        n += 1;
    }
    Ok(n)
}

/// Copies every window of the scenes the scan read, as the cache holds it, keeping the cache's
/// layout; returns how many. A window the cache no longer holds (pruned, or another cache) is an
/// error naming it: a bundle without it could not be verified.
fn copy_windows(scanned: &Scanned, cache: &Cache, to: &Path) -> Result<usize> {
    let held = scanned.held_windows(cache).map_err(|missing| Error::Evidence {
        reason: format!(
            "the {} window of scene {} is not in the cache {} (pruned, or the scan used another \
             --cache); pass the scan's --cache, or scan again to refill it, then retry",
            missing.band.asset_key(),
            missing.scene,
            cache.root().display()
        ),
        path: missing.entry,
    })?;
    for entry in &held {
        let rel = entry
            .strip_prefix(cache.root())
            .expect("cache entries are inside the root");
        copy(entry, &to.join(rel))?;
    }
    Ok(held.len())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::copy(from, to).map_err(Error::io(from))?;
    Ok(())
}

/// Packs the bundle folder `dir` into the zip file `zip` (deflate), every file under the folder's
/// name; returns how many files.
pub fn pack(dir: &Path, zip: &Path) -> Result<usize> {
    let fail = |e: zip::result::ZipError| Error::Evidence {
        path: zip.to_path_buf(),
        reason: format!("cannot be written ({e})"),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = crate::io::atomic::temp_path_beside(zip)?;
    let file = std::fs::File::create(&tmp).map_err(Error::io(zip))?;
    let mut writer = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut files = manifest::files(dir)?;
    files.push(manifest::FILE.to_owned());
    files.sort();
    for rel in &files {
        writer.start_file(format!("{name}/{rel}"), options).map_err(fail)?;
        let mut input = std::fs::File::open(dir.join(rel)).map_err(Error::io(dir.join(rel)))?;
        std::io::copy(&mut input, &mut writer).map_err(Error::io(zip))?;
    }
    writer.finish().map_err(fail)?.sync_all().map_err(Error::io(zip))?;
    crate::io::atomic::publish(tmp, zip)?;
    Ok(files.len())
}

//! A scan's state, kept in its output directory (`.compound-watch/`): the scenes it used last time,
//! so a later run knows what is new and `--offline` can rerun without asking the source; and a
//! lock, so two scans never write the same output at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::source::Scene;
use crate::month::Month;
use crate::output::provenance::{Period, Provenance};

/// What a finished scan remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Version of compound-watch that wrote it.
    pub version: String,
    /// AOI slug.
    pub aoi: String,
    /// The analysis grid.
    pub grid: Grid,
    /// The source, as described in provenance.
    pub source: String,
    /// First month scanned.
    pub from: Month,
    /// Last month scanned.
    pub to: Month,
    /// Every scene the search returned (after de-duplication), used or skipped.
    pub scenes: Vec<Scene>,
}

fn dir(out: &Path) -> PathBuf {
    out.join(".compound-watch")
}

/// The state of the last finished scan in `out`, if any.
pub fn load(out: &Path) -> Result<Option<State>> {
    let path = dir(out).join("state.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
    parse(&text, &path).map(Some)
}

/// Parses the text of a state file; `path` is where it came from, named in errors. [`load`] is this
/// after reading the file.
pub fn parse(text: &str, path: &Path) -> Result<State> {
    serde_json::from_str(text).map_err(|e| Error::State {
        path: path.to_path_buf(),
        reason: format!("cannot be read ({e}); delete it and the next scan starts afresh"),
    })
}

/// Where the state is kept, relative to the output folder (it is published with the outputs).
pub(crate) const STATE_FILE: &str = ".compound-watch/state.json";

/// Where the report a diff compares against is kept, relative to the output folder.
pub(crate) const PREVIOUS_REPORT_FILE: &str = ".compound-watch/previous-report.geojson";

/// Where the STAC item documents the scan's search was served are kept, relative to the output
/// folder: an ItemCollection, exactly as the source gave them (evidence bundles carry it).
pub(crate) const ITEMS_FILE: &str = ".compound-watch/items.json";

/// Where the AOI is kept exactly as the scan used it (coordinates at full precision, unlike the
/// rounded `aoi.geojson`), relative to the output folder, so `verify` rebuilds the same grid.
pub(crate) const AOI_FILE: &str = ".compound-watch/aoi.json";

/// The item documents kept by the last scan in `out` (none when it kept none).
pub(crate) fn load_items(out: &Path) -> Result<Vec<serde_json::Value>> {
    let path = out.join(ITEMS_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::State {
        path: path.clone(),
        reason: format!("is not JSON ({e}); delete it and the next scan without --offline writes it again"),
    })?;
    Ok(doc["features"].as_array().cloned().unwrap_or_default())
}

/// An ItemCollection of `items`, as [`ITEMS_FILE`] holds it.
pub(crate) fn item_collection(items: &[serde_json::Value]) -> serde_json::Value {
    serde_json::json!({"type": "FeatureCollection", "features": items})
}

/// One scan attempt on an output, appended to `.compound-watch/attempts.jsonl` whatever its outcome,
/// so that a refused or failed scheduled run leaves a trace beside the outputs it did not touch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Attempt {
    /// When the attempt ended (UTC, RFC 3339).
    pub time: String,
    /// Version of compound-watch.
    pub version: String,
    /// First month asked for.
    pub from: Month,
    /// Last month asked for.
    pub to: Month,
    /// The source, as described in provenance.
    pub source: String,
    /// `published`, `refused` or `failed`.
    pub outcome: String,
    /// Why it was refused or failed (empty when published).
    pub reason: String,
    /// Scenes found, used and skipped (0 when the attempt failed before counting them).
    pub scenes_found: usize,
    /// Scenes used.
    pub scenes_used: usize,
    /// Scenes skipped.
    pub scenes_skipped: usize,
}

/// Appends an attempt as one JSON line and syncs it. A torn last line (power cut) is tolerated by
/// readers of JSON lines; earlier lines are never rewritten.
pub(crate) fn record_attempt(out: &Path, attempt: &Attempt) -> Result<()> {
    let path = dir(out).join("attempts.jsonl");
    let mut line = serde_json::to_string(attempt).map_err(|e| Error::State {
        path: path.clone(),
        reason: format!("the attempt cannot be serialized ({e})"),
    })?;
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    file.write_all(line.as_bytes()).map_err(Error::io(&path))?;
    file.sync_all().map_err(Error::io(&path))
}

/// The report a scan's diff compares against.
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    /// The report.
    pub report: geojson::FeatureCollection,
    /// Bytes to publish as the new [`PREVIOUS_REPORT_FILE`] with the scan's outputs (the report in
    /// `out` when it covers another period); `None` when the kept one stays as it is.
    pub keep: Option<Vec<u8>>,
}

/// The report this scan's diff compares against, read before the new report replaces it: the report
/// already in `out` when it covers another period than `period` (the `compound_watch.period` of the
/// new report), to be kept in `.compound-watch/previous-report.geojson`; for a rerun of the same
/// period, the report kept by the run that replaced it. So a rerun, or a run killed and rerun, writes
/// the same diff. `None` when `out` holds no earlier report.
pub(crate) fn previous_report(out: &Path, period: &Period) -> Result<Option<Previous>> {
    let report = out.join("report.geojson");
    let kept = out.join(PREVIOUS_REPORT_FILE);
    if !report.is_file() {
        return Ok(None);
    }
    let last = crate::output::diff::read(&report).map_err(|e| match e {
        Error::Report { path, reason } => Error::Report {
            reason: format!(
                "{reason}. It is the previous report, read to diff against: move it out of {} and the scan starts afresh",
                out.display()
            ),
            path,
        },
        other => other,
    })?;
    let last_period = Provenance::member(&last)
        .and_then(|p| p.get("period"))
        .and_then(|p| Period::deserialize(p).ok());
    if last_period.as_ref() != Some(period) {
        let bytes = std::fs::read(&report).map_err(Error::io(&report))?;
        return Ok(Some(Previous {
            report: last,
            keep: Some(bytes),
        }));
    }
    if kept.is_file() {
        Ok(Some(Previous {
            report: crate::output::diff::read(&kept)?,
            keep: None,
        }))
    } else {
        Ok(None)
    }
}

/// An exclusive lock on an output directory, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long [`lock`] waits for a lock held by someone else before saying who holds it. A lock
/// this process has just released can still be held for a moment by a child process it is
/// starting (between fork and exec the child holds a copy of every descriptor, and the lock with
/// it); on a loaded machine a second scan of the same output in the same process met that.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the output directory's lock, or says who holds it.
pub fn lock(out: &Path) -> Result<Lock> {
    let d = dir(out);
    std::fs::create_dir_all(&d).map_err(Error::io(&d))?;
    let path = d.join("lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    let started = std::time::Instant::now();
    let mut attempt = file.try_lock();
    while matches!(attempt, Err(TryLockError::WouldBlock)) && started.elapsed() < LOCK_WAIT {
        std::thread::sleep(std::time::Duration::from_millis(20));
        attempt = file.try_lock();
    }
    match attempt {
        Ok(()) => {
            file.set_len(0).map_err(Error::io(&path))?;
            writeln!(file, "{}", std::process::id()).map_err(Error::io(&path))?;
            Ok(Lock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Err(Error::Config {
                field: "--out".into(),
                reason: format!(
                    "another scan (process {}) is writing to {}; wait for it to finish, or choose another --out",
                    holder.trim(),
                    out.display()
                ),
            })
        }
        Err(TryLockError::Error(e)) => Err(Error::io(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use crate::output::provenance::Period;
    #[test]
    fn a_second_lock_on_the_same_output_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::lock(dir.path()).unwrap();
        let err = super::lock(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("another scan") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        assert!(super::lock(dir.path()).is_ok());
    }

    fn report(to: &str, ids: &[&str]) -> String {
        let features: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({"type": "Feature", "id": id, "properties": {"id": id},
                    "geometry": {"type": "Polygon", "coordinates": [[[98.5, 16.7], [98.501, 16.7], [98.501, 16.701], [98.5, 16.7]]]}})
            })
            .collect();
        serde_json::json!({"type": "FeatureCollection", "features": features,
            "compound_watch": {"period": {"from": "2021-07", "to": to}}})
        .to_string()
    }

    #[test]
    fn the_previous_report_is_kept_so_a_rerun_of_the_same_period_diffs_against_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let period = |to: &str| Period {
            from: "2021-07".parse().unwrap(),
            to: to.parse().unwrap(),
        };
        // What a scan does with the answer: diff against the report, publish `keep` beside it.
        let ids = |p: Option<super::Previous>| -> Vec<String> {
            let p = p.unwrap();
            if let Some(bytes) = &p.keep {
                std::fs::create_dir_all(out.join(".compound-watch")).unwrap();
                std::fs::write(out.join(super::PREVIOUS_REPORT_FILE), bytes).unwrap();
            }
            p.report
                .features
                .iter()
                .map(|f| f.property("id").unwrap().to_string())
                .collect()
        };
        assert!(super::previous_report(out, &period("2023-05")).unwrap().is_none());
        std::fs::write(out.join("report.geojson"), report("2023-05", &["may"])).unwrap();
        // The June scan diffs against May's report, and keeps it...
        assert_eq!(
            ids(super::previous_report(out, &period("2023-06")).unwrap()),
            ["\"may\""]
        );
        std::fs::write(out.join("report.geojson"), report("2023-06", &["june"])).unwrap();
        // ... so rerunning June (the report is now June's) diffs against May's again.
        assert_eq!(
            ids(super::previous_report(out, &period("2023-06")).unwrap()),
            ["\"may\""]
        );
        assert_eq!(
            ids(super::previous_report(out, &period("2023-07")).unwrap()),
            ["\"june\""]
        );
    }

    #[test]
    fn an_unreadable_previous_report_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.geojson"), "{ truncated").unwrap();
        let period = Period {
            from: "2021-07".parse().unwrap(),
            to: "2021-08".parse().unwrap(),
        };
        let err = super::previous_report(dir.path(), &period).unwrap_err().to_string();
        assert!(err.contains("report.geojson") && err.contains("move it out"), "{err}");
    }
}

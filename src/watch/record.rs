//! The record of a run: what happened to each site (`run.json` for machines, `run.md` for people).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alerts::Delivery;
use super::{exit, relative, scan_exit_code, Site, WatchList};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::month::Month;
use crate::scan::ScanSummary;

/// What happened to a site's scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The new outputs were published (maybe without some scenes: see the exit code).
    Published,
    /// Too few scenes: the previous outputs are untouched.
    Refused,
    /// The scan failed; `reason` says what and where.
    Failed,
}

impl Status {
    /// As `run.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Published => "published",
            Status::Refused => "refused",
            Status::Failed => "failed",
        }
    }
}

/// Polygons of each kind in a site's diff against its previous report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolygonChanges {
    /// New polygons.
    pub added: usize,
    /// Polygons that grew.
    pub grown: usize,
    /// Polygons that shrank.
    pub shrunk: usize,
    /// Polygons of the same area.
    pub unchanged: usize,
    /// Previous polygons with no successor.
    pub removed: usize,
}

/// One site of a run, as `run.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// The site's name.
    pub name: String,
    /// What happened.
    pub status: Status,
    /// The exit code `scan` would have ended with (0, 1, 3 or 4).
    pub exit_code: u8,
    /// Why it failed or was refused (empty when published).
    pub reason: String,
    /// First month scanned.
    pub from: Month,
    /// Last month scanned.
    pub to: Month,
    /// Scenes the search found.
    pub scenes_found: usize,
    /// Scenes used in the composites.
    pub scenes_used: usize,
    /// Scenes left out, with their reasons in the report.
    pub scenes_skipped: usize,
    /// Polygons of new construction in the report.
    pub detections: usize,
    /// The diff against the previous report of this site.
    pub polygons: PolygonChanges,
    /// When the scan started (UTC, RFC 3339).
    pub started: String,
    /// How long it took, seconds.
    pub duration_s: f64,
    /// The site's output folder, relative to the output root.
    pub out: PathBuf,
    /// Its report, diff and summary page, relative to the output root (published sites only).
    pub report: Option<PathBuf>,
    /// See `report`.
    pub diff: Option<PathBuf>,
    /// See `report`. None for a site scanned in tiles: each tile has its own under `tiles/`.
    pub summary: Option<PathBuf>,
    /// Tiles the site was scanned in (0: in one piece; see `watch::tile`).
    #[serde(default)]
    pub tiles: usize,
}

impl SiteRecord {
    /// The record of a site's scan outcome.
    pub(super) fn of(
        site: &Site,
        root: &Path,
        outcome: std::result::Result<&ScanSummary, &Error>,
        started: String,
        took: Duration,
    ) -> SiteRecord {
        let code = scan_exit_code(outcome);
        let mut record = SiteRecord {
            name: site.name.clone(),
            status: Status::Failed,
            exit_code: code,
            reason: String::new(),
            from: site.from,
            to: site.to,
            scenes_found: 0,
            scenes_used: 0,
            scenes_skipped: 0,
            detections: 0,
            polygons: PolygonChanges::default(),
            started,
            duration_s: round_s(took),
            out: PathBuf::from(&site.name),
            report: None,
            diff: None,
            summary: None,
            tiles: 0,
        };
        match outcome {
            Ok(s) => {
                let c = s.changes;
                record.status = Status::Published;
                record.scenes_found = s.scenes_found;
                record.scenes_used = s.scenes_used;
                record.scenes_skipped = s.skipped.len();
                record.detections = s.detections;
                record.polygons = PolygonChanges {
                    added: c.added,
                    grown: c.grown,
                    shrunk: c.shrunk,
                    unchanged: c.unchanged,
                    removed: c.removed,
                };
                record.report = Some(relative(&s.report, root));
                record.diff = Some(relative(&s.diff, root));
                record.summary = Some(relative(&s.summary_page, root));
            }
            Err(e @ Error::Refused { skipped, .. }) => {
                record.status = Status::Refused;
                record.scenes_skipped = skipped.len();
                record.reason = e.to_string();
            }
            Err(e) => record.reason = e.to_string(),
        }
        record
    }
}

pub(super) fn round_s(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// The content of `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// "compound-watch".
    pub software: String,
    /// Its version.
    pub version: String,
    /// The watch list.
    pub watchlist: PathBuf,
    /// When the run (or its first shard) started, UTC.
    pub started: String,
    /// Wall time of the run, seconds (of the gather alone when the run was sharded).
    pub duration_s: f64,
    /// Shards that scanned the sites (1 for a local run).
    pub shards: usize,
    /// The run's exit code without `--exit-code` (0, 3 or 4; see the README).
    pub exit_code: u8,
    /// Sites with added or grown polygons not alerted before.
    pub new_alerts: usize,
    /// What became of the webhook POST, when one is set.
    pub webhook: Option<Delivery>,
    /// One record per site, in the watch list's order.
    pub sites: Vec<SiteRecord>,
}

impl RunRecord {
    pub(super) fn new(
        list: &WatchList,
        sites: Vec<SiteRecord>,
        started: &str,
        took: Duration,
        shards: usize,
        new_alerts: usize,
        webhook: Option<Delivery>,
    ) -> RunRecord {
        let exit_code = if sites.iter().any(|s| s.status != Status::Published) {
            exit::REFUSED
        } else if sites.iter().any(|s| s.exit_code == exit::SKIPPED_SCENES) {
            exit::SKIPPED_SCENES
        } else {
            exit::OK
        };
        RunRecord {
            software: "compound-watch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            watchlist: list.path.clone(),
            started: started.to_owned(),
            duration_s: round_s(took),
            shards,
            exit_code,
            new_alerts,
            webhook,
            sites,
        }
    }

    /// The exit code of `run`: as `exit_code`, or [`exit::NEW_FOUND`] with `--exit-code` when
    /// something new was alerted and no site failed.
    pub fn exit_code(&self, report_new: bool) -> u8 {
        if report_new && self.new_alerts > 0 && self.exit_code != exit::REFUSED {
            exit::NEW_FOUND
        } else {
            self.exit_code
        }
    }

    /// Writes `run.json` and `run.md` into the output root.
    pub(super) fn write(&self, root: &Path) -> Result<Vec<PathBuf>> {
        let (json, md) = (root.join("run.json"), root.join("run.md"));
        atomic::write_json(&json, self)?;
        atomic::write(&md, self.markdown().as_bytes())?;
        Ok(vec![json, md])
    }

    /// `run.md`: one line per site, for people.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Watch run of {}\n\nStarted {} ({} shard{}), exit code {}, {} new alert{}.\n\n",
            self.watchlist.display(),
            self.started,
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            self.exit_code,
            self.new_alerts,
            if self.new_alerts == 1 { "" } else { "s" },
        );
        md.push_str(
            "| site | status | exit | period | scenes found / used / skipped | polygons | added | grown | \
             removed | seconds | report |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in &self.sites {
            let report = s
                .report
                .as_ref()
                .map(|p| format!("[{0}]({0})", p.display()))
                .unwrap_or_else(|| s.reason.replace('|', "/"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {}..{} | {} / {} / {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                s.status.name(),
                s.exit_code,
                s.from,
                s.to,
                s.scenes_found,
                s.scenes_used,
                s.scenes_skipped,
                s.detections,
                s.polygons.added,
                s.polygons.grown,
                s.polygons.removed,
                s.duration_s,
                report
            );
        }
        if let Some(d) = &self.webhook {
            let _ = writeln!(md, "\nWebhook: {}", d.summary());
        }
        md
    }
}

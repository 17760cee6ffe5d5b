//! Shards: a run cut into N independent parts for a cluster, and the gather that puts them back.
//!
//! Shard I of N scans the sites the balance gives it and writes only its own record,
//! `<out>/.compound-watch/shards/I-of-N.json`; it never waits for or reads another shard, so a
//! failed shard can be rerun alone. Sites are balanced by area x months (the work a scan does),
//! largest first onto the least loaded shard, the same way on every node. The gather reads the N
//! records and writes what a local run writes (see [`super::finish`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{finish, now, scan_sites, RunOptions, RunProgress, RunReport, Site, SiteRecord, WatchList};
use crate::aoi::{self, AoiLimits};
use crate::error::{Error, Result};
use crate::io::atomic;

/// The I-th of N shards, I from 0 (as Slurm's `$SLURM_ARRAY_TASK_ID` and Kubernetes'
/// `$JOB_COMPLETION_INDEX` count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 0..count.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/3`.
    fn from_str(text: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("{text:?} is not I/N with 0 <= I < N (e.g. 0/3, the first of three shards)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A shard's record on disk.
#[derive(Debug, Serialize, Deserialize)]
struct ShardRecord {
    index: usize,
    count: usize,
    started: String,
    sites: Vec<SiteRecord>,
}

/// The work of a site's scan: km² of its outline times months (0 when the outline cannot be read:
/// the scan will fail on it, quickly).
fn weight(site: &Site) -> f64 {
    let limits = AoiLimits::default();
    let area = match &site.area {
        super::Area::File(path) => aoi::load(path, &limits).map(|a| a.area_m2),
        super::Area::Bbox(bbox) => aoi::from_bbox(*bbox, &limits).map(|a| a.area_m2),
    };
    area.unwrap_or(0.0) / 1e6 * f64::from(site.from.until(site.to) + 1)
}

/// The shard of each site (by index in the list), balanced by weight: heaviest first, each onto the
/// least loaded shard (the lowest on a tie), so every node computes the same split.
pub fn assign(weights: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut load = vec![0.0_f64; count];
    let mut shard_of = vec![0; weights.len()];
    for i in order {
        let least = (0..count)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("at least one shard");
        load[least] += weights[i];
        shard_of[i] = least;
    }
    shard_of
}

/// The sites of one shard, in the list's order.
pub fn sites_of(list: &WatchList, shard: Shard) -> Vec<&Site> {
    let weights: Vec<f64> = list.sites.iter().map(weight).collect();
    let shard_of = assign(&weights, shard.count);
    list.sites
        .iter()
        .zip(shard_of)
        .filter(|&(_, s)| s == shard.index)
        .map(|(site, _)| site)
        .collect()
}

fn shard_dir(root: &Path) -> PathBuf {
    root.join(".compound-watch/shards")
}

/// Runs one shard: scans its sites and writes its record. Returns the record's path and its sites.
pub fn run_shard(
    list: &WatchList,
    shard: Shard,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<(PathBuf, Vec<SiteRecord>)> {
    let started = now();
    let sites = sites_of(list, shard);
    let records = scan_sites(list, &sites, options, progress);
    let path = shard_dir(&list.out).join(format!("{}-of-{}.json", shard.index, shard.count));
    let record = ShardRecord {
        index: shard.index,
        count: shard.count,
        started,
        sites: records,
    };
    atomic::write_json(&path, &record)?;
    Ok((path, record.sites))
}

/// Merges the records of the latest complete set of shards into what a local run writes.
pub fn gather(list: &WatchList) -> Result<RunReport> {
    let clock = Instant::now();
    let dir = shard_dir(&list.out);
    let fail = |reason: String| Error::State {
        path: dir.clone(),
        reason,
    };
    let shards = read_shards(&dir)?;
    let count = shards
        .iter()
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, r)| r.count)
        .ok_or_else(|| {
            fail(format!(
                "holds no shard record; run `compound-watch run {} --shard I/N` for each I first",
                list.path.display()
            ))
        })?;
    let mut records: Vec<Option<ShardRecord>> = (0..count).map(|_| None).collect();
    for (_, r) in shards.into_iter().filter(|(_, r)| r.count == count) {
        let i = r.index;
        records[i] = Some(r);
    }
    let missing: Vec<String> = (0..count)
        .filter(|&i| records[i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "shards {} of {count} have not finished; rerun each with `compound-watch run {} --shard I/N`, then gather",
            missing.join(", "),
            list.path.display()
        )));
    }
    let records: Vec<ShardRecord> = records.into_iter().flatten().collect();
    let started = records.iter().map(|r| r.started.clone()).min().unwrap_or_else(now);
    let mut by_name: std::collections::BTreeMap<String, SiteRecord> = records
        .into_iter()
        .flat_map(|r| r.sites)
        .map(|s| (s.name.clone(), s))
        .collect();
    let sites = list
        .sites
        .iter()
        .map(|site| {
            by_name.remove(&site.name).ok_or_else(|| {
                fail(format!(
                    "no shard scanned site {:?}: the watch list changed since the shards ran; run the shards again",
                    site.name
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let wall = chrono::DateTime::parse_from_rfc3339(&started)
        .ok()
        .and_then(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().ok())
        .unwrap_or_else(|| clock.elapsed());
    finish(list, sites, &started, wall, count)
}

/// Every shard record in `dir`, with when it was written.
fn read_shards(dir: &Path) -> Result<Vec<(std::time::SystemTime, ShardRecord)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(Error::io(dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        let record: ShardRecord = serde_json::from_str(&text).map_err(|e| Error::State {
            path: path.clone(),
            reason: format!("is not a shard record ({e}); delete it and rerun that shard"),
        })?;
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(Error::io(&path))?;
        found.push((modified, record));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_i_of_n() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1/0", "1", "a/3", "-1/3"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("I/N"), "{bad}");
        }
    }

    #[test]
    fn the_heaviest_sites_go_first_onto_the_least_loaded_shard() {
        // 10 | 6 + 3 + 2 | 5 + 4: loads 10, 11, 9.
        assert_eq!(assign(&[10.0, 6.0, 5.0, 4.0, 3.0, 2.0], 3), vec![0, 1, 2, 2, 1, 1]);
        // More shards than sites: the extra shards get nothing.
        assert_eq!(assign(&[1.0, 1.0], 4), vec![0, 1]);
        // One shard takes everything.
        assert_eq!(assign(&[3.0, 1.0, 2.0], 1), vec![0, 0, 0]);
    }
}

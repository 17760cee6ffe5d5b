//! Shards: a run cut into N independent parts for a cluster, and the gather that puts them back.
//!
//! The units a run is cut into are whole sites and the tiles of tiled sites ([`super::tile`]):
//! a 5,000 km² strip is a few dozen units, not one shard's work. Units are balanced by area x
//! months (the work a scan does), heaviest first onto the least loaded shard, the same way on every
//! node. Shard I of N scans its units and writes only its own record,
//! `<out>/.compound-watch/shards/I-of-N.json`; a tile's scan takes its region's statistics from
//! the site's `region.json` ([`super::stats`]), measuring them itself when no shard (and no
//! `run --plan`) has yet. It never waits for or reads another shard, so a failed shard can be rerun
//! alone. The gather reads the N records, merges each tiled site's tiles (scanning the patches the
//! merge needs) and writes what a local run writes (see [`super::finish`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::tile::{self, Tiling};
use super::{assemble, finish, now, scan_units, site_config, Regions, RunOptions, RunProgress, RunReport};
use super::{SiteRecord, TileRecord, WatchList};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::scan::ScanConfig;

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
    /// The tiles it scanned.
    #[serde(default)]
    tiles: Vec<TileRecord>,
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

/// One unit of work a shard is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The site (by index in the watch list), scanned whole.
    Site(usize),
    /// A tile of a tiled site: (the site's index, the tile's index in its tiling).
    Tile(usize, usize),
}

/// A site of the list as a run scans it.
#[derive(Debug)]
pub struct PlannedSite {
    /// Its scan configuration, or why it has none (its scan fails with that, quickly).
    pub config: Result<ScanConfig>,
    /// Its tiles, when its grid is larger than one tile.
    pub tiling: Option<Tiling>,
}

/// How a run is cut into units: the same on every node.
#[derive(Debug)]
pub struct Plan {
    /// Per site of the list, in its order.
    pub sites: Vec<PlannedSite>,
    /// Every unit with its work (km² x months): the sites in the list's order, a tiled site as its
    /// tiles in the tiling's order.
    pub units: Vec<(Unit, f64)>,
}

impl Plan {
    /// The plan of `list`: each site's configuration (as [`site_config`] gives it, writing to
    /// `<out>/<name>/`) and tiling. A site whose tiling fails is planned whole, failing with it.
    pub fn of(list: &WatchList, options: &RunOptions) -> Plan {
        let mut sites = Vec::new();
        let mut units = Vec::new();
        for (i, site) in list.sites.iter().enumerate() {
            let months = f64::from(site.from.until(site.to) + 1);
            let tile_km2 = site.tile_km2.unwrap_or(tile::DEFAULT_TILE_KM2);
            let planned = match site_config(site, list.out.join(&site.name), options) {
                Ok(config) => match tile::plan(&config.aoi, tile_km2) {
                    Ok(tiling) => PlannedSite {
                        config: Ok(config),
                        tiling,
                    },
                    // A site that cannot be cut fails with the reason, as its scan would.
                    Err(e) => PlannedSite {
                        config: Err(e),
                        tiling: None,
                    },
                },
                Err(e) => PlannedSite {
                    config: Err(e),
                    tiling: None,
                },
            };
            match (&planned.config, &planned.tiling) {
                (Ok(_), Some(tiling)) => {
                    for (t, tile) in tiling.tiles.iter().enumerate() {
                        units.push((Unit::Tile(i, t), tile.aoi.area_m2 / 1e6 * months));
                    }
                }
                (Ok(config), None) => units.push((Unit::Site(i), config.aoi.area_m2 / 1e6 * months)),
                // A site that cannot be read fails at once: no work.
                (Err(_), _) => units.push((Unit::Site(i), 0.0)),
            }
            sites.push(planned);
        }
        Plan { sites, units }
    }

    /// The units of one shard, in the plan's order.
    pub fn units_of(&self, shard: Shard) -> Vec<Unit> {
        let weights: Vec<f64> = self.units.iter().map(|(_, w)| *w).collect();
        let shard_of = assign(&weights, shard.count);
        self.units
            .iter()
            .zip(shard_of)
            .filter(|&(_, s)| s == shard.index)
            .map(|(&(unit, _), _)| unit)
            .collect()
    }

    /// The shard of N that scans `unit`.
    pub fn shard_of(&self, unit: Unit, count: usize) -> Option<Shard> {
        let weights: Vec<f64> = self.units.iter().map(|(_, w)| *w).collect();
        let at = self.units.iter().position(|(u, _)| *u == unit)?;
        Some(Shard {
            index: assign(&weights, count)[at],
            count,
        })
    }

    /// `site NAME` or `tile NAME of site NAME`, as messages name a unit.
    pub fn describe(&self, list: &WatchList, unit: Unit) -> String {
        match unit {
            Unit::Site(i) => format!("site {}", list.sites[i].name),
            Unit::Tile(i, t) => {
                let name = self.sites[i]
                    .tiling
                    .as_ref()
                    .map_or("?", |tiling| tiling.tiles[t].name.as_str());
                format!("tile {name} of site {}", list.sites[i].name)
            }
        }
    }
}

fn shard_dir(root: &Path) -> PathBuf {
    root.join(".compound-watch/shards")
}

/// Runs one shard: scans its units and writes its record. Returns the record's path, the sites
/// it scanned whole and the tiles it scanned.
pub fn run_shard(
    list: &WatchList,
    shard: Shard,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<(PathBuf, Vec<SiteRecord>, Vec<TileRecord>)> {
    let started = now();
    let plan = Plan::of(list, options);
    let units = plan.units_of(shard);
    let mut regions = Regions::default();
    let (sites, tiles) = scan_units(list, &plan, &units, &mut regions, options, progress);
    let path = shard_dir(&list.out).join(format!("{}-of-{}.json", shard.index, shard.count));
    let record = ShardRecord {
        index: shard.index,
        count: shard.count,
        started,
        sites,
        tiles,
    };
    atomic::write_json(&path, &record)?;
    Ok((path, record.sites, record.tiles))
}

/// Merges the records of the latest complete set of shards into what a local run writes: each
/// tiled site's tiles are merged (and the patches the merge needs scanned) into its report.
pub fn gather(list: &WatchList, options: &RunOptions, progress: &dyn RunProgress) -> Result<RunReport> {
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
    let plan = Plan::of(list, options);
    let missing: Vec<String> = (0..count)
        .filter(|&i| records[i].is_none())
        .map(|index| {
            let units = plan.units_of(Shard { index, count });
            let what: Vec<String> = units.iter().map(|&u| plan.describe(list, u)).collect();
            format!(
                "shard {index}/{count} ({}): `compound-watch run {} --shard {index}/{count}`",
                match what.is_empty() {
                    true => "nothing to scan".to_owned(),
                    false => what.join(", "),
                },
                list.path.display()
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "{} of {count} shards have not finished; rerun each, then gather: {}",
            missing.len(),
            missing.join("; ")
        )));
    }
    let records: Vec<ShardRecord> = records.into_iter().flatten().collect();
    let started = records.iter().map(|r| r.started.clone()).min().unwrap_or_else(now);
    let (mut sites, mut tiles) = (Vec::new(), Vec::new());
    for r in records {
        sites.extend(r.sites);
        tiles.extend(r.tiles);
    }
    let rerun = |unit| {
        plan.shard_of(unit, count).map_or_else(String::new, |s| {
            format!(
                "; rerun it alone with `compound-watch run {} --shard {}/{}`, then gather",
                list.path.display(),
                s.index,
                s.count
            )
        })
    };
    let sites = assemble(
        list,
        &plan,
        sites,
        tiles,
        &Regions::default(),
        options,
        progress,
        &rerun,
    )?;
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
    fn a_tiled_sites_tiles_are_units_spread_over_the_shards() {
        let text = "source = \"catalog.json\"\nfrom = \"2022-01\"\nto = \"2022-12\"\nout = \"out\"\n\
                    [[site]]\nname = \"strip\"\nbbox = [98.49, 16.67, 98.535, 16.71]\ntile_km2 = 6.0\n\
                    [[site]]\nname = \"small\"\nbbox = [98.518, 16.670, 98.530, 16.676]\n";
        let today = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let list = super::super::parse(text, Path::new("w.toml"), today).unwrap();
        let options = RunOptions {
            cache: "cache".into(),
            parallel: 1,
            memory_mb: None,
            timeout_secs: 1,
        };
        let plan = Plan::of(&list, &options);
        // About 22 km² in tiles of 6 km²: 4 tiles, and the small site whole.
        let units: Vec<Unit> = plan.units.iter().map(|(u, _)| *u).collect();
        let tiles = [Unit::Tile(0, 0), Unit::Tile(0, 1), Unit::Tile(0, 2), Unit::Tile(0, 3)];
        assert_eq!(units, [&tiles[..], &[Unit::Site(1)]].concat());
        let shards: Vec<Vec<Unit>> = (0..3).map(|index| plan.units_of(Shard { index, count: 3 })).collect();
        assert_eq!(
            shards.iter().map(Vec::len).sum::<usize>(),
            5,
            "each unit once: {shards:?}"
        );
        for (index, units) in shards.iter().enumerate() {
            assert!(
                units.iter().any(|u| matches!(u, Unit::Tile(0, _))),
                "shard {index} has no tile of the strip: {shards:?}"
            );
            for &u in units {
                assert_eq!(plan.shard_of(u, 3), Some(Shard { index, count: 3 }));
            }
        }
        assert_eq!(plan.describe(&list, Unit::Tile(0, 1)), "tile r0c1 of site strip");
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

//! The region statistics of a tiled site, kept on disk so that every shard scanning one of its
//! tiles computes with the same values, measured once.
//!
//! They live in `<out>/<site>/.compound-watch/region.json`, written atomically, with a key: a
//! SHA-256 of everything the measurement depends on (the program's version, the region's grid and
//! AOI, the tiling, the period, the scan parameters the first pass uses, and the scenes the source
//! finds for the region now). A shard that finds the file with its key reuses it; one that finds
//! none, or a stale one, measures them itself and writes them. The measurement is deterministic, so
//! two shards racing write the same file, and no shard waits for another. `run --plan` measures them
//! for every tiled site before the shards start, so that the region's imagery is read once.
//!
//! Never prints; reads imagery only when it measures.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::tile::{self, Tiling};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::source::{dedupe, SceneSearch, SearchQuery};
use crate::io::window::WindowReader;
use crate::scan::{Progress, RegionStats, ScanConfig};

/// Where a tiled site's statistics are kept: under its output folder.
pub fn path(config: &ScanConfig) -> PathBuf {
    config.out_dir.join(".compound-watch/region.json")
}

/// A region's statistics as kept in `region.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    /// What they were measured from (a SHA-256 of what the measurement depends on, see the module
    /// documentation): a tile's record names the statistics its scan computed with by it.
    pub key: String,
    /// The statistics.
    pub stats: RegionStats,
}

/// The statistics kept for the site, whatever their key (None when there are none, or they cannot
/// be read).
pub fn load(config: &ScanConfig) -> Option<Kept> {
    let text = std::fs::read_to_string(path(config)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The region's statistics: those kept for the site when their key is still the region's, else
/// measured now (over the whole region: [`tile::measure`]) and kept. Returns them with their key,
/// and whether they were measured now.
pub fn load_or_measure(
    config: &ScanConfig,
    tiling: &Tiling,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<(Kept, bool)> {
    let key = key(config, tiling, source)?;
    // A file that cannot be read or parsed is measured again and replaced, as a stale one is.
    if let Some(kept) = load(config).filter(|k| k.key == key) {
        return Ok((kept, false));
    }
    let (stats, _) = tile::measure(config, tiling, source, reader, progress)?;
    let kept = Kept { key, stats };
    atomic::write_json(&path(config), &kept)?;
    Ok((kept, true))
}

/// The SHA-256 (hex) of what the region's statistics depend on; it changes when any of it does,
/// including the scenes the source finds (a scene added or reprocessed since).
fn key(config: &ScanConfig, tiling: &Tiling, source: &dyn SceneSearch) -> Result<String> {
    let found = source.search(&SearchQuery {
        bbox: config.aoi.bbox(),
        geometry: Some(config.aoi.geometry.clone()),
        from: config.from,
        to: config.to,
        max_cloud_cover: config.max_cloud_cover,
    })?;
    let (scenes, _) = dedupe(found.scenes);
    let mut ids: Vec<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    let tiles: Vec<_> = tiling
        .tiles
        .iter()
        .map(|t| json!([t.name, t.core.row, t.core.col, t.core.rows, t.core.cols]))
        .collect();
    let what = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "aoi": geojson::Geometry::from(&config.aoi.geometry),
        "grid": tiling.grid,
        "margin": tiling.margin,
        "tiles": tiles,
        "from": config.from,
        "to": config.to,
        "max_cloud_cover": config.max_cloud_cover,
        "detect": config.detect,
        "cloud_buffer": config.cloud_buffer,
        "min_clear_obs": config.min_clear_obs,
        "persistent_cloud_is_surface": config.persistent_cloud_is_surface,
        "scenes": ids,
    });
    let text = serde_json::to_string(&what).map_err(|e| Error::State {
        path: path(config),
        reason: format!("its key cannot be formed ({e})"),
    })?;
    Ok(Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

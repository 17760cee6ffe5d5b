//! Stage 1, search: the scenes of the AOI and period, from the source or (`--offline`) from the
//! previous scan's list, de-duplicated.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::source::{dedupe, Found, Scene, SceneSearch, SearchQuery, Skipped};
use crate::scan::config::ScanConfig;
use crate::scan::progress::{Event, Progress};
use crate::scan::state::State;

/// What the search found.
#[derive(Debug, Clone)]
pub(crate) struct Searched {
    /// Scenes to read, one per tile and date.
    pub(crate) scenes: Vec<Scene>,
    /// Items replaced by a newer processing of the same tile and date.
    pub(crate) superseded: Vec<String>,
    /// Items the source returned that cannot be used, with the reason.
    pub(crate) rejected: Vec<Skipped>,
    /// Scenes found in all: usable and rejected.
    pub(crate) found: usize,
    /// Of the usable scenes, those the previous scan of this output did not have.
    pub(crate) new: usize,
    /// The item documents the source served for this search (`Found::items`).
    pub(crate) items: Vec<serde_json::Value>,
}

/// Searches the source (or the previous scan's list with `--offline`).
pub(crate) fn search(
    config: &ScanConfig,
    grid: &Grid,
    source: &dyn SceneSearch,
    previous: Option<&State>,
    progress: &dyn Progress,
) -> Result<Searched> {
    progress.event(Event::Stage {
        name: "search",
        total: 1,
    });
    let found = if config.offline {
        offline_scenes(
            config,
            grid,
            previous,
            &crate::scan::state::load_items(&config.out_dir)?,
        )?
    } else {
        source.search(&SearchQuery {
            bbox: config.aoi.bbox(),
            geometry: Some(config.aoi.geometry.clone()),
            from: config.from,
            to: config.to,
            max_cloud_cover: config.max_cloud_cover,
        })?
    };
    progress.event(Event::Advance(1));
    let (scenes, superseded) = dedupe(found.scenes);
    let seen_before: BTreeSet<&str> = previous
        .iter()
        .flat_map(|s| s.scenes.iter().map(|s| s.id.as_str()))
        .collect();
    let new = scenes.iter().filter(|s| !seen_before.contains(s.id.as_str())).count();
    Ok(Searched {
        found: scenes.len() + found.rejected.len(),
        new,
        scenes,
        superseded,
        rejected: found.rejected,
        items: found.items,
    })
}

/// The scenes of the previous scan in this output that fall in the period, for `--offline`, with
/// the item documents it recorded for them (`items`).
fn offline_scenes(
    config: &ScanConfig,
    grid: &Grid,
    previous: Option<&State>,
    items: &[serde_json::Value],
) -> Result<Found> {
    let state = previous.ok_or_else(|| Error::Config {
        field: "--offline".into(),
        reason: format!(
            "{} holds no earlier scan to rerun; run once without --offline to search the source",
            config.out_dir.display()
        ),
    })?;
    if state.grid != *grid {
        return Err(Error::Config {
            field: "--offline".into(),
            reason: format!(
                "the earlier scan in {} was of another AOI ({})",
                config.out_dir.display(),
                state.aoi
            ),
        });
    }
    let scenes: Vec<Scene> = state
        .scenes
        .iter()
        .filter(|s| (config.from..=config.to).contains(&s.month()))
        .cloned()
        .collect();
    let ids: BTreeSet<&str> = scenes.iter().map(|s| s.id.as_str()).collect();
    let items = items
        .iter()
        .filter(|i| i["id"].as_str().is_some_and(|id| ids.contains(id)))
        .cloned()
        .collect();
    Ok(Found {
        scenes,
        rejected: Vec::new(),
        items,
    })
}

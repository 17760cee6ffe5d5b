//! Scenes: finding the Sentinel-2 L2A items that cover an AOI in a period.
//!
//! A search is one trait with one method; this module implements it for a static STAC catalog on
//! disk that follows Earth Search `sentinel-2-l2a` conventions. It reads metadata only, never pixels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::month::Month;

/// The bands the pipeline reads, by their Earth Search asset keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// B02, 10 m.
    Blue,
    /// B03, 10 m.
    Green,
    /// B04, 10 m.
    Red,
    /// B08, 10 m.
    Nir,
    /// B11, 20 m.
    Swir16,
    /// B12, 20 m.
    Swir22,
    /// Scene classification layer, 20 m.
    Scl,
}

impl Band {
    /// Every band the pipeline reads, reflectance bands first.
    pub const ALL: [Band; 7] = [
        Band::Blue,
        Band::Green,
        Band::Red,
        Band::Nir,
        Band::Swir16,
        Band::Swir22,
        Band::Scl,
    ];
    /// The six reflectance bands.
    pub const REFLECTANCE: [Band; 6] = [
        Band::Blue,
        Band::Green,
        Band::Red,
        Band::Nir,
        Band::Swir16,
        Band::Swir22,
    ];

    /// The Earth Search asset key.
    pub fn asset_key(self) -> &'static str {
        match self {
            Band::Blue => "blue",
            Band::Green => "green",
            Band::Red => "red",
            Band::Nir => "nir",
            Band::Swir16 => "swir16",
            Band::Swir22 => "swir22",
            Band::Scl => "scl",
        }
    }

    /// The Sentinel-2 band name (the asset key on Planetary Computer).
    pub fn s2_name(self) -> &'static str {
        match self {
            Band::Blue => "B02",
            Band::Green => "B03",
            Band::Red => "B04",
            Band::Nir => "B08",
            Band::Swir16 => "B11",
            Band::Swir22 => "B12",
            Band::Scl => "SCL",
        }
    }

    /// Categorical bands are resampled by nearest neighbour, never interpolated.
    pub fn is_categorical(self) -> bool {
        self == Band::Scl
    }
}

/// One Sentinel-2 L2A acquisition (a STAC item) and what the pipeline needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// STAC item id.
    pub id: String,
    /// STAC collection id.
    pub collection: String,
    /// Acquisition time.
    pub datetime: DateTime<Utc>,
    /// `eo:cloud_cover`, percent of the whole tile.
    pub cloud_cover: Option<f64>,
    /// `s2:processing_baseline`, e.g. "04.00".
    pub processing_baseline: Option<String>,
    /// `earthsearch:boa_offset_applied` (or the older `sentinel:boa_offset_applied`), as the provider says.
    pub boa_offset_applied: Option<bool>,
    /// `proj:epsg` of the assets.
    pub epsg: Option<u32>,
    /// MGRS tile, e.g. "47QNU".
    pub tile: Option<String>,
    /// Where each band's file is: a local path or a URL.
    pub hrefs: BTreeMap<Band, String>,
}

impl Scene {
    /// The acquisition date (UTC).
    pub fn date(&self) -> NaiveDate {
        self.datetime.date_naive()
    }

    /// The calendar month the scene belongs to.
    pub fn month(&self) -> Month {
        Month::of(self.date())
    }
}

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// `[west, south, east, north]`, degrees.
    pub bbox: [f64; 4],
    /// First month, included.
    pub from: Month,
    /// Last month, included.
    pub to: Month,
    /// Largest accepted `eo:cloud_cover`, percent.
    pub max_cloud_cover: f64,
}

/// A scene that was found but cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// STAC item id (or the item file when the id is unknown).
    pub id: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The outcome of a search: usable scenes, in time order, and the items that were refused.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Usable scenes sorted by time, then id.
    pub scenes: Vec<Scene>,
    /// Items that matched but cannot be used (a missing band, no datetime, ...).
    pub rejected: Vec<Skipped>,
}

/// Finds scenes. Implemented by the static catalog here and by STAC APIs.
pub trait SceneSearch: Sync {
    /// Every scene that intersects the query's box within its months.
    fn search(&self, query: &SearchQuery) -> Result<Found>;

    /// A short description of the source for provenance (path or URL, collection).
    fn describe(&self) -> String {
        "unknown source".into()
    }
}

/// A static STAC catalog on disk: `catalog.json` -> (collections ->) items -> COG assets.
#[derive(Debug, Clone)]
pub struct StaticCatalog {
    root: PathBuf,
}

impl StaticCatalog {
    /// A catalog rooted at `path` (a `catalog.json` or `collection.json`).
    pub fn new(path: impl Into<PathBuf>) -> StaticCatalog {
        StaticCatalog { root: path.into() }
    }

    fn read_json(path: &Path) -> Result<Value> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Catalog {
            path: path.display().to_string(),
            reason: format!("cannot be read ({e})"),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Catalog {
            path: path.display().to_string(),
            reason: format!("is not JSON ({e})"),
        })
    }

    /// Walks child and item links depth-first, collecting item files; `seen` stops link cycles.
    fn walk(&self, path: &Path, items: &mut Vec<PathBuf>, seen: &mut Vec<PathBuf>) -> Result<()> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if seen.contains(&canonical) {
            return Ok(());
        }
        seen.push(canonical);
        let doc = Self::read_json(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let links: Vec<stac::Link> = doc
            .get("links")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::Catalog {
                path: path.display().to_string(),
                reason: format!("bad links ({e})"),
            })?
            .unwrap_or_default();
        for link in links {
            let target = base.join(&link.href);
            if link.is_item() {
                items.push(target);
            } else if link.is_child() {
                self.walk(&target, items, seen)?;
            }
        }
        Ok(())
    }
}

impl SceneSearch for StaticCatalog {
    fn search(&self, query: &SearchQuery) -> Result<Found> {
        let mut files = Vec::new();
        self.walk(&self.root, &mut files, &mut Vec::new())?;
        let collection_default = Self::read_json(&self.root)?
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("catalog")
            .to_owned();
        let mut found = Found::default();
        for file in files {
            let doc = Self::read_json(&file)?;
            let item: stac::Item = serde_json::from_value(doc).map_err(|e| Error::Catalog {
                path: file.display().to_string(),
                reason: format!("is not a STAC item ({e})"),
            })?;
            if !matches(&item, query) {
                continue;
            }
            let base = file.parent().unwrap_or(Path::new("."));
            match scene_from_item(&item, &collection_default, |href| resolve(base, href)) {
                Ok(scene) => found.scenes.push(scene),
                Err(reason) => found.rejected.push(Skipped {
                    id: item.id.clone(),
                    reason,
                }),
            }
        }
        found
            .scenes
            .sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
        Ok(found)
    }

    fn describe(&self) -> String {
        format!("static STAC catalog {}", self.root.display())
    }
}

/// A relative href resolved against the item's directory; URLs and absolute paths stay as they are.
fn resolve(base: &Path, href: &str) -> String {
    if href.contains("://") || Path::new(href).is_absolute() {
        href.to_owned()
    } else {
        base.join(href).display().to_string()
    }
}

fn matches(item: &stac::Item, q: &SearchQuery) -> bool {
    let Some(dt) = item.properties.datetime else {
        return true;
    }; // refused later, with a reason
    let month = Month::of(dt.date_naive());
    if month < q.from || month > q.to {
        return false;
    }
    if let Some(cc) = item
        .properties
        .additional_fields
        .get("eo:cloud_cover")
        .and_then(Value::as_f64)
    {
        if cc > q.max_cloud_cover {
            return false;
        }
    }
    match item.bbox {
        Some(stac::Bbox::TwoDimensional([w, s, e, n])) | Some(stac::Bbox::ThreeDimensional([w, s, _, e, n, _])) => {
            w <= q.bbox[2] && e >= q.bbox[0] && s <= q.bbox[3] && n >= q.bbox[1]
        }
        None => true,
    }
}

/// Turns a STAC item into a scene, or says why it cannot be one.
pub fn scene_from_item(
    item: &stac::Item,
    collection_default: &str,
    resolve_href: impl Fn(&str) -> String,
) -> std::result::Result<Scene, String> {
    let props = &item.properties.additional_fields;
    let datetime = item.properties.datetime.ok_or("has no datetime")?;
    let mut hrefs = BTreeMap::new();
    let mut missing = Vec::new();
    for band in Band::ALL {
        let asset = item
            .assets
            .get(band.asset_key())
            .or_else(|| item.assets.get(band.s2_name()));
        match asset {
            Some(a) => {
                hrefs.insert(band, resolve_href(&a.href));
            }
            None => missing.push(band.asset_key()),
        }
    }
    if !missing.is_empty() {
        return Err(format!("has no asset for {}", missing.join(", ")));
    }
    let flag = props
        .get("earthsearch:boa_offset_applied")
        .or_else(|| props.get("sentinel:boa_offset_applied"))
        .and_then(Value::as_bool);
    let epsg = props
        .get("proj:epsg")
        .and_then(Value::as_u64)
        .map(|v| v as u32)
        .or_else(|| {
            props
                .get("proj:code")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix("EPSG:"))
                .and_then(|c| c.parse().ok())
        });
    let baseline = props.get("s2:processing_baseline").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Ok(Scene {
        id: item.id.clone(),
        collection: item.collection.clone().unwrap_or_else(|| collection_default.to_owned()),
        datetime,
        cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
        processing_baseline: baseline,
        boa_offset_applied: flag,
        epsg,
        tile: props
            .get("s2:mgrs_tile")
            .or_else(|| props.get("grid:code"))
            .and_then(Value::as_str)
            .map(|s| s.trim_start_matches("MGRS-").to_owned()),
        hrefs,
    })
}

//! Scenes: finding the Sentinel-2 L2A items that cover an AOI in a period.
//!
//! A search is one trait with one method, implemented for a static STAC catalog on disk
//! ([`StaticCatalog`]) and for STAC APIs over HTTP ([`StacApi`]: Earth Search, Planetary Computer,
//! Copernicus Data Space, or any STAC API). Items follow Earth Search `sentinel-2-l2a` conventions
//! or are mapped onto them. This stage reads metadata only, never pixels.

use chrono::NaiveDate;

use serde_json::Value;
use std::collections::BTreeMap;

use crate::error::Result;
use crate::month::Month;

mod api;
mod catalog;

pub use crate::scene::{Band, Scene, Skipped};
pub use api::{Provider, StacApi};
pub use catalog::{Linked, StaticCatalog};

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// `[west, south, east, north]`, degrees.
    pub bbox: [f64; 4],
    /// The AOI itself, for APIs that search by geometry (`intersects`).
    pub geometry: Option<geo::MultiPolygon<f64>>,
    /// First month, included.
    pub from: Month,
    /// Last month, included.
    pub to: Month,
    /// Largest accepted `eo:cloud_cover`, percent.
    pub max_cloud_cover: f64,
}

/// The outcome of a search: usable scenes, in time order, and the items that were refused.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Usable scenes sorted by time, then id.
    pub scenes: Vec<Scene>,
    /// Items that matched but cannot be used (a missing band, no datetime, ...).
    pub rejected: Vec<Skipped>,
    /// The STAC item documents that matched (usable or not), as the source served them, in the
    /// order read: the record of exactly what the scan was told (`.compound-watch/items.json`).
    pub items: Vec<Value>,
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

/// Whether an item falls in the query's months, cloud limit and box.
pub(crate) fn matches(item: &stac::Item, q: &SearchQuery) -> bool {
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
    mut resolve_href: impl FnMut(&str) -> String,
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
        synthetic: props
            .get("compound_watch:synthetic")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        epsg,
        tile: props
            .get("s2:mgrs_tile")
            .or_else(|| props.get("grid:code"))
            .and_then(Value::as_str)
            .map(|s| s.trim_start_matches("MGRS-").to_owned()),
        hrefs,
    })
}

/// Opens the source named on the command line: `earth-search`, `planetary-computer`, `cdse`, the
/// URL of any STAC API, or the path of a static catalog. `collection` overrides the default
/// `sentinel-2-l2a` (e.g. `sentinel-2-c1-l2a` on Earth Search).
pub fn open(
    source: &str,
    collection: Option<&str>,
    http: crate::io::http::Http,
) -> crate::error::Result<Box<dyn SceneSearch>> {
    let collection = collection.unwrap_or("sentinel-2-l2a");
    Ok(match source {
        "earth-search" => Box::new(StacApi::new(api::EARTH_SEARCH, collection, Provider::Plain, http)),
        "planetary-computer" => Box::new(StacApi::new(
            api::PLANETARY_COMPUTER,
            collection,
            Provider::PlanetaryComputer {
                sas_url: api::PLANETARY_COMPUTER_SAS.into(),
            },
            http,
        )),
        "cdse" => {
            let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT"]
                .into_iter()
                .filter(|v| std::env::var_os(v).is_none())
                .collect();
            if !missing.is_empty() {
                return Err(crate::error::Error::Config {
                    field: "--source cdse".into(),
                    reason: format!(
                        "Copernicus Data Space assets need S3 credentials in the environment; {} not set. Create \
                         S3 keys at eodata-s3keysmanager.dataspace.copernicus.eu, then export AWS_ACCESS_KEY_ID, \
                         AWS_SECRET_ACCESS_KEY, AWS_S3_ENDPOINT=eodata.dataspace.copernicus.eu and AWS_VIRTUAL_HOSTING=FALSE",
                        missing.join(", ")
                    ),
                });
            }
            Box::new(StacApi::new(api::CDSE, collection, Provider::Plain, http))
        }
        url if (url.starts_with("http://") || url.starts_with("https://")) && url.ends_with(".json") => {
            return Err(crate::error::Error::Config {
                field: "--source".into(),
                reason: format!(
                    "{url} is a JSON document (a static STAC catalog or collection), not the landing page of a STAC \
                     API; static catalogs are read from disk: download it with its items and assets and pass the \
                     path of its catalog.json, or pass the landing page URL of a STAC API with item search (e.g. {})",
                    api::EARTH_SEARCH
                ),
            });
        }
        url if url.starts_with("http://") || url.starts_with("https://") => {
            let provider = if url.contains("planetarycomputer.microsoft.com") {
                Provider::PlanetaryComputer {
                    sas_url: api::PLANETARY_COMPUTER_SAS.into(),
                }
            } else {
                Provider::Plain
            };
            Box::new(StacApi::new(url, collection, provider, http))
        }
        path => Box::new(StaticCatalog::new(path)),
    })
}

/// Keeps one scene per tile and acquisition date: the newest processing (highest baseline, then
/// the later id, e.g. `..._1_L2A` over `..._0_L2A`). Returns the kept scenes in time order and the
/// ids of the superseded ones.
pub(crate) fn dedupe(scenes: Vec<Scene>) -> (Vec<Scene>, Vec<String>) {
    use std::collections::btree_map::Entry;
    let baseline = |s: &Scene| {
        s.processing_baseline
            .as_deref()
            .and_then(|b| b.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut best: BTreeMap<(String, NaiveDate), Scene> = BTreeMap::new();
    let mut superseded = Vec::new();
    for scene in scenes {
        let key = (scene.tile.clone().unwrap_or_else(|| scene.id.clone()), scene.date());
        match best.entry(key) {
            Entry::Vacant(v) => {
                v.insert(scene);
            }
            Entry::Occupied(mut o) => {
                let newer = (baseline(&scene), &scene.id) > (baseline(o.get()), &o.get().id);
                if newer {
                    superseded.push(o.insert(scene).id);
                } else {
                    superseded.push(scene.id);
                }
            }
        }
    }
    let mut kept: Vec<Scene> = best.into_values().collect();
    kept.sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
    superseded.sort();
    (kept, superseded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(id: &str, tile: &str, baseline: &str) -> Scene {
        Scene {
            processing_baseline: Some(baseline.into()),
            tile: Some(tile.into()),
            ..Scene::for_tests(id, "2022-03-01")
        }
    }

    #[test]
    fn the_newest_processing_of_a_tile_and_date_wins() {
        let (kept, dropped) = dedupe(vec![
            scene("S2B_47QNU_20220301_0_L2A", "47QNU", "04.00"),
            scene("S2B_47QNU_20220301_1_L2A", "47QNU", "05.00"),
            scene("S2B_47QNV_20220301_0_L2A", "47QNV", "04.00"),
        ]);
        let ids: Vec<&str> = kept.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["S2B_47QNU_20220301_1_L2A", "S2B_47QNV_20220301_0_L2A"]);
        assert_eq!(dropped, ["S2B_47QNU_20220301_0_L2A"]);
    }
}

//! A STAC Item describing a scan's outputs (`stac-item.json`), so that they can be catalogued
//! beside the imagery they came from: the AOI as geometry, the period as a datetime range, the
//! outputs as assets with roles and media types, and the source items as `derived_from` links.
//!
//! It describes files already written; it computes nothing and adds no clock time, so the same
//! scan writes the same item.

use serde_json::Value;

use crate::aoi::Aoi;
use crate::error::{Error, Result};
use crate::output::provenance::Period;

/// The file name of the item, beside the outputs.
pub(crate) const FILE: &str = "stac-item.json";

/// One output file, as an asset of the item.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// Asset key, e.g. `report`.
    pub key: String,
    /// Path relative to the item (the output folder).
    pub href: String,
    /// Media type.
    pub media_type: String,
    /// STAC roles (`data`, `visual`, `overview`, `metadata`).
    pub roles: Vec<&'static str>,
    /// A title for people.
    pub title: String,
}

/// The item of a scan of `aoi` over `period`: `outputs` as assets, and a `derived_from` link to
/// each source item's `self` href in `sources` (the item documents the search was served).
pub(crate) fn item(aoi: &Aoi, period: Period, outputs: &[Output], sources: &[Value]) -> Result<stac::Item> {
    let fail = |reason: String| Error::Config {
        field: "stac-item.json".into(),
        reason,
    };
    let mut item = stac::Item::new(format!("{}-{}-{}", aoi.slug, period.from, period.to));
    // The geometry types of `stac` are those of its own geojson version: cross by value.
    let geometry = serde_json::to_value(geojson::Geometry::from(&aoi.geometry))
        .and_then(serde_json::from_value)
        .map_err(|e| fail(format!("the AOI outline cannot be written as a STAC geometry ({e})")))?;
    item.geometry = Some(geometry);
    let [w, s, e, n] = aoi.bbox();
    item.bbox = Some(stac::Bbox::TwoDimensional([w, s, e, n]));
    let start = period.from.first_day().and_hms_opt(0, 0, 0).expect("midnight exists");
    let end = period
        .to
        .plus(1)
        .first_day()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        - chrono::Duration::seconds(1);
    item.properties.datetime = None;
    item.properties.start_datetime = Some(start.and_utc());
    item.properties.end_datetime = Some(end.and_utc());
    item.properties.title = Some(format!(
        "compound-watch: new construction at {}, {}..{}",
        aoi.name, period.from, period.to
    ));
    item.properties.description = Some(
        "Polygons of new construction detected in Sentinel-2 L2A imagery by compound-watch, with the \
         diff against the previous report, the recent composite, the monthly composites and the monthly summary."
            .into(),
    );
    item.properties
        .additional_fields
        .insert("compound_watch:version".into(), env!("CARGO_PKG_VERSION").into());
    for o in outputs {
        let mut asset = stac::Asset::new(&o.href);
        asset.r#type = Some(o.media_type.clone());
        asset.title = Some(o.title.clone());
        asset.roles = o.roles.iter().map(|r| r.to_string()).collect();
        item.assets.insert(o.key.clone(), asset);
    }
    for source in sources {
        let self_href = source["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["rel"] == "self")
            .and_then(|l| l["href"].as_str());
        if let Some(href) = self_href {
            let mut link = stac::Link::new(href, "derived_from").r#type(Some("application/geo+json".to_string()));
            link.title = source["id"].as_str().map(str::to_owned);
            item.links.push(link);
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MultiPolygon, Polygon};

    #[test]
    fn the_item_spans_the_period_and_links_each_source_item() {
        let ring = LineString::from(vec![(98.5, 16.7), (98.6, 16.7), (98.6, 16.8), (98.5, 16.7)]);
        let aoi = Aoi {
            name: "Site".into(),
            slug: "site".into(),
            origin: "site.geojson".into(),
            geometry: MultiPolygon::new(vec![Polygon::new(ring, vec![])]),
            area_m2: 1.0,
            properties: Default::default(),
        };
        let period = Period {
            from: "2021-07".parse().unwrap(),
            to: "2024-02".parse().unwrap(),
        };
        let outputs = [Output {
            key: "report".into(),
            href: "./report.geojson".into(),
            media_type: "application/geo+json".into(),
            roles: vec!["data"],
            title: "report".into(),
        }];
        let sources = [
            serde_json::json!({"id": "A", "links": [{"rel": "self", "href": "https://x/items/A"}]}),
            serde_json::json!({"id": "B", "links": []}),
        ];
        let item = serde_json::to_value(item(&aoi, period, &outputs, &sources).unwrap()).unwrap();
        let props = &item["properties"];
        assert_eq!(props["datetime"], Value::Null);
        assert_eq!(props["start_datetime"], "2021-07-01T00:00:00Z");
        assert_eq!(props["end_datetime"], "2024-02-29T23:59:59Z");
        assert_eq!(item["id"], "site-2021-07-2024-02");
        assert_eq!(item["assets"]["report"]["roles"], serde_json::json!(["data"]));
        let links = item["links"].as_array().unwrap();
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0]["rel"], "derived_from");
        assert_eq!(links[0]["href"], "https://x/items/A");
    }
}

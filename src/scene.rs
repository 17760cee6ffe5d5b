//! Scenes: the Sentinel-2 L2A acquisitions a scan reads, their bands, and the scenes left out.
//! Vocabulary shared by every stage: found by `io::source`, read by `io::window`, decided on by
//! `detect::reflectance`, recorded by `output::provenance`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

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

    /// Native pixel size in metres.
    pub fn native_resolution(self) -> u32 {
        match self {
            Band::Blue | Band::Green | Band::Red | Band::Nir => 10,
            _ => 20,
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
    /// The item says it is generated, not observed (`compound_watch:synthetic`, the bundled sample).
    #[serde(default)]
    pub synthetic: bool,
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

#[cfg(test)]
impl Scene {
    /// A scene for tests: `id`, acquired at 03:50 UTC on `date` (YYYY-MM-DD), no metadata, no file.
    pub(crate) fn for_tests(id: &str, date: &str) -> Scene {
        Scene {
            id: id.into(),
            collection: "sentinel-2-l2a".into(),
            datetime: format!("{date}T03:50:00Z").parse().expect("a YYYY-MM-DD date"),
            cloud_cover: None,
            processing_baseline: None,
            boa_offset_applied: None,
            synthetic: false,
            epsg: None,
            tile: None,
            hrefs: BTreeMap::new(),
        }
    }
}

/// A scene that was found but cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// STAC item id (or the item file when the id is unknown).
    pub id: String,
    /// Why it was skipped.
    pub reason: String,
}

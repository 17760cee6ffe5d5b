//! Digital numbers to surface reflectance, and the 2022 offset decision for each scene.
//!
//! From processing baseline 04.00 (products from 2022-01-25) L2A digital numbers carry
//! `BOA_ADD_OFFSET = -1000`: reflectance = (DN - 1000) / 10000. Earth Search harmonized some items
//! and flags them with `earthsearch:boa_offset_applied`, but that flag has been wrong on some items.
//! Mixing the two makes every later scene ~0.1 brighter, which a change detector would call
//! construction. So the pixels decide when they can: water, shade and vegetation have NIR/SWIR
//! reflectance near zero, which with the offset still in the numbers is impossible below 1000 DN.
//!
//! Pure functions; this module reads nothing.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::scene::Scene;

/// The first acquisition date of processing baseline 04.00.
pub(crate) fn offset_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 25).expect("valid date")
}

/// The offset in digital numbers that baseline 04.00 adds.
pub(crate) const BOA_OFFSET_DN: u16 = 1000;

/// What the dark pixels of a scene say, from the clear (SCL 4-7) pixels of its NIR and SWIR bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DarkPixels {
    /// Pixels with data.
    pub valid: usize,
    /// Of those, how many are below 1000 DN.
    pub below_offset: usize,
    /// The 1st percentile of the digital numbers.
    pub p1: u16,
}

/// Accumulates the darkness evidence of a scene, band by band or block by block.
#[derive(Debug, Clone)]
pub(crate) struct DarkHistogram {
    counts: Vec<usize>,
}

impl Default for DarkHistogram {
    fn default() -> Self {
        DarkHistogram { counts: vec![0; 65536] }
    }
}

impl DarkHistogram {
    /// Adds the digital numbers where `keep` is true (0 = no data, always skipped).
    pub(crate) fn add(&mut self, values: &[u16], keep: &[bool]) {
        for (&v, _) in values.iter().zip(keep).filter(|(&v, &k)| k && v != 0) {
            self.counts[v as usize] += 1;
        }
    }

    /// The summary the offset decision needs.
    pub(crate) fn finish(&self) -> DarkPixels {
        let valid: usize = self.counts.iter().sum();
        let below_offset = self.counts[..BOA_OFFSET_DN as usize].iter().sum();
        let target = valid.div_ceil(100).max(1);
        let mut seen = 0;
        let mut p1 = 0;
        for (v, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= target {
                p1 = v as u16;
                break;
            }
        }
        DarkPixels {
            valid,
            below_offset,
            p1,
        }
    }
}

/// How a scene's digital numbers were turned into reflectance, and why. Recorded per scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetDecision {
    /// Digital numbers subtracted before dividing by 10000 (0 or 1000).
    pub subtract_dn: u16,
    /// What decided: `baseline` (before 04.00, no offset), `pixels` or `metadata`.
    pub basis: String,
    /// The provider's `boa_offset_applied` flag, if any.
    pub provider_flag: Option<bool>,
    /// False when the pixels contradict the provider's flag.
    pub flag_consistent: Option<bool>,
    /// The evidence in words, e.g. "2.1% of NIR/SWIR pixels below 1000 DN".
    pub evidence: String,
}

/// Whether the scene was processed with baseline 04.00 or later.
pub(crate) fn in_offset_era(scene: &Scene) -> bool {
    let by_baseline = scene
        .processing_baseline
        .as_deref()
        .and_then(|b| b.trim().parse::<f64>().ok());
    match by_baseline {
        Some(b) => b >= 4.0,
        None => scene.date() >= offset_start(),
    }
}

/// Decides the offset for one scene from its era, its pixels and, failing those, its metadata.
pub(crate) fn decide_offset(scene: &Scene, dark: DarkPixels) -> OffsetDecision {
    let flag = scene.boa_offset_applied;
    if !in_offset_era(scene) {
        return OffsetDecision {
            subtract_dn: 0,
            basis: "baseline".into(),
            provider_flag: flag,
            flag_consistent: None,
            evidence: format!(
                "processing baseline {} before 04.00: no offset",
                scene
                    .processing_baseline
                    .as_deref()
                    .unwrap_or("unknown, acquired before 2022-01-25")
            ),
        };
    }
    let from_pixels = if dark.valid < 1000 {
        None
    } else if dark.below_offset * 1000 >= dark.valid {
        // At least 0.1% of NIR/SWIR pixels below 1000 DN: impossible with the offset still in.
        Some((
            0,
            format!(
                "{:.2}% of NIR/SWIR pixels below 1000 DN",
                100.0 * dark.below_offset as f64 / dark.valid as f64
            ),
        ))
    } else if dark.p1 < BOA_OFFSET_DN + 500 {
        // None below 1000 DN, and the darkest clear pixels sit just above it: water, shade or
        // vegetation in SWIR (reflectance 0.01-0.05) plus the offset. Harmonized, those would
        // be far below 1000 DN.
        Some((
            BOA_OFFSET_DN,
            format!("darkest 1% of NIR/SWIR pixels at {} DN, none below 1000", dark.p1),
        ))
    } else {
        None
    };
    match from_pixels {
        Some((subtract_dn, evidence)) => OffsetDecision {
            subtract_dn,
            basis: "pixels".into(),
            provider_flag: flag,
            flag_consistent: flag.map(|applied| applied == (subtract_dn == 0)),
            evidence,
        },
        None => OffsetDecision {
            subtract_dn: if flag == Some(true) { 0 } else { BOA_OFFSET_DN },
            basis: "metadata".into(),
            provider_flag: flag,
            flag_consistent: None,
            evidence: format!(
                "no dark pixels to tell (1st percentile {} DN); trusting the item's flag",
                dark.p1
            ),
        },
    }
}

/// Reflectance of one digital number (NaN for no data, 0).
pub(crate) fn reflectance(dn: u16, subtract_dn: u16) -> f32 {
    if dn == 0 {
        f32::NAN
    } else {
        (dn as f32 - subtract_dn as f32) / 10_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts dark pixels over one or more bands (0 = no data, skipped).
    fn dark_pixels(bands: &[&[u16]]) -> DarkPixels {
        let mut h = DarkHistogram::default();
        bands.iter().for_each(|b| h.add(b, &vec![true; b.len()]));
        h.finish()
    }

    use std::collections::BTreeMap;

    fn scene(date: &str, baseline: Option<&str>, flag: Option<bool>) -> Scene {
        Scene {
            id: "s".into(),
            collection: "c".into(),
            datetime: format!("{date}T03:50:00Z").parse().unwrap(),
            cloud_cover: None,
            processing_baseline: baseline.map(str::to_owned),
            boa_offset_applied: flag,
            synthetic: false,
            epsg: None,
            tile: None,
            hrefs: BTreeMap::new(),
        }
    }

    #[test]
    fn raw_offset_scene_is_corrected_even_when_the_flag_says_applied() {
        // Water at reflectance 0.01-0.03 with the offset still in: 1100-1300 DN.
        let band: Vec<u16> = (0..10_000)
            .map(|i| if i < 500 { 1100 + (i % 200) as u16 } else { 3000 })
            .collect();
        let d = decide_offset(&scene("2022-06-01", Some("04.00"), Some(true)), dark_pixels(&[&band]));
        assert_eq!(d.subtract_dn, 1000);
        assert_eq!(d.basis, "pixels");
        assert_eq!(d.flag_consistent, Some(false));
    }

    #[test]
    fn harmonized_scene_is_left_alone_even_when_the_flag_says_raw() {
        let band: Vec<u16> = (0..10_000).map(|i| if i < 500 { 150 } else { 2500 }).collect();
        let d = decide_offset(&scene("2023-02-01", Some("05.09"), Some(false)), dark_pixels(&[&band]));
        assert_eq!(d.subtract_dn, 0);
        assert_eq!(d.flag_consistent, Some(false));
    }

    #[test]
    fn without_dark_pixels_the_flag_decides() {
        let band = vec![3000u16; 10_000];
        assert_eq!(
            decide_offset(&scene("2023-02-01", None, Some(true)), dark_pixels(&[&band])).subtract_dn,
            0
        );
        assert_eq!(
            decide_offset(&scene("2023-02-01", None, Some(false)), dark_pixels(&[&band])).subtract_dn,
            1000
        );
        assert_eq!(
            decide_offset(&scene("2023-02-01", None, None), dark_pixels(&[&band])).basis,
            "metadata"
        );
    }

    #[test]
    fn scenes_before_baseline_04_never_get_an_offset() {
        let band = vec![1200u16; 10_000];
        let d = decide_offset(&scene("2021-12-30", Some("03.01"), None), dark_pixels(&[&band]));
        assert_eq!((d.subtract_dn, d.basis.as_str()), (0, "baseline"));
    }

    #[test]
    fn no_data_is_nan_not_zero() {
        assert!(reflectance(0, 0).is_nan());
        approx::assert_relative_eq!(reflectance(1500, 1000), 0.05);
    }
}

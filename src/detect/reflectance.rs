//! Digital numbers to surface reflectance, and the 2022 offset decision for each scene.
//!
//! From processing baseline 04.00 (products from 2022-01-25) L2A digital numbers carry
//! `BOA_ADD_OFFSET = -1000`: reflectance = (DN - 1000) / 10000. Earth Search harmonized some items
//! and flags them with `earthsearch:boa_offset_applied`, but that flag has been wrong on some items.
//! Mixing the two makes every later scene ~0.1 brighter, which a change detector would call
//! construction. So the pixels decide when they can: water, shade and vegetation have NIR/SWIR
//! reflectance near zero, which with the offset still in the numbers is impossible below 1000 DN.
//!
//! **Haze.** Haze the scene classification does not flag lifts every pixel of a scene, most in the
//! blue, and turns bare laterite grey enough to pass for a roof. Each scene's darkest clear pixels
//! in the visible bands (the 1st percentile per band: water, shade, forest) are compared with the
//! same level in the site's clearest scenes, and the excess is subtracted as haze: relative
//! dark-object subtraction (Chavez 1988), which restores the visible band ratios the built-up score
//! reads. Scattering falls with wavelength, so the haze taken in green is at most the blue's and
//! in red at most the green's: an excess in green or red alone is the season changing the dark
//! vegetation, not haze. Haze that covers only part of a scene leaves its darkest pixels clear and
//! is not corrected. NIR and SWIR are left alone: haze scatters little there, and their only dark objects
//! are water, which clouds hide often enough that the level would measure the clouds.
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
    counts: Vec<u32>,
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
        let valid: u32 = self.counts.iter().sum();
        let below_offset: u32 = self.counts[..BOA_OFFSET_DN as usize].iter().sum();
        DarkPixels {
            valid: valid as usize,
            below_offset: below_offset as usize,
            p1: first_percentile(&self.counts).unwrap_or(0) as u16,
        }
    }
}

/// The value (index) at the 1st percentile of a histogram of `counts`; None when it is empty.
fn first_percentile(counts: &[u32]) -> Option<usize> {
    let target = counts.iter().sum::<u32>().div_ceil(100).max(1);
    let mut seen = 0;
    counts.iter().position(|&n| {
        seen += n;
        seen >= target
    })
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
    /// Haze subtracted as well, in digital numbers per visible band (B02, B03, B04): how far the
    /// scene's darkest clear pixels sit above the site's (see the module documentation).
    #[serde(default)]
    pub haze_dn: [u16; HAZE_BANDS],
}

impl OffsetDecision {
    /// Digital numbers to subtract from each reflectance band (`Band::REFLECTANCE` order): the
    /// offset plus the band's haze.
    pub(crate) fn subtract_per_band(&self) -> [u32; 6] {
        std::array::from_fn(|b| u32::from(self.subtract_dn) + u32::from(self.haze_dn.get(b).copied().unwrap_or(0)))
    }
}

/// Bands whose haze is measured and subtracted: the first three of `Band::REFLECTANCE`, B02, B03
/// and B04.
pub(crate) const HAZE_BANDS: usize = 3;

/// Digital numbers above which a band's dark level is not counted: no dark object there.
const DARK_CEILING_DN: usize = 4096;

/// Clear pixels needed before a band's dark level counts.
const MIN_DARK_PIXELS: u32 = 1000;

/// Which of the scenes' dark levels is taken as the site's haze-free level: the 10th percentile,
/// so that a few scenes darkened by unflagged shadow do not set it.
const SITE_DARK_QUANTILE: f64 = 0.1;

/// One band's dark level in a scene: the 1st percentile of its clear digital numbers, counted
/// block by block (values above [`DARK_CEILING_DN`] only counted).
#[derive(Debug, Clone)]
pub(crate) struct DarkLevel {
    counts: Vec<u32>,
}

impl Default for DarkLevel {
    fn default() -> Self {
        DarkLevel {
            counts: vec![0; DARK_CEILING_DN + 1],
        }
    }
}

impl DarkLevel {
    /// Adds the digital numbers where `keep` is true (0 = no data, always skipped).
    pub(crate) fn add(&mut self, values: &[u16], keep: &[bool]) {
        for (&v, _) in values.iter().zip(keep).filter(|(&v, &k)| k && v != 0) {
            self.counts[(v as usize).min(DARK_CEILING_DN)] += 1;
        }
    }

    /// The 1st percentile less `subtract_dn` (the scene's offset); None with fewer than
    /// [`MIN_DARK_PIXELS`] pixels or no dark pixel.
    pub(crate) fn level(&self, subtract_dn: u16) -> Option<u16> {
        if self.counts.iter().sum::<u32>() < MIN_DARK_PIXELS {
            return None;
        }
        let p1 = first_percentile(&self.counts)?;
        (p1 < DARK_CEILING_DN).then(|| (p1 as u16).saturating_sub(subtract_dn))
    }
}

/// The site's haze-free dark level per band, from the dark levels of its scenes (see
/// [`SITE_DARK_QUANTILE`]); None for a band no scene measured.
pub(crate) fn site_dark(levels: &[[Option<u16>; HAZE_BANDS]]) -> [Option<u16>; HAZE_BANDS] {
    std::array::from_fn(|b| {
        let mut band: Vec<u16> = levels.iter().filter_map(|l| l[b]).collect();
        band.sort_unstable();
        let last = band.len().checked_sub(1)?;
        Some(band[((last as f64) * SITE_DARK_QUANTILE).round() as usize])
    })
}

/// Sets a scene's haze from its dark `levels` and the site's, and says so in its evidence.
pub(crate) fn add_haze(
    decision: &mut OffsetDecision,
    levels: [Option<u16>; HAZE_BANDS],
    site: [Option<u16>; HAZE_BANDS],
) {
    // Scattering falls with wavelength, so haze is never taken larger in a band than in the one
    // before it: an excess in green or red alone is the season (greener or drier vegetation in the
    // dark pixels), not haze.
    let mut shorter = u16::MAX;
    for b in 0..HAZE_BANDS {
        let excess = match (levels[b], site[b]) {
            (Some(l), Some(s)) => l.saturating_sub(s),
            _ => 0,
        };
        decision.haze_dn[b] = excess.min(shorter);
        shorter = decision.haze_dn[b];
    }
    if decision.haze_dn.iter().any(|&h| h > 0) {
        let [b2, b3, b4] = decision.haze_dn;
        decision
            .evidence
            .push_str(&format!("; haze subtracted: B02 {b2}, B03 {b3}, B04 {b4} DN"));
    }
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
            haze_dn: [0; HAZE_BANDS],
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
            haze_dn: [0; HAZE_BANDS],
        },
        None => OffsetDecision {
            subtract_dn: if flag == Some(true) { 0 } else { BOA_OFFSET_DN },
            basis: "metadata".into(),
            provider_flag: flag,
            flag_consistent: None,
            haze_dn: [0; HAZE_BANDS],
            evidence: format!(
                "no dark pixels to tell (1st percentile {} DN); trusting the item's flag",
                dark.p1
            ),
        },
    }
}

/// Reflectance of one digital number (NaN for no data, 0), less `subtract_dn` (offset and haze;
/// a pixel darker than the haze reads below zero).
pub(crate) fn reflectance(dn: u16, subtract_dn: u32) -> f32 {
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

    fn scene(date: &str, baseline: Option<&str>, flag: Option<bool>) -> Scene {
        Scene {
            processing_baseline: baseline.map(str::to_owned),
            boa_offset_applied: flag,
            ..Scene::for_tests("s", date)
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
    fn haze_is_the_excess_over_the_sites_clearest_scenes() {
        // Ten scenes: water and forest at 200-300 DN in the blue; three hazy by 400-600 DN.
        let levels: Vec<[Option<u16>; HAZE_BANDS]> = (0..10u16)
            .map(|i| {
                let haze = if i < 3 { 400 + 100 * i } else { 0 };
                let mut band: Vec<u16> = (0..5000).map(|p| 200 + p % 100 + haze).collect();
                band.extend(vec![1500 + haze; 20_000]);
                let mut d = DarkLevel::default();
                d.add(&band, &vec![true; band.len()]);
                std::array::from_fn(|b| if b == 0 { d.level(0) } else { None })
            })
            .collect();
        let site = site_dark(&levels);
        assert_eq!(site[0], Some(204));
        assert_eq!(site[1], None);
        let mut d = decide_offset(&scene("2021-06-01", Some("03.01"), None), DarkPixels::default());
        add_haze(&mut d, levels[2], site);
        assert_eq!(d.haze_dn, [600, 0, 0]);
        assert!(d.evidence.contains("haze subtracted"), "{}", d.evidence);
        let mut clear = decide_offset(&scene("2021-06-01", Some("03.01"), None), DarkPixels::default());
        add_haze(&mut clear, levels[7], site);
        assert_eq!(clear.haze_dn, [0; HAZE_BANDS]);
        assert!(!clear.evidence.contains("haze"));
        // Green and red darker than the site's by more than the blue: the season, not haze.
        let mut season = decide_offset(&scene("2021-06-01", Some("03.01"), None), DarkPixels::default());
        add_haze(
            &mut season,
            [Some(250), Some(400), Some(380)],
            [Some(200), Some(250), Some(300)],
        );
        assert_eq!(season.haze_dn, [50, 50, 50]);
    }

    #[test]
    fn a_dark_level_needs_enough_pixels_and_a_dark_one() {
        let mut few = DarkLevel::default();
        few.add(&[300; 999], &[true; 999]);
        assert_eq!(few.level(0), None);
        let mut bright = DarkLevel::default();
        bright.add(&[5000; 2000], &[true; 2000]);
        assert_eq!(bright.level(0), None);
        let mut raw = DarkLevel::default();
        raw.add(&[1300; 2000], &[true; 2000]);
        assert_eq!(raw.level(1000), Some(300));
    }

    #[test]
    fn no_data_is_nan_not_zero() {
        assert!(reflectance(0, 0).is_nan());
        approx::assert_relative_eq!(reflectance(1500, 1000), 0.05);
    }
}

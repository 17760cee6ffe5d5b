//! Monthly summaries a non-expert can read and forward: one per AOI (`summary.md`, `summary.html`,
//! the self-contained `summary-mail.html`, `summary.csv`, `summary.json` and the pictures in
//! `summary/`) and one across the AOIs of a run (`across.*`).
//!
//! The input is what the scan has already measured ([`MonthFigures`], RGB chips in [`Quicklook`])
//! and the report it wrote. Every other number is derived here from those two alone, so each figure
//! on a page can be traced to the report and its provenance. This module reads no imagery and
//! detects nothing; it must never compute a figure a second way that could disagree with the report.

mod chart;
mod location;
mod page;
mod quicklook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use geo::Centroid;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::detect::kernel::MonthCounts;
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::month::Month;
use crate::output::{provenance, report, round};

pub use crate::output::provenance::Period;

pub use location::LocationMap;
pub(crate) use quicklook::{pick_months, quicklook, true_colour, Chip};

/// Folder beside `summary.html` holding its pictures, referenced by relative paths.
pub(crate) const PICTURES: &str = "summary";
/// Folder beside `across.html` holding its pictures.
pub(crate) const ACROSS_PICTURES: &str = "across";
/// Largest polygons listed by name and place on a page ("where").
pub(crate) const LARGEST_LISTED: usize = 5;
/// The summary page with its pictures inside it, one file to attach to a mail.
pub(crate) const MAIL_PAGE: &str = "summary-mail.html";

/// A month is a gap in the summary when less than this share of the AOI was seen clearly: its
/// built-up area would be a count over part of the site, not comparable with other months.
pub const GAP_BELOW: f64 = 0.8;

/// Before and after image chips around one new polygon, for a reader to see the change.
#[derive(Debug, Clone)]
pub struct Quicklook {
    /// The polygon's id in the report.
    pub id: String,
    /// Its area, ha.
    pub area_ha: f64,
    /// Month in which it was first seen.
    pub first_detected: Month,
    /// Month of the `before` chip.
    pub before_month: Month,
    /// Month of the `after` chip.
    pub after_month: Month,
    /// True colour before the change, stretched to 8 bits.
    pub before: image::RgbImage,
    /// True colour after the change, the same size as `before`.
    pub after: image::RgbImage,
    /// The polygon's exterior ring in chip pixel coordinates: x right, y down, (0, 0) the top-left
    /// corner of the top-left pixel.
    pub outline: Vec<(f64, f64)>,
}

/// Everything a per-AOI summary is made from. Software version, parameters and scene ids are not
/// repeated here: they are read from the report's `compound_watch` provenance.
#[derive(Debug, Clone)]
pub struct SiteSummary {
    /// The AOI's display name, e.g. "KK Park".
    pub aoi_name: String,
    /// The AOI's short name (file stem), as in the report's `aoi` property.
    pub aoi_slug: String,
    /// The scanned months.
    pub period: Period,
    /// One entry per month of `period`, in order.
    pub months: Vec<MonthFigures>,
    /// The scan's report as written.
    pub report: geojson::FeatureCollection,
    /// Before and after chips of the report's polygons (every one the scan could picture).
    pub quicklooks: Vec<Quicklook>,
    /// The polygons over the AOI and the recent composite; `None` draws no location map.
    pub location: Option<LocationMap>,
    /// The day the summary is written (the caller reads the clock; pages say "generated on").
    pub generated: chrono::NaiveDate,
    /// The scenes are the bundled synthetic sample (`compound-watch sample`): every page then says
    /// first that nothing in it is real.
    pub synthetic: bool,
}

/// One month of a summary (a row of `summary.csv`, an entry of `summary.json`): what the scan
/// measured in the month and what is derived from that and the report. A month without enough
/// clear view is a gap: its built-up area is unknown, never zero.
///
/// The scan makes each month with [`MonthFigures::measured`], which leaves the derived fields
/// empty; [`write_site`] derives them from the report and rounds hectares to 0.001 ha (10 m²),
/// fractions and confidences to 0.001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthFigures {
    /// The month.
    pub month: Month,
    /// Scenes used in the month's composite.
    pub scenes: usize,
    /// Share of AOI pixels with a clear composite, 0..1.
    pub clear_fraction: f64,
    /// Median clear observations per AOI pixel.
    pub clear_obs_median: f64,
    /// Too little clear view to measure the month.
    pub gap: bool,
    /// The stable built-up estimate, ha: pixels built-up in most of their clear months, plus
    /// confirmed construction from its month on, minus confirmed demolition. It moves only by
    /// confirmed changes, never by season or cloud. `None` when the AOI was never seen clearly.
    pub builtup_ha: Option<f64>,
    /// Hectares either way around `builtup_ha`: pixels built-up in 30-70% of their clear months.
    #[serde(default)]
    pub builtup_uncertainty_ha: f64,
    /// The raw single-month measurement: built-up hectares over this month's clear pixels only
    /// (it swings with season and with how much of the AOI was seen); `None` in a gap.
    #[serde(default)]
    pub builtup_measured_ha: Option<f64>,
    /// `builtup_ha` minus the previous month's; `None` for the first month.
    pub builtup_change_ha: Option<f64>,
    /// `builtup_ha` minus the same month a year before; `None` in the first year.
    pub builtup_yoy_ha: Option<f64>,
    /// Hectares of the report's confirmed polygons first detected in this month.
    pub new_ha: f64,
    /// Number of the report's confirmed polygons first detected in this month.
    pub new_polygons: usize,
    /// `new_ha` summed from the first month through this one.
    pub cumulative_new_ha: f64,
    /// Hectares of confirmed demolition dated to this month (`demolition.geojson`), in pixels of
    /// the grid: with `new_ha`, what moves `builtup_ha`.
    #[serde(default)]
    pub demolished_ha: f64,
    /// Hectares of provisional polygons (seen in too few clear months to confirm yet) first
    /// detected in this month; not in `new_ha`.
    #[serde(default)]
    pub provisional_ha: f64,
    /// Number of provisional polygons first detected in this month.
    #[serde(default)]
    pub provisional_polygons: usize,
    /// Mean confidence of this month's new polygons, confirmed and provisional; `None` when there
    /// are none.
    pub mean_confidence: Option<f64>,
}

impl MonthFigures {
    /// The month as the scan measured it from its `counts` over an AOI of `aoi_pixels` pixels of
    /// `res` metres, with `scenes` scenes in its composite. Nothing derived from the report yet:
    /// changes and confidence are `None`, new construction is zero.
    pub fn measured(month: Month, scenes: usize, counts: &MonthCounts, aoi_pixels: u64, res: f64) -> MonthFigures {
        let ha_per_pixel = res * res / M2_PER_HA;
        let clear_fraction = if aoi_pixels == 0 {
            0.0
        } else {
            counts.clear_pixels as f64 / aoi_pixels as f64
        };
        let gap = clear_fraction < GAP_BELOW;
        MonthFigures {
            month,
            scenes,
            clear_fraction,
            clear_obs_median: counts.clear_obs_median() as f64,
            gap,
            builtup_ha: Some(counts.stable_pixels as f64 * ha_per_pixel),
            builtup_uncertainty_ha: counts.ambiguous_pixels as f64 * ha_per_pixel,
            builtup_measured_ha: (!gap).then_some(counts.builtup_pixels as f64 * ha_per_pixel),
            builtup_change_ha: None,
            builtup_yoy_ha: None,
            new_ha: 0.0,
            new_polygons: 0,
            cumulative_new_ha: 0.0,
            demolished_ha: counts.demolished_pixels as f64 * ha_per_pixel,
            provisional_ha: 0.0,
            provisional_polygons: 0,
            mean_confidence: None,
        }
    }

    /// The raw measurement, only where the month was measured: a gap hides any value given with it.
    fn measured_builtup(&self) -> Option<f64> {
        if self.gap {
            None
        } else {
            self.builtup_measured_ha
        }
    }
}

/// Square metres in a hectare.
const M2_PER_HA: f64 = 10_000.0;
/// Decimals of every hectare, fraction and confidence a summary writes.
const DECIMALS: i32 = 3;

/// One polygon of the report, as a summary lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPolygon {
    /// Its id in the report.
    pub id: String,
    /// Area, ha, as in the report.
    pub area_ha: f64,
    /// Month of first detection, written as in the report: its first day, `YYYY-MM-01`.
    #[serde(with = "first_day")]
    pub first_detected: Month,
    /// Provisional: seen in too few clear months to be confirmed yet.
    #[serde(default)]
    pub provisional: bool,
    /// Confidence, 0..1, as in the report.
    pub confidence: f64,
    /// Median clear observations behind it over the whole period, as in the report.
    pub n_clear_obs: u32,
    /// Longitude of its centroid, degrees (WGS84), to the report's 6 decimals.
    pub lon: f64,
    /// Latitude of its centroid, degrees (WGS84), to the report's 6 decimals.
    pub lat: f64,
}

/// A month written as its first day, `YYYY-MM-01`, the form of the report's `first_detected`.
mod first_day {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::month::Month;

    pub(super) fn serialize<S: Serializer>(m: &Month, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&m.first_day())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Month, D::Error> {
        let text = String::deserialize(d)?;
        let month = if text.len() == 10 { &text[..7] } else { "" };
        month
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a YYYY-MM-DD date")))
    }
}

/// The newest scene behind a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestScene {
    /// Its STAC item id.
    pub id: String,
    /// Its acquisition time, RFC 3339, as in the report's provenance.
    pub datetime: String,
}

/// Figures for the whole period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Hectares of confirmed new construction: the sum of the confirmed polygons' `area_ha`.
    pub new_ha: f64,
    /// Polygons of confirmed new construction.
    pub new_polygons: usize,
    /// Hectares of provisional polygons, not in `new_ha`.
    #[serde(default)]
    pub provisional_ha: f64,
    /// Provisional polygons, not in `new_polygons`.
    #[serde(default)]
    pub provisional_polygons: usize,
    /// Month of the earliest new polygon.
    pub first_new: Option<Month>,
    /// Month of the latest new polygon.
    pub last_new: Option<Month>,
    /// Mean confidence over all new polygons.
    pub mean_confidence: Option<f64>,
    /// Lowest confidence of any new polygon.
    pub min_confidence: Option<f64>,
    /// Months in the period.
    pub months: usize,
    /// Months not measured: without any scene, or too cloudy.
    pub gap_months: Vec<Month>,
    /// Of the gap months, those without any scene at all (not "too cloudy": nothing was seen).
    #[serde(default)]
    pub no_scene_months: Vec<Month>,
    /// Scenes used by the scan.
    pub scenes: usize,
    /// Scenes found but not used (see the report's `compound_watch.skipped`).
    pub skipped_scenes: usize,
    /// The first month that was measured.
    pub first_clear: Option<Month>,
    /// Built-up hectares in `first_clear`.
    pub first_builtup_ha: Option<f64>,
    /// The latest month that was measured.
    pub latest_clear: Option<Month>,
    /// Built-up hectares in `latest_clear`.
    pub latest_builtup_ha: Option<f64>,
}

/// A picture of a summary, by its path relative to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    /// Path relative to the directory holding the page, with `/` separators.
    pub path: String,
    /// What it shows, in words (the image's alt text and caption).
    pub caption: String,
}

/// A per-AOI summary's figures: the content of `summary.json`, and what the across-AOI summary is
/// made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteFigures {
    /// "compound-watch".
    pub software: String,
    /// Version of the software that wrote the report.
    pub version: String,
    /// AOI display name.
    pub aoi_name: String,
    /// AOI short name.
    pub aoi_slug: String,
    /// The scenes are the bundled synthetic sample, not real imagery.
    pub synthetic: bool,
    /// The scanned months.
    pub period: Period,
    /// Where the scenes came from.
    pub source: String,
    /// Every parameter that shaped a figure, as in the report.
    pub parameters: Value,
    /// Ids of the scenes used, in time order.
    pub scenes: Vec<String>,
    /// The newest of them; `None` when none was used.
    #[serde(default)]
    pub latest_scene: Option<LatestScene>,
    /// The day the summary was written, `YYYY-MM-DD`.
    #[serde(default)]
    pub generated: String,
    /// Figures for the whole period.
    pub totals: Totals,
    /// One row per month, in order.
    pub months: Vec<MonthFigures>,
    /// The report's polygons, largest first.
    pub polygons: Vec<NewPolygon>,
    /// The location map of the polygons, when one was drawn.
    #[serde(default)]
    pub location: Option<Picture>,
    /// Charts: built-up area per month, then new construction per month.
    pub charts: Vec<Picture>,
    /// Before/after pictures of the polygons, largest first.
    pub quicklooks: Vec<Picture>,
}

/// The software version, parameters, source and scene ids of the report's `compound_watch` member.
struct Provenance {
    software: String,
    version: String,
    source: String,
    /// As written in the report (carried over, not retyped).
    parameters: Value,
    scenes: Vec<String>,
    latest: Option<LatestScene>,
    skipped: usize,
}

fn provenance(report: &geojson::FeatureCollection) -> Result<Provenance> {
    let fail = |reason: String| Error::Summary {
        what: "report member compound_watch".into(),
        reason: format!("{reason}; rerun the scan"),
    };
    let p = provenance::Provenance::of(report).map_err(fail)?;
    let parameters = provenance::Provenance::member(report)
        .and_then(|m| m.get("parameters"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Provenance {
        software: p.software,
        version: p.version,
        source: p.source,
        parameters,
        latest: p
            .scenes
            .iter()
            .max_by(|a, b| (&a.datetime, &a.id).cmp(&(&b.datetime, &b.id)))
            .map(|s| LatestScene {
                id: s.id.clone(),
                datetime: s.datetime.clone(),
            }),
        scenes: p.scenes.into_iter().map(|s| s.id).collect(),
        skipped: p.skipped.len(),
    })
}

/// The report's features as summary polygons, largest first (ties by id, so the order is stable).
fn polygons(report: &geojson::FeatureCollection) -> Result<Vec<NewPolygon>> {
    let mut out = report
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let props = f.properties.as_ref();
            let id = props
                .and_then(|p| p.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{i}"));
            let bad = |reason: &str| Error::Summary {
                what: format!("report feature {id}"),
                reason: format!("{reason}; the report was not written by this version of `compound-watch scan`"),
            };
            let number = |key: &str| {
                props
                    .and_then(|p| p.get(key))
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad(&format!("property {key} is missing or not a number")))
            };
            let n_clear_obs = props
                .and_then(|p| p.get("n_clear_obs"))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("property n_clear_obs is missing or not a whole number"))?;
            let first_detected = props
                .and_then(|p| p.get("first_detected"))
                .and_then(Value::as_str)
                .filter(|d| d.len() == 10 && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
                .and_then(|d| d[..7].parse::<Month>().ok())
                .ok_or_else(|| bad("property first_detected is not a YYYY-MM-DD date"))?;
            let provisional = match props.and_then(|p| p.get("status")).and_then(Value::as_str) {
                Some("confirmed") => false,
                Some("provisional") => true,
                _ => return Err(bad("property status is not \"confirmed\" or \"provisional\"")),
            };
            let geometry = f.geometry.clone().ok_or_else(|| bad("it has no geometry"))?;
            let shape = geo::Geometry::<f64>::try_from(geometry).map_err(|e| bad(&format!("its geometry: {e}")))?;
            let centre = shape.centroid().ok_or_else(|| bad("its geometry is empty"))?;
            Ok(NewPolygon {
                area_ha: number("area_ha")?,
                confidence: number("confidence")?,
                n_clear_obs,
                first_detected,
                provisional,
                lon: round(centre.x(), report::DECIMALS),
                lat: round(centre.y(), report::DECIMALS),
                id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| b.area_ha.total_cmp(&a.area_ha).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = values.fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    (n > 0).then(|| sum / n as f64)
}

/// Derives every per-month and total figure from the scan's months and its report.
///
/// Fails, naming the field, when the months do not run from `from` to `to` one by one, when a
/// polygon's month lies outside them (its hectares would be lost from the monthly rows), or when
/// the report lacks a property or provenance field a summary shows.
pub(crate) fn figures(s: &SiteSummary) -> Result<SiteFigures> {
    check_months(s)?;
    let prov = provenance(&s.report)?;
    let polygons = polygons(&s.report)?;
    check_polygons_in_period(&polygons, s.period)?;
    let months = derive_months(&s.months, &polygons);
    let totals = totals(&months, &polygons, &prov);
    Ok(SiteFigures {
        software: prov.software,
        version: prov.version,
        aoi_name: s.aoi_name.clone(),
        aoi_slug: s.aoi_slug.clone(),
        synthetic: s.synthetic,
        period: s.period,
        source: prov.source,
        parameters: prov.parameters,
        scenes: prov.scenes,
        latest_scene: prov.latest,
        generated: s.generated.to_string(),
        totals,
        months,
        location: s.location.as_ref().map(|map| Picture {
            path: format!("{PICTURES}/location.png"),
            caption: format!(
                "Where the {} {}: numbered as in the table of polygons (largest first), outlined in yellow (confirmed) or orange (provisional) over the recent composite (the median of the last three months' clear views); the AOI outline in white. North is up; the bar is {}.",
                polygons.len(),
                if polygons.len() == 1 { "polygon is" } else { "polygons are" },
                location::scale_bar_words(map)
            ),
        }),
        polygons,
        charts: site_charts(),
        quicklooks: s.quicklooks.iter().map(quicklook_picture).collect(),
    })
}

/// The months must run from the period's first to its last month, one entry each, in order.
fn check_months(s: &SiteSummary) -> Result<()> {
    let Period { from, to } = s.period;
    if to < from {
        return Err(Error::Summary {
            what: format!("period of {}", s.aoi_slug),
            reason: format!(
                "ends ({}) before it starts ({}); give the scan's --from and --to",
                to, from
            ),
        });
    }
    let expected = from.through(to);
    let given: Vec<Month> = s.months.iter().map(|m| m.month).collect();
    if given != expected {
        return Err(Error::Summary {
            what: format!("months of {}", s.aoi_slug),
            reason: format!(
                "expected one entry per month from {} to {} in order ({} months), got {} entries",
                from,
                to,
                expected.len(),
                given.len()
            ),
        });
    }
    Ok(())
}

/// Every polygon must be first detected within the period, or its hectares would be lost from
/// the monthly rows.
fn check_polygons_in_period(polygons: &[NewPolygon], Period { from, to }: Period) -> Result<()> {
    match polygons
        .iter()
        .find(|p| p.first_detected < from || p.first_detected > to)
    {
        Some(p) => Err(Error::Summary {
            what: format!("report feature {}", p.id),
            reason: format!(
                "first detected in {}, outside the summary's period {} to {}; summarise the period the report was scanned for",
                p.first_detected, from, to
            ),
        }),
        None => Ok(()),
    }
}

/// Months a year apart, for the year-on-year change.
const MONTHS_PER_YEAR: usize = 12;

/// The summary's months: the measured ones, rounded, with the changes between them and the
/// report's new construction in each.
fn derive_months(measured: &[MonthFigures], polygons: &[NewPolygon]) -> Vec<MonthFigures> {
    let mut per_month: BTreeMap<Month, Vec<&NewPolygon>> = BTreeMap::new();
    for p in polygons {
        per_month.entry(p.first_detected).or_default().push(p);
    }
    let mut cumulative = 0.0;
    measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let builtup = m.builtup_ha;
            let change_from = |back: usize| {
                let earlier = i.checked_sub(back).and_then(|j| measured[j].builtup_ha);
                builtup.zip(earlier).map(|(now, then)| round(now - then, DECIMALS))
            };
            let new = per_month.get(&m.month).map(Vec::as_slice).unwrap_or_default();
            let (provisional, confirmed): (Vec<&NewPolygon>, Vec<&NewPolygon>) =
                new.iter().partition(|p| p.provisional);
            let new_ha: f64 = confirmed.iter().map(|p| p.area_ha).sum();
            cumulative += new_ha;
            MonthFigures {
                month: m.month,
                scenes: m.scenes,
                clear_fraction: round(m.clear_fraction, DECIMALS),
                clear_obs_median: m.clear_obs_median,
                gap: m.gap,
                builtup_ha: builtup.map(|v| round(v, DECIMALS)),
                builtup_uncertainty_ha: round(m.builtup_uncertainty_ha, DECIMALS),
                builtup_measured_ha: m.measured_builtup().map(|v| round(v, DECIMALS)),
                builtup_change_ha: change_from(1),
                builtup_yoy_ha: change_from(MONTHS_PER_YEAR),
                new_ha: round(new_ha, DECIMALS),
                new_polygons: confirmed.len(),
                cumulative_new_ha: round(cumulative, DECIMALS),
                demolished_ha: round(m.demolished_ha, DECIMALS),
                provisional_ha: round(provisional.iter().map(|p| p.area_ha).sum(), DECIMALS),
                provisional_polygons: provisional.len(),
                mean_confidence: mean(new.iter().map(|p| p.confidence)).map(|c| round(c, DECIMALS)),
            }
        })
        .collect()
}

/// Figures for the whole period, from the summary's months, the report's polygons and its
/// provenance.
fn totals(months: &[MonthFigures], polygons: &[NewPolygon], prov: &Provenance) -> Totals {
    let measured: Vec<&MonthFigures> = months.iter().filter(|m| !m.gap && m.builtup_ha.is_some()).collect();
    let (provisional, confirmed): (Vec<&NewPolygon>, Vec<&NewPolygon>) = polygons.iter().partition(|p| p.provisional);
    Totals {
        new_ha: round(confirmed.iter().map(|p| p.area_ha).sum(), DECIMALS),
        new_polygons: confirmed.len(),
        provisional_ha: round(provisional.iter().map(|p| p.area_ha).sum(), DECIMALS),
        provisional_polygons: provisional.len(),
        first_new: polygons.iter().map(|p| p.first_detected).min(),
        last_new: polygons.iter().map(|p| p.first_detected).max(),
        mean_confidence: mean(polygons.iter().map(|p| p.confidence)).map(|c| round(c, DECIMALS)),
        min_confidence: polygons.iter().map(|p| p.confidence).min_by(f64::total_cmp),
        months: months.len(),
        gap_months: months.iter().filter(|m| m.gap).map(|m| m.month).collect(),
        no_scene_months: months
            .iter()
            .filter(|m| m.gap && m.scenes == 0)
            .map(|m| m.month)
            .collect(),
        scenes: prov.scenes.len(),
        skipped_scenes: prov.skipped,
        first_clear: measured.first().map(|m| m.month),
        first_builtup_ha: measured.first().and_then(|m| m.builtup_ha),
        latest_clear: measured.last().map(|m| m.month),
        latest_builtup_ha: measured.last().and_then(|m| m.builtup_ha),
    }
}

/// The two charts of a site: built-up area per month, then new construction per month.
fn site_charts() -> Vec<Picture> {
    vec![
        Picture {
            path: format!("{PICTURES}/builtup.png"),
            caption: "Built-up area, ha, on an axis from zero: the stable estimate (line; it moves only by confirmed construction and demolition) and the raw measurement of each month's clear view (dots; it swings with season and cloud). Grey columns are gaps: months too cloudy to measure the site.".into(),
        },
        Picture {
            path: format!("{PICTURES}/new.png"),
            caption: "New construction by the month it was first seen, ha: confirmed (dark) and provisional (light, not yet seen in enough clear months). A polygon is dated by the first month its own pixels were seen clearly, so a month too cloudy to measure the whole site (light grey) can hold new construction; dark grey months saw nothing.".into(),
        },
    ]
}

/// The picture of one quicklook, with a caption saying what it shows.
fn quicklook_picture(q: &Quicklook) -> Picture {
    Picture {
        path: format!("{PICTURES}/quicklook-{}.png", file_stem(&q.id)),
        caption: format!(
            "{}: {:.2} ha first seen {}. Left: {} (before). Right: {} (after). Yellow: the detected outline; grey pixels were not seen clearly that month.",
            q.id, q.area_ha, q.first_detected, q.before_month, q.after_month
        ),
    }
}

/// A polygon id made safe as a file name (ids are `<aoi>-r<row>c<col>`, but the AOI comes from
/// a file name a user chose).
fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// CSV header of `summary.csv`; one column per [`MonthFigures`] field, in the same order.
pub(crate) const SITE_CSV_HEADER: &str =
    "month,scenes,clear_fraction,clear_obs_median,gap,builtup_ha,builtup_uncertainty_ha,\
builtup_measured_ha,builtup_change_ha,builtup_yoy_ha,new_ha,new_polygons,cumulative_new_ha,\
demolished_ha,provisional_ha,provisional_polygons,mean_confidence";

/// `summary.csv`: one row per month, plain numbers, an empty field where a value is not measured.
pub(crate) fn site_csv(f: &SiteFigures) -> String {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = format!("{SITE_CSV_HEADER}\n");
    for m in &f.months {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            m.month,
            m.scenes,
            m.clear_fraction,
            m.clear_obs_median,
            m.gap,
            opt(m.builtup_ha),
            m.builtup_uncertainty_ha,
            opt(m.builtup_measured_ha),
            opt(m.builtup_change_ha),
            opt(m.builtup_yoy_ha),
            m.new_ha,
            m.new_polygons,
            m.cumulative_new_ha,
            m.demolished_ha,
            m.provisional_ha,
            m.provisional_polygons,
            opt(m.mean_confidence),
        ));
    }
    out
}

/// Writes the summary of one AOI into `dir` (normally the scan's output directory): `summary.md`,
/// `summary.html`, `summary.csv`, `summary.json` and the pictures in `summary/`, each atomically.
/// Returns the paths written.
pub fn write_site(dir: &Path, s: &SiteSummary) -> Result<Vec<PathBuf>> {
    write_figures(dir, s, &figures(s)?)
}

/// [`write_site`] with the figures already derived from `s` by [`figures`].
pub(crate) fn write_figures(dir: &Path, s: &SiteSummary, f: &SiteFigures) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
        let path = dir.join(name);
        atomic::write(&path, &bytes)?;
        written.push(path);
        Ok(())
    };
    // Every picture is drawn and encoded on its own: in parallel.
    enum Picture<'a> {
        Location(&'a LocationMap),
        Builtup,
        NewConstruction,
        Quicklook(&'a Quicklook),
    }
    let mut jobs: Vec<(&str, Picture<'_>)> = Vec::new();
    if let (Some(map), Some(picture)) = (&s.location, &f.location) {
        jobs.push((&picture.path, Picture::Location(map)));
    }
    jobs.push((&f.charts[0].path, Picture::Builtup));
    jobs.push((&f.charts[1].path, Picture::NewConstruction));
    for (q, picture) in s.quicklooks.iter().zip(&f.quicklooks) {
        jobs.push((&picture.path, Picture::Quicklook(q)));
    }
    let pictures: BTreeMap<String, Vec<u8>> = jobs
        .into_par_iter()
        .map(|(path, picture)| {
            let bytes = match picture {
                Picture::Location(map) => chart::png(&location::render(map, f)?)?,
                Picture::Builtup => chart::builtup(&f.months)?,
                Picture::NewConstruction => chart::new_construction(&f.months)?,
                Picture::Quicklook(q) => chart::png(&quicklook::render(q)?)?,
            };
            Ok((path.to_owned(), bytes))
        })
        .collect::<Result<_>>()?;
    let markdown = page::site_markdown(f);
    let title = page::site_title(f);
    let embedded = |path: &str| pictures.get(path).cloned();
    let mail = page::html(&title, &markdown, &page::Pictures::Embedded(&embedded));
    put(MAIL_PAGE, mail.into_bytes())?;
    for (path, bytes) in &pictures {
        put(path, bytes.clone())?;
    }
    put("summary.csv", site_csv(f).into_bytes())?;
    put(
        "summary.html",
        page::html(&title, &markdown, &page::Pictures::Linked).into_bytes(),
    )?;
    put("summary.md", markdown.into_bytes())?;
    // Last, so a summary.json on disk means the pages and pictures beside it are complete.
    let json = dir.join("summary.json");
    atomic::write_json(&json, f)?;
    written.push(json);
    Ok(written)
}

/// Reads `summary.json` back from a scan's output directory.
pub fn read_site(out_dir: &Path) -> Result<SiteFigures> {
    let path = out_dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Summary {
        what: path.display().to_string(),
        reason: format!("cannot be read ({e}); give a directory written by `compound-watch scan --out`"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Summary {
        what: path.display().to_string(),
        reason: format!(
            "is not a summary written by this version of compound-watch ({e}); rerun the scan to rewrite it"
        ),
    })
}

/// One AOI's line in the across-AOI summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcrossRow {
    /// AOI display name.
    pub aoi_name: String,
    /// AOI short name.
    pub aoi_slug: String,
    /// The scanned months.
    pub period: Period,
    /// The scenes are the synthetic sample.
    pub synthetic: bool,
    /// The AOI's totals, as in its `summary.json`.
    pub totals: Totals,
    /// The AOI's latest month with its figures.
    pub latest_month: Option<MonthFigures>,
}

/// `across.json`: the figures of every AOI of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcrossFigures {
    /// "compound-watch".
    pub software: String,
    /// Version that wrote this file.
    pub version: String,
    /// One row per AOI, in the order given.
    pub sites: Vec<AcrossRow>,
    /// Hectares of new construction over all AOIs.
    pub new_ha: f64,
    /// Polygons of new construction over all AOIs.
    pub new_polygons: usize,
    /// Charts: cumulative new construction per AOI.
    pub charts: Vec<Picture>,
}

/// The figures of an across-AOI summary.
pub fn across_figures(sites: &[SiteFigures]) -> AcrossFigures {
    AcrossFigures {
        software: "compound-watch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        sites: sites
            .iter()
            .map(|s| AcrossRow {
                aoi_name: s.aoi_name.clone(),
                aoi_slug: s.aoi_slug.clone(),
                period: s.period,
                synthetic: s.synthetic,
                totals: s.totals.clone(),
                latest_month: s.months.last().cloned(),
            })
            .collect(),
        new_ha: round(sites.iter().map(|s| s.totals.new_ha).sum(), DECIMALS),
        new_polygons: sites.iter().map(|s| s.totals.new_polygons).sum(),
        charts: vec![Picture {
            path: format!("{ACROSS_PICTURES}/cumulative.png"),
            caption: "New construction since the start of each AOI's period, ha, by month.".into(),
        }],
    }
}

/// CSV header of `across.csv`, one row per AOI.
pub(crate) const ACROSS_CSV_HEADER: &str =
    "aoi_slug,aoi_name,from,to,synthetic,new_ha,new_polygons,first_new,last_new,\
mean_confidence,latest_clear,latest_builtup_ha,gap_months,scenes";

/// `across.csv`: one row per AOI; a name with a comma or quote is quoted as RFC 4180 says.
pub(crate) fn across_csv(a: &AcrossFigures) -> String {
    let month = |m: Option<Month>| m.map(|m| m.to_string()).unwrap_or_default();
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = format!("{ACROSS_CSV_HEADER}\n");
    for s in &a.sites {
        let t = &s.totals;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&s.aoi_slug),
            csv_field(&s.aoi_name),
            s.period.from,
            s.period.to,
            s.synthetic,
            t.new_ha,
            t.new_polygons,
            month(t.first_new),
            month(t.last_new),
            number(t.mean_confidence),
            month(t.latest_clear),
            number(t.latest_builtup_ha),
            t.gap_months.len(),
            t.scenes,
        ));
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Writes one summary across the AOIs of a run into `dir`: `across.md`, `across.html`,
/// `across.csv`, `across.json` and `across/cumulative.png`, each atomically. Returns the paths.
pub fn write_across(dir: &Path, sites: &[SiteFigures]) -> Result<Vec<PathBuf>> {
    if sites.is_empty() {
        return Err(Error::Summary {
            what: dir.display().to_string(),
            reason: "no AOI to summarise; give at least one scan output directory".into(),
        });
    }
    let a = across_figures(sites);
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
        let path = dir.join(name);
        atomic::write(&path, &bytes)?;
        written.push(path);
        Ok(())
    };
    put(&a.charts[0].path, chart::cumulative(sites)?)?;
    put("across.csv", across_csv(&a).into_bytes())?;
    let markdown = page::across_markdown(&a);
    put(
        "across.html",
        page::html(&page::across_title(&a), &markdown, &page::Pictures::Linked).into_bytes(),
    )?;
    put("across.md", markdown.into_bytes())?;
    let json = dir.join("across.json");
    atomic::write_json(&json, &a)?;
    written.push(json);
    Ok(written)
}

#[cfg(test)]
mod tests;

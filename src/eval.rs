//! Evaluation: how the detector's output compares with what is known to have changed. Two
//! yardsticks, both leaves that nothing in the pipeline imports:
//!
//! - [`match_truth`]: a report against the synthetic sample's `truth.geojson` (objects found,
//!   detections correct, dates within a month).
//! - [`oscd`]: the change stage on real labelled Sentinel-2, the Onera Satellite Change Detection
//!   (OSCD) layout, as pixel [`Accuracy`] of the change class.
//!
//! For each city the scan's own detector runs in its two-period case (date 1 = baseline, date 2 =
//! current): the same built-up score, the same step decision with one clear observation on each
//! side, the same minimum mapping unit on regions. The change map is written on the label grid
//! (the `imgs_1` B02 grid) as `<city>-cm.tif` (1 = no change, 2 = change, as the labels), and where
//! labels exist precision, recall and F1 of the change class are computed per city and pooled.
//!
//! OSCD traps handled here: the bands are Level-1C top-of-atmosphere reflectance (DN / 10000, no
//! SCL, no offset), georeferenced in EPSG:4326; the date-2 grid can differ from date 1 by a few
//! pixels, so date 2 is warped onto the date-1 grid; the label TIFF has no georeferencing and holds
//! 1/2 on the date-1 10 m grid.

use std::path::{Path, PathBuf};

use geo::{Area, BooleanOps, MultiPolygon};
use serde::Serialize;
use serde_json::Value;

use crate::detect::builtup::{roof_score, DetectParams, Reflectance};
use crate::detect::kernel::{self, Kind};
use crate::detect::spectral::{hysteresis, smoothed_magnitude, spectral_step, Normalization};
use crate::detect::vectorize::label_regions;
use crate::error::{Error, Result};
use crate::io::window::{warp, Target};
use crate::month::Month;
use crate::output::report::{self, multipolygon_of, CogRaster};

/// Pixel accuracy of the change class for one city (or pooled): counts, precision, recall, F1.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Accuracy {
    /// Changed in both.
    pub tp: u64,
    /// Predicted change, labelled no change.
    pub fp: u64,
    /// Labelled change, predicted none.
    pub fn_: u64,
    /// Precision of the change class.
    pub precision: f64,
    /// Recall of the change class.
    pub recall: f64,
    /// F1 of the change class.
    pub f1: f64,
}

impl Accuracy {
    fn from_counts(tp: u64, fp: u64, fn_: u64) -> Accuracy {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Accuracy {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        }
    }

    /// The accuracy of `predicted` against OSCD `labels` (2 = change).
    fn of(labels: &[u8], predicted: &[bool]) -> Accuracy {
        let (tp, fp, fn_) = counts(labels, predicted);
        Accuracy::from_counts(tp, fp, fn_)
    }
}

/// One city's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct City {
    /// City (directory) name.
    pub name: String,
    /// Label-grid size.
    pub width: usize,
    /// Label-grid size.
    pub height: usize,
    /// Pixels predicted as change.
    pub predicted_change: u64,
    /// Change-stage scores against the labels (all urban change), when the city has labels.
    pub scores: Option<Accuracy>,
    /// The scan's final decision (change that is also a step up in the built-up score), scored
    /// against the same labels.
    pub construction_scores: Option<Accuracy>,
    /// Leave-one-city-out: the change thresholds fitted on the other labelled cities, and the
    /// scores with them on this one.
    pub leave_one_out: Option<LeaveOneOut>,
    /// The written change map.
    pub change_map: PathBuf,
}

/// Thresholds fitted without one city, and that city's scores with them.
#[derive(Debug, Clone, Serialize)]
pub struct LeaveOneOut {
    /// Fitted `change_low`.
    pub change_low: f32,
    /// Fitted `change_high`.
    pub change_high: f32,
    /// Accuracy on the held-out city.
    pub scores: Accuracy,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Per city.
    pub cities: Vec<City>,
    /// Change stage, summed over the labelled cities.
    pub pooled: Option<Accuracy>,
    /// Final (construction) decision, summed over the labelled cities.
    pub pooled_construction: Option<Accuracy>,
    /// Leave-one-city-out, summed over the held-out cities.
    pub pooled_leave_one_out: Option<Accuracy>,
    /// Parameters used (the scan's defaults unless changed).
    pub parameters: DetectParams,
    /// Minimum mapping unit, pixels.
    pub min_pixels: usize,
    /// The (change_low, change_high) pairs searched for leave-one-city-out.
    pub search_grid: Vec<(f32, f32)>,
    /// The pair of the grid with the best pooled F1 over all labelled cities: how the scan's
    /// defaults were chosen.
    pub fitted_on_all: Option<(f32, f32)>,
}

/// Candidate thresholds for the leave-one-city-out fit: a coarse, documented grid.
pub fn search_grid() -> Vec<(f32, f32)> {
    let lows = [1.4, 1.6, 1.8, 2.0, 2.2];
    let highs = [2.4, 2.8, 3.2, 3.6, 4.0];
    lows.iter().flat_map(|&l| highs.iter().map(move |&h| (l, h))).collect()
}

/// The OSCD band files read, in the order of [`Reflectance`]'s fields.
const BANDS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];

/// OSCD digital numbers per unit of reflectance (Level-1C: DN / 10000, no offset).
const DN_PER_REFLECTANCE: f32 = 10_000.0;

fn band_file(dir: &Path, band: &str) -> Result<PathBuf> {
    let suffix = format!("_{band}.tif");
    std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
        .ok_or_else(|| Error::Catalog {
            path: dir.display().to_string(),
            reason: format!("has no *{suffix} band file"),
        })
}

fn read_date(dir: &Path, target: &Target) -> Result<Vec<Vec<u16>>> {
    BANDS
        .iter()
        .map(|b| Ok(warp(&band_file(dir, b)?.display().to_string(), false, target)?.values))
        .collect()
}

/// What the scan's detector says in its two-period case, before any threshold on magnitude.
#[derive(Debug, Clone)]
pub struct TwoPeriod {
    /// Per-pixel spectral step magnitude, smoothed as the scan smooths it (median, then mean).
    pub smoothed: Vec<f32>,
    /// Per pixel: the built-up score steps up from date 1 to date 2.
    pub builtup_step: Vec<bool>,
    /// Grid width.
    pub width: usize,
    /// Grid height.
    pub height: usize,
}

impl TwoPeriod {
    /// Runs the per-pixel stages on two dates of six bands (DN, reflectance x 10000, 0 = no data).
    pub fn new(
        date1: &[Vec<u16>],
        date2: &[Vec<u16>],
        width: usize,
        height: usize,
        params: &DetectParams,
    ) -> TwoPeriod {
        let params = DetectParams {
            min_before: 1,
            min_after: 1,
            ..*params
        };
        let refl = |d: &[Vec<u16>], p: usize| -> Option<Reflectance> {
            if d.iter().any(|b| b[p] == 0) {
                return None;
            }
            let v = |i: usize| d[i][p] as f32 / DN_PER_REFLECTANCE;
            Some(Reflectance {
                blue: v(0),
                green: v(1),
                red: v(2),
                nir: v(3),
                swir16: v(4),
                swir22: v(5),
            })
        };
        let bands = |r: Option<Reflectance>| r.map_or([f32::NAN; 4], |r| [r.blue, r.green, r.red, r.nir]);
        let pixels = width * height;
        let months: Vec<Vec<[f32; 4]>> = [date1, date2]
            .iter()
            .map(|d| (0..pixels).map(|p| bands(refl(d, p))).collect())
            .collect();
        let norm = Normalization::measure(&months);
        let magnitude: Vec<f32> = (0..pixels)
            .map(|p| spectral_step(&[months[0][p], months[1][p]], &norm, &params).map_or(0.0, |s| s.magnitude))
            .collect();
        let builtup_step = (0..pixels)
            .map(|p| builtup_steps_up(refl(date1, p), refl(date2, p), &params))
            .collect();
        TwoPeriod {
            smoothed: smoothed_magnitude(&magnitude, width, height),
            builtup_step,
            width,
            height,
        }
    }

    /// The change stage with thresholds `low`, `high` and the minimum mapping unit on regions.
    pub fn change(&self, low: f32, high: f32, min_pixels: usize) -> Vec<bool> {
        let changed = hysteresis(&self.smoothed, self.width, self.height, low, high);
        mmu(&changed, self.width, self.height, min_pixels)
    }

    /// The scan's final decision: the pixels of changed regions that step up in built-up score
    /// (`builtup_steps_up`), with the minimum mapping unit on the regions they form.
    pub fn construction(&self, change: &[bool], min_pixels: usize) -> Vec<bool> {
        let both = kernel::confirmed(&self.builtup_step, change);
        mmu(&both, self.width, self.height, min_pixels)
    }
}

/// The scan's construction rule, first half, on one pixel in the two-period case
/// ([`kernel::built_change`], here with one clear observation on each side): the built-up score
/// steps up from date 1 to date 2. A pixel without data on either date never does.
fn builtup_steps_up(before: Option<Reflectance>, after: Option<Reflectance>, params: &DetectParams) -> bool {
    match (before, after) {
        (Some(a), Some(b)) => matches!(
            kernel::built_change(&[roof_score(a, params.roofs), roof_score(b, params.roofs)], params),
            Some((Kind::Construction, _))
        ),
        _ => false,
    }
}

/// The minimum mapping unit: keeps the regions of `mask` with at least `min_pixels` pixels.
fn mmu(mask: &[bool], width: usize, height: usize, min_pixels: usize) -> Vec<bool> {
    let (labels, regions) = label_regions(mask, width, height);
    labels
        .iter()
        .map(|&l| l != 0 && regions[l as usize - 1].len() >= min_pixels)
        .collect()
}

fn counts(labels: &[u8], predicted: &[bool]) -> (u64, u64, u64) {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (&l, &c) in labels.iter().zip(predicted) {
        match (l == 2, c) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            _ => {}
        }
    }
    (tp, fp, fn_)
}

/// The accuracy of the summed counts; None when there is nothing to sum.
fn pooled<'a>(accuracies: impl IntoIterator<Item = &'a Accuracy>) -> Option<Accuracy> {
    let all: Vec<&Accuracy> = accuracies.into_iter().collect();
    (!all.is_empty()).then(|| {
        Accuracy::from_counts(
            all.iter().map(|s| s.tp).sum(),
            all.iter().map(|s| s.fp).sum(),
            all.iter().map(|s| s.fn_).sum(),
        )
    })
}

struct Loaded {
    name: String,
    epsg: u32,
    geo_transform: [f64; 6],
    two: TwoPeriod,
    labels: Option<Vec<u8>>,
}

/// Runs the evaluation over every city directory in `data` and writes maps and tables to `out`.
pub fn oscd(data: &Path, out: &Path, params: &DetectParams, min_pixels: usize) -> Result<Evaluation> {
    use rayon::prelude::*;
    let dirs = city_dirs(data)?;
    let loaded: Vec<Loaded> = dirs.par_iter().map(|dir| load(dir, params)).collect::<Result<_>>()?;
    let fit = ThresholdFit::measure(&loaded, search_grid(), min_pixels);
    let cities = loaded
        .iter()
        .enumerate()
        .map(|(i, city)| evaluate_city(city, i, &fit, out, params, min_pixels))
        .collect::<Result<Vec<City>>>()?;
    let evaluation = Evaluation {
        pooled: pooled(cities.iter().filter_map(|c| c.scores.as_ref())),
        pooled_construction: pooled(cities.iter().filter_map(|c| c.construction_scores.as_ref())),
        pooled_leave_one_out: pooled(
            cities
                .iter()
                .filter_map(|c| c.leave_one_out.as_ref().map(|l| &l.scores)),
        ),
        cities,
        parameters: *params,
        min_pixels,
        fitted_on_all: fit.best_without(usize::MAX),
        search_grid: fit.grid,
    };
    crate::io::atomic::write_json(&out.join("eval.json"), &evaluation)?;
    crate::io::atomic::write(&out.join("eval.md"), markdown(&evaluation).as_bytes())?;
    Ok(evaluation)
}

/// The city directories of `data` (each with imgs_1/ and imgs_2/), sorted; an error when none.
fn city_dirs(data: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data)
        .map_err(Error::io(data))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("imgs_1").is_dir() && p.join("imgs_2").is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::Catalog {
            path: data.display().to_string(),
            reason: "holds no OSCD city (a directory with imgs_1/ and imgs_2/)".into(),
        });
    }
    Ok(dirs)
}

/// The change counts of every labelled city at every point of the search grid: what the
/// leave-one-city-out fit chooses thresholds from.
struct ThresholdFit {
    /// The (change_low, change_high) pairs searched.
    grid: Vec<(f32, f32)>,
    /// Per city (None when unlabelled), per grid point: (tp, fp, fn).
    table: Vec<Option<Vec<(u64, u64, u64)>>>,
}

impl ThresholdFit {
    fn measure(loaded: &[Loaded], grid: Vec<(f32, f32)>, min_pixels: usize) -> ThresholdFit {
        use rayon::prelude::*;
        let table = loaded
            .par_iter()
            .map(|c| {
                c.labels.as_ref().map(|labels| {
                    grid.iter()
                        .map(|&(lo, hi)| counts(labels, &c.two.change(lo, hi, min_pixels)))
                        .collect()
                })
            })
            .collect();
        ThresholdFit { grid, table }
    }

    /// F1 at grid point `g`, pooled over the labelled cities other than `held_out`.
    fn f1_without(&self, held_out: usize, g: usize) -> f64 {
        let (tp, fp, fn_) = self
            .table
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != held_out)
            .filter_map(|(_, t)| t.as_ref().map(|t| t[g]))
            .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        Accuracy::from_counts(tp, fp, fn_).f1
    }

    /// The grid pair with the best pooled F1 without city `held_out` (`usize::MAX`: with all), the
    /// first of equals; None when no other city is labelled.
    fn best_without(&self, held_out: usize) -> Option<(f32, f32)> {
        let others = self.table.iter().enumerate().any(|(i, t)| i != held_out && t.is_some());
        others.then(|| {
            let g = (0..self.grid.len())
                .max_by(|&a, &b| {
                    self.f1_without(held_out, a)
                        .total_cmp(&self.f1_without(held_out, b))
                        .then(b.cmp(&a))
                })
                .expect("grid is not empty");
            self.grid[g]
        })
    }
}

/// City `i`: writes its change map into `out` and measures it at the scan's thresholds and, when
/// labelled, at the thresholds fitted without it.
fn evaluate_city(
    c: &Loaded,
    i: usize,
    fit: &ThresholdFit,
    out: &Path,
    params: &DetectParams,
    min_pixels: usize,
) -> Result<City> {
    let change = c.two.change(params.change_low, params.change_high, min_pixels);
    let construction = c.two.construction(&change, min_pixels);
    let change_map = out.join(format!("{}-cm.tif", c.name));
    write_change_map(&change_map, c, &change)?;
    let accuracy = |predicted: &[bool]| c.labels.as_ref().map(|l| Accuracy::of(l, predicted));
    let leave_one_out = c.labels.as_ref().and_then(|_| {
        fit.best_without(i).map(|(lo, hi)| LeaveOneOut {
            change_low: lo,
            change_high: hi,
            scores: accuracy(&c.two.change(lo, hi, min_pixels)).expect("labelled"),
        })
    });
    Ok(City {
        name: c.name.clone(),
        width: c.two.width,
        height: c.two.height,
        predicted_change: change.iter().filter(|&&c| c).count() as u64,
        scores: accuracy(&change),
        construction_scores: accuracy(&construction),
        leave_one_out,
        change_map,
    })
}

/// Writes a city's change map on its label grid, coded as the labels: 1 = no change, 2 = change.
fn write_change_map(path: &Path, c: &Loaded, change: &[bool]) -> Result<()> {
    let map: Vec<u16> = change.iter().map(|&c| if c { 2 } else { 1 }).collect();
    report::write_cog(
        path,
        &CogRaster {
            epsg: c.epsg,
            geo_transform: c.geo_transform,
            width: c.two.width,
            height: c.two.height,
            bands: vec![(&map, "change (1 = no change, 2 = change)")],
            rgb: false,
            description: "compound-watch change map on the OSCD label grid: 1 = no change, 2 = change",
            metadata: vec![],
        },
    )
}

fn load(dir: &Path, params: &DetectParams) -> Result<Loaded> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let b02 = band_file(&dir.join("imgs_1"), "B02")?;
    let ds = gdal::Dataset::open(&b02).map_err(Error::gdal(format!("opening {}", b02.display())))?;
    let (width, height) = ds.raster_size();
    let geo_transform = ds
        .geo_transform()
        .map_err(Error::gdal(format!("reading the geotransform of {}", b02.display())))?;
    let epsg = ds
        .spatial_ref()
        .and_then(|s| s.auth_code())
        .map(|c| c as u32)
        .unwrap_or(4326);
    let target = Target {
        epsg,
        geo_transform,
        width,
        height,
    };
    let date1 = read_date(&dir.join("imgs_1"), &target)?;
    let date2 = read_date(&dir.join("imgs_2"), &target)?;
    let two = TwoPeriod::new(&date1, &date2, width, height, params);
    let label_path = dir.join("cm").join(format!("{name}-cm.tif"));
    let labels = if label_path.is_file() {
        let labels = gdal::Dataset::open(&label_path)
            .and_then(|d| d.rasterband(1).and_then(|b| b.read_band_as::<u8>()))
            .map_err(Error::gdal(format!("reading {}", label_path.display())))?;
        if labels.shape() != (width, height) {
            return Err(Error::Catalog {
                path: label_path.display().to_string(),
                reason: format!("is {:?}, the imgs_1 grid {width}x{height}", labels.shape()),
            });
        }
        Some(labels.data().to_vec())
    } else {
        None
    };
    Ok(Loaded {
        name,
        epsg,
        geo_transform,
        two,
        labels,
    })
}

/// The evaluation as Markdown tables.
pub fn markdown(e: &Evaluation) -> String {
    let mut s = String::from(
        "Change stage (what the OSCD labels mark: all urban change), scan thresholds, and leave-one-city-out.\n\n\
         | city | precision | recall | F1 | TP | FP | FN | LOCO low/high | LOCO F1 | construction F1 |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let row = |name: &str,
               sc: &Accuracy,
               loco: Option<&LeaveOneOut>,
               loco_pooled: Option<&Accuracy>,
               cons: Option<&Accuracy>| {
        let (fit, lf1) = match (loco, loco_pooled) {
            (Some(l), _) => (
                format!("{:.1}/{:.1}", l.change_low, l.change_high),
                format!("{:.3}", l.scores.f1),
            ),
            (None, Some(p)) => (String::new(), format!("{:.3}", p.f1)),
            _ => (String::new(), String::new()),
        };
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {fit} | {lf1} | {} |\n",
            sc.precision,
            sc.recall,
            sc.f1,
            sc.tp,
            sc.fp,
            sc.fn_,
            cons.map_or(String::new(), |c| format!("{:.3}", c.f1))
        )
    };
    for c in &e.cities {
        match &c.scores {
            Some(sc) => s.push_str(&row(
                &c.name,
                sc,
                c.leave_one_out.as_ref(),
                None,
                c.construction_scores.as_ref(),
            )),
            None => s.push_str(&format!(
                "| {} | no labels ({} px predicted) | | | | | | | | |\n",
                c.name, c.predicted_change
            )),
        }
    }
    if let Some(p) = &e.pooled {
        s.push_str(&row(
            "**pooled**",
            p,
            None,
            e.pooled_leave_one_out.as_ref(),
            e.pooled_construction.as_ref(),
        ));
    }
    if let Some((lo, hi)) = e.fitted_on_all {
        s.push_str(&format!(
            "\nThresholds used: change_low {:.1}, change_high {:.1}; the grid's best on all labelled cities: {lo:.1}/{hi:.1}.\n",
            e.parameters.change_low, e.parameters.change_high
        ));
    }
    s
}

/// How a report compares with the sample's truth (see [`match_truth`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthMatch {
    /// Construction events at least `min_area_m2` large.
    pub truth_objects: usize,
    /// Of those, found by some detection.
    pub recalled: usize,
    /// Detections in the report.
    pub detections: usize,
    /// Detections that overlap real construction (of any size).
    pub correct: usize,
    /// Recalled objects whose best detection is dated within one month of the first clear view.
    pub dated_within_one_month: usize,
    /// recalled / truth_objects.
    pub recall: f64,
    /// correct / detections (1 when there are none).
    pub precision: f64,
    /// dated_within_one_month / recalled.
    pub dating: f64,
}

/// A property of a feature.
fn prop<'a>(f: &'a geojson::Feature, key: &str) -> Option<&'a Value> {
    f.properties.as_ref().and_then(|p| p.get(key))
}

/// The month of a date property (`2022-05-01` or `2022-05`).
fn month_prop(f: &geojson::Feature, key: &str) -> Option<Month> {
    prop(f, key)
        .and_then(Value::as_str)
        .and_then(|s| s.get(..7))
        .and_then(|s| s.parse().ok())
}

/// A truth object and a detection match when their intersection covers at least this share of the
/// smaller of the two.
const MIN_OVERLAP_SHARE: f64 = 0.3;

/// Matches a report against the sample's truth file: an object counts as found, and a detection
/// as correct, when they overlap by at least `MIN_OVERLAP_SHARE` of the smaller of the two.
/// Objects under `min_area_m2` are not counted as objects, though a detection on one is correct.
pub fn match_truth(
    report: &geojson::FeatureCollection,
    truth: &geojson::FeatureCollection,
    min_area_m2: f64,
) -> TruthMatch {
    let detections: Vec<(MultiPolygon<f64>, Option<Month>)> = report
        .features
        .iter()
        .map(|f| (multipolygon_of(f), month_prop(f, "first_detected")))
        .collect();
    let built: Vec<(&geojson::Feature, MultiPolygon<f64>)> = truth
        .features
        .iter()
        .filter(|f| prop(f, "kind").and_then(Value::as_str) == Some("construction"))
        .map(|f| (f, multipolygon_of(f)))
        .collect();
    let overlaps = |a: &MultiPolygon<f64>, b: &MultiPolygon<f64>| {
        let inter = a.intersection(b).unsigned_area();
        inter > 0.0 && inter >= MIN_OVERLAP_SHARE * a.unsigned_area().min(b.unsigned_area())
    };
    let (mut truth_objects, mut recalled, mut dated) = (0, 0, 0);
    for (f, t) in &built {
        if prop(f, "area_m2").and_then(Value::as_f64).unwrap_or(0.0) < min_area_m2 {
            continue;
        }
        truth_objects += 1;
        let best = detections.iter().filter(|(d, _)| overlaps(d, t)).max_by(|a, b| {
            a.0.intersection(t)
                .unsigned_area()
                .total_cmp(&b.0.intersection(t).unsigned_area())
        });
        if let Some((_, month)) = best {
            recalled += 1;
            if let (Some(m), Some(s)) = (month, month_prop(f, "first_clear_after")) {
                if s.until(*m).abs() <= 1 {
                    dated += 1;
                }
            }
        }
    }
    let correct = detections
        .iter()
        .filter(|(d, _)| built.iter().any(|(_, t)| overlaps(d, t)))
        .count();
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    TruthMatch {
        truth_objects,
        recalled,
        detections: detections.len(),
        correct,
        dated_within_one_month: dated,
        recall: ratio(recalled, truth_objects),
        precision: ratio(correct, detections.len()),
        dating: ratio(dated, recalled),
    }
}

#[cfg(test)]
mod tests {
    use geo::{LineString, Polygon};
    use serde_json::json;

    use super::*;

    #[test]
    fn new_roofs_on_a_field_are_change_and_construction_and_the_mmu_drops_specks() {
        let (w, h) = (16, 12);
        let field = [300, 600, 350, 3300, 1700, 800];
        let roof = [1600, 1700, 1800, 2300, 2700, 2400];
        // A field with a little texture, so the scene has a measurable month-to-month wobble.
        let textured = |seed: usize| -> Vec<Vec<u16>> {
            field
                .iter()
                .map(|&v| (0..w * h).map(|p| v + ((p * 7 + seed) % 13) as u16 * 4).collect())
                .collect()
        };
        let before = textured(0);
        let mut after = textured(5);
        // A 3x4 roof block in a corner and a lone roof pixel far from it.
        let block: Vec<usize> = (0..3).flat_map(|r| (0..4).map(move |c| r * w + c)).collect();
        for &p in block.iter().chain(&[10 * w + 13]) {
            for (b, v) in roof.iter().enumerate() {
                after[b][p] = *v;
            }
        }
        let two = TwoPeriod::new(&before, &after, w, h, &DetectParams::default());
        let p = DetectParams::default();
        let change = two.change(p.change_low, p.change_high, 3);
        assert!(block.iter().all(|&p| change[p]), "the roofs are change");
        assert!(
            !change[11 * w + 2] && !change[w - 1],
            "far from the roofs nothing changed"
        );
        let construction = two.construction(&change, 3);
        let found: Vec<usize> = (0..w * h).filter(|&p| construction[p]).collect();
        assert_eq!(found, block);
    }

    #[test]
    fn f1_of_the_change_class() {
        let s = Accuracy::from_counts(30, 10, 30);
        approx::assert_relative_eq!(s.precision, 0.75);
        approx::assert_relative_eq!(s.recall, 0.5);
        approx::assert_relative_eq!(s.f1, 0.6);
    }

    /// A square feature `side` degrees wide with its south-west corner at (x, y).
    fn square(x: f64, y: f64, side: f64, props: Value) -> geojson::Feature {
        let ring = LineString::from(vec![(x, y), (x + side, y), (x + side, y + side), (x, y + side), (x, y)]);
        let polygon = Polygon::new(ring, vec![]);
        geojson::Feature {
            geometry: Some(geojson::Geometry::new(geojson::GeometryValue::from(&polygon))),
            properties: props.as_object().cloned(),
            ..Default::default()
        }
    }

    fn collection(features: Vec<geojson::Feature>) -> geojson::FeatureCollection {
        geojson::FeatureCollection {
            bbox: None,
            features,
            foreign_members: None,
        }
    }

    fn built(x: f64, area_m2: f64, seen: &str) -> geojson::Feature {
        square(
            x,
            0.0,
            1.0,
            json!({"kind": "construction", "area_m2": area_m2, "first_clear_after": seen}),
        )
    }

    fn found(x: f64, y: f64, side: f64, month: &str) -> geojson::Feature {
        square(x, y, side, json!({"first_detected": format!("{month}-01")}))
    }

    #[test]
    fn a_hit_dated_within_a_month_counts_for_recall_precision_and_dating() {
        let truth = collection(vec![built(0.0, 5_000.0, "2022-05")]);
        let report = collection(vec![found(0.2, 0.2, 0.6, "2022-06")]);
        let s = match_truth(&report, &truth, 1_000.0);
        assert_eq!(
            (
                s.truth_objects,
                s.recalled,
                s.detections,
                s.correct,
                s.dated_within_one_month
            ),
            (1, 1, 1, 1, 1)
        );
        assert_eq!((s.recall, s.precision, s.dating), (1.0, 1.0, 1.0));
    }

    #[test]
    fn a_miss_a_false_polygon_and_a_late_date_are_each_counted_against() {
        let truth = collection(vec![
            built(0.0, 5_000.0, "2022-05"),  // found, but two months late
            built(10.0, 5_000.0, "2022-03"), // missed
            built(20.0, 500.0, "2022-03"),   // under the minimum area: not an object, yet a true hit
            square(30.0, 0.0, 1.0, json!({"kind": "cleared", "area_m2": 5_000.0})),
        ]);
        let report = collection(vec![
            found(0.0, 0.0, 1.0, "2022-07"),
            found(30.0, 0.0, 1.0, "2022-04"), // on a cleared, never built site: false
            found(20.3, 0.3, 1.0, "2022-03"), // covers 49% of the small building: correct
            found(10.8, 0.0, 1.0, "2022-03"), // covers 20% of the missed one: under 30%, not a hit
        ]);
        let s = match_truth(&report, &truth, 1_000.0);
        assert_eq!(s.truth_objects, 2, "{s:?}");
        assert_eq!(s.recalled, 1, "{s:?}");
        assert_eq!(s.dated_within_one_month, 0, "{s:?}");
        assert_eq!(s.detections, 4, "{s:?}");
        assert_eq!(s.correct, 2, "{s:?}");
        assert_eq!((s.recall, s.precision, s.dating), (0.5, 0.5, 0.0));
    }

    #[test]
    fn an_empty_report_recalls_nothing_and_is_not_imprecise() {
        let truth = collection(vec![built(0.0, 5_000.0, "2022-05")]);
        let s = match_truth(&collection(vec![]), &truth, 1_000.0);
        assert_eq!((s.recall, s.precision, s.dating), (0.0, 1.0, 1.0));
    }
}

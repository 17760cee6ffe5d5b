//! Evaluation on real labelled Sentinel-2: the Onera Satellite Change Detection (OSCD) layout.
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

use serde::Serialize;

use crate::detect::{builtup_score, step, DetectParams, Reflectance};
use crate::error::{Error, Result};
use crate::report::{self, CogRaster};
use crate::vectorize::label_regions;
use crate::window::{warp, Target};

/// Counts and scores of the change class for one city (or pooled).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
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

impl Scores {
    fn from_counts(tp: u64, fp: u64, fn_: u64) -> Scores {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Scores {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        }
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
    /// Scores, when the city has labels.
    pub scores: Option<Scores>,
    /// The written change map.
    pub change_map: PathBuf,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Per city.
    pub cities: Vec<City>,
    /// Summed over the labelled cities.
    pub pooled: Option<Scores>,
    /// Parameters used (the scan's defaults unless changed).
    pub parameters: DetectParams,
    /// Minimum mapping unit, pixels.
    pub min_pixels: usize,
}

const BANDS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];

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
        .map(|b| warp(&band_file(dir, b)?.display().to_string(), false, target))
        .collect()
}

/// The per-pixel change decision of the two-period case, then the minimum mapping unit.
pub fn two_period_change(
    date1: &[Vec<u16>],
    date2: &[Vec<u16>],
    width: usize,
    height: usize,
    params: &DetectParams,
    min_pixels: usize,
) -> Vec<bool> {
    let params = DetectParams {
        min_before: 1,
        min_after: 1,
        ..*params
    };
    let refl = |d: &[Vec<u16>], p: usize| -> Option<Reflectance> {
        if d.iter().any(|b| b[p] == 0) {
            return None;
        }
        let v = |i: usize| d[i][p] as f32 / 10_000.0;
        Some(Reflectance {
            blue: v(0),
            green: v(1),
            red: v(2),
            nir: v(3),
            swir16: v(4),
            swir22: v(5),
        })
    };
    let changed: Vec<bool> = (0..width * height)
        .map(|p| match (refl(date1, p), refl(date2, p)) {
            (Some(a), Some(b)) => step(&[builtup_score(a), builtup_score(b)], &params).is_some(),
            _ => false,
        })
        .collect();
    let (labels, regions) = label_regions(&changed, width, height);
    labels
        .iter()
        .map(|&l| l != 0 && regions[l as usize - 1].len() >= min_pixels)
        .collect()
}

/// Runs the evaluation over every city directory in `data` and writes maps and tables to `out`.
pub fn oscd(data: &Path, out: &Path, params: &DetectParams, min_pixels: usize) -> Result<Evaluation> {
    let mut cities: Vec<PathBuf> = std::fs::read_dir(data)
        .map_err(Error::io(data))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("imgs_1").is_dir() && p.join("imgs_2").is_dir())
        .collect();
    cities.sort();
    if cities.is_empty() {
        return Err(Error::Catalog {
            path: data.display().to_string(),
            reason: "holds no OSCD city (a directory with imgs_1/ and imgs_2/)".into(),
        });
    }
    use rayon::prelude::*;
    let results: Vec<City> = cities
        .par_iter()
        .map(|dir| city(dir, out, params, min_pixels))
        .collect::<Result<_>>()?;
    let labelled: Vec<&Scores> = results.iter().filter_map(|c| c.scores.as_ref()).collect();
    let pooled = (!labelled.is_empty()).then(|| {
        Scores::from_counts(
            labelled.iter().map(|s| s.tp).sum(),
            labelled.iter().map(|s| s.fp).sum(),
            labelled.iter().map(|s| s.fn_).sum(),
        )
    });
    let evaluation = Evaluation {
        cities: results,
        pooled,
        parameters: *params,
        min_pixels,
    };
    crate::atomic::write_json(&out.join("eval.json"), &evaluation)?;
    crate::atomic::write(&out.join("eval.md"), markdown(&evaluation).as_bytes())?;
    Ok(evaluation)
}

fn city(dir: &Path, out: &Path, params: &DetectParams, min_pixels: usize) -> Result<City> {
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
    let changed = two_period_change(&date1, &date2, width, height, params, min_pixels);
    let map: Vec<u16> = changed.iter().map(|&c| if c { 2 } else { 1 }).collect();
    let change_map = out.join(format!("{name}-cm.tif"));
    report::write_cog(
        &change_map,
        &CogRaster {
            epsg,
            geo_transform,
            width,
            height,
            bands: vec![(&map, "change (1 = no change, 2 = change)")],
            rgb: false,
            description: "compound-watch change map on the OSCD label grid: 1 = no change, 2 = change",
            metadata: vec![],
        },
    )?;
    let label_path = dir.join("cm").join(format!("{name}-cm.tif"));
    let scores = if label_path.is_file() {
        let labels = gdal::Dataset::open(&label_path)
            .and_then(|d| d.rasterband(1).and_then(|b| b.read_band_as::<u8>()))
            .map_err(Error::gdal(format!("reading {}", label_path.display())))?;
        if labels.shape() != (width, height) {
            return Err(Error::Catalog {
                path: label_path.display().to_string(),
                reason: format!("is {:?}, the imgs_1 grid {width}x{height}", labels.shape()),
            });
        }
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (&l, &c) in labels.data().iter().zip(&changed) {
            match (l == 2, c) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        Some(Scores::from_counts(tp, fp, fn_))
    } else {
        None
    };
    Ok(City {
        name,
        width,
        height,
        predicted_change: changed.iter().filter(|&&c| c).count() as u64,
        scores,
        change_map,
    })
}

/// The evaluation as a Markdown table.
pub fn markdown(e: &Evaluation) -> String {
    let mut s = String::from("| city | precision | recall | F1 | TP | FP | FN |\n|---|---|---|---|---|---|---|\n");
    let row = |name: &str, sc: &Scores| {
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {} | {} | {} |\n",
            sc.precision, sc.recall, sc.f1, sc.tp, sc.fp, sc.fn_
        )
    };
    for c in &e.cities {
        match &c.scores {
            Some(sc) => s.push_str(&row(&c.name, sc)),
            None => s.push_str(&format!(
                "| {} | no labels ({} px predicted) | | | | | |\n",
                c.name, c.predicted_change
            )),
        }
    }
    if let Some(p) = &e.pooled {
        s.push_str(&row("**pooled**", p));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six bands over `n` pixels, every pixel the same spectrum (DN).
    fn stack(n: usize, dn: [u16; 6]) -> Vec<Vec<u16>> {
        dn.iter().map(|&v| vec![v; n]).collect()
    }

    #[test]
    fn new_roofs_on_a_field_are_change_and_the_mmu_drops_specks() {
        let (w, h) = (6, 4);
        let field = [300, 600, 350, 3300, 1700, 800];
        let roof = [1600, 1700, 1800, 2300, 2700, 2400];
        let before = stack(w * h, field);
        let mut after = stack(w * h, field);
        // A 2x3 roof block and a lone roof pixel.
        for p in [0, 1, 2, 6, 7, 8, 23] {
            for (b, v) in roof.iter().enumerate() {
                after[b][p] = *v;
            }
        }
        let changed = two_period_change(&before, &after, w, h, &DetectParams::default(), 3);
        let found: Vec<usize> = (0..w * h).filter(|&p| changed[p]).collect();
        assert_eq!(found, vec![0, 1, 2, 6, 7, 8]);
    }

    #[test]
    fn f1_of_the_change_class() {
        let s = Scores::from_counts(30, 10, 30);
        approx::assert_relative_eq!(s.precision, 0.75);
        approx::assert_relative_eq!(s.recall, 0.5);
        approx::assert_relative_eq!(s.f1, 0.6);
    }
}

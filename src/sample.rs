//! The bundled sample: a deterministic generator of a small, **synthetic** Sentinel-2 L2A time
//! series for the Myawaddy AOI, written as a static STAC catalog of COGs in Earth Search layout,
//! with the construction that happened in it recorded in `truth.geojson`.
//!
//! It is not real imagery. It is built to carry what makes real imagery hard: seasonal rice fields
//! (flooded, green, harvested to red stubble), a river, an existing town, bare laterite hills,
//! clouds with thin unflagged edges and displaced shadows, an imperfect SCL (edges missed, bright
//! roofs sometimes called cloud), monsoon months with few clear scenes, sensor noise and per-scene
//! gain, swath-edge no-data, and the 2022-01-25 offset with some items' flags wrong. Construction
//! events go forest/field -> cleared soil -> roof; one site is cleared and never built; one town
//! block is demolished. Each scene is generated from its own seeded RNG, so the output is the same
//! on every machine and in any thread order.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use geo::{Area, BooleanOps, Contains, Coord, LineString, MapCoords, MultiPolygon, Point, Polygon};
use noise::{Fbm, MultiFractal, NoiseFn, Perlin};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Result;
use crate::grid::Projector;
use crate::io::atomic;
use crate::month::Month;
use crate::output::report::{self, CogRaster};

/// Bumped whenever the generator's output changes, so cached copies of an old sample are not reused.
pub const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// `[west, south, east, north]` of the AOI the scenes must cover, degrees.
    pub bbox: [f64; 4],
    /// First acquisition date.
    pub first: NaiveDate,
    /// Last acquisition date (included when on the revisit cycle).
    pub last: NaiveDate,
    /// Days between acquisitions (Sentinel-2A and -2B together: 5).
    pub revisit_days: i64,
    /// What happens in it.
    pub scenario: Scenario,
}

/// What the generated series holds. `Demo` is the bundled sample; the others are the hard cases
/// a detector must get right, each on the same landscape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 17 buildings, two cleared-but-unbuilt sites, one demolition.
    #[default]
    Demo,
    /// No construction at all: rice parcels cycling flooded, green and bare, river banks.
    NoConstruction,
    /// No construction, and 35% of the items from 2022-01-25 on carry a wrong offset flag.
    WrongOffsetFlags,
    /// No construction, persistent unflagged haze in most scenes and mostly unflagged cloud edges.
    HazeAndCloudEdges,
    /// One building finished in August 2022, in the middle of the monsoon.
    MonsoonBuilding,
    /// One bright white roof that the SCL calls cloud in every scene once it stands.
    RoofCalledCloud,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            seed: 2024,
            bbox: [98.49, 16.67, 98.535, 16.71],
            first: NaiveDate::from_ymd_opt(2021, 7, 2).expect("valid"),
            last: NaiveDate::from_ymd_opt(2023, 6, 30).expect("valid"),
            revisit_days: 5,
            scenario: Scenario::Demo,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct SampleSummary {
    /// Scenes (STAC items) written.
    pub scenes: usize,
    /// Events recorded in the truth file.
    pub events: usize,
    /// The catalog to scan.
    pub catalog: PathBuf,
    /// The truth file.
    pub truth: PathBuf,
}

type Spectrum = [f32; 6];
const FOREST_WET: Spectrum = [0.025, 0.055, 0.030, 0.33, 0.16, 0.070];
const FOREST_DRY: Spectrum = [0.030, 0.055, 0.040, 0.27, 0.19, 0.090];
const RICE_GREEN: Spectrum = [0.035, 0.075, 0.045, 0.38, 0.20, 0.090];
const RICE_YOUNG: Spectrum = [0.050, 0.070, 0.050, 0.20, 0.10, 0.050];
const FLOODED: Spectrum = [0.060, 0.070, 0.060, 0.10, 0.05, 0.030];
const STUBBLE: Spectrum = [0.070, 0.100, 0.130, 0.22, 0.30, 0.230];
const PLOWED: Spectrum = [0.055, 0.075, 0.100, 0.17, 0.24, 0.190];
const WATER: Spectrum = [0.070, 0.085, 0.075, 0.045, 0.015, 0.008];
const LATERITE: Spectrum = [0.070, 0.100, 0.165, 0.23, 0.33, 0.280];
const ROOF_GREY: Spectrum = [0.150, 0.160, 0.170, 0.22, 0.26, 0.230];
const ROOF_BLUE: Spectrum = [0.190, 0.170, 0.110, 0.21, 0.19, 0.150];
const ROOF_WHITE: Spectrum = [0.240, 0.250, 0.260, 0.30, 0.31, 0.270];
const ROOF_RED: Spectrum = [0.080, 0.090, 0.180, 0.24, 0.29, 0.240];
const SAND: Spectrum = [0.120, 0.140, 0.160, 0.20, 0.26, 0.220];
const HAZE: Spectrum = [0.28, 0.26, 0.24, 0.22, 0.15, 0.10];
const CLOUD: Spectrum = [0.42, 0.42, 0.43, 0.46, 0.36, 0.26];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    Forest,
    Field,
    Water,
    /// River bank: exposed sand in the dry season, water in the wet season.
    Bank,
    Town,
    Hill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Construction,
    ClearingOnly,
    Demolition,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Construction => "construction",
            Kind::ClearingOnly => "clearing_only",
            Kind::Demolition => "demolition",
        }
    }
}

struct Event {
    kind: Kind,
    outline: Polygon<f64>,
    /// (pixel, covered fraction) on the 10 m scene grid.
    coverage: Vec<(usize, f32)>,
    /// Month index from which the site is bare soil.
    cleared: i32,
    /// Month index from which the roof stands (construction only).
    completed: Option<i32>,
    roof: Spectrum,
}

struct World {
    epsg: u32,
    x0: f64,
    y0: f64,
    width: usize,
    height: usize,
    cover: Vec<Cover>,
    /// Static mixture for town and hill pixels.
    fixed: Vec<Spectrum>,
    /// Per parcel: planting offset in months and a brightness factor.
    parcels: Vec<(i32, f32)>,
    /// Parcel of each pixel.
    parcel: Vec<usize>,
    events: Vec<Event>,
    first_month: Month,
}

fn mix(a: Spectrum, b: Spectrum, f: f32) -> Spectrum {
    std::array::from_fn(|i| a[i] * (1.0 - f) + b[i] * f)
}

fn field_spectrum(month: u32) -> Spectrum {
    match month {
        6 => FLOODED,
        7 => mix(FLOODED, RICE_YOUNG, 0.6),
        8..=10 => RICE_GREEN,
        11 => mix(RICE_GREEN, STUBBLE, 0.7),
        12 | 1..=4 => STUBBLE,
        _ => PLOWED,
    }
}

/// Scene cloud fraction by month: dry season mostly clear, monsoon mostly cloudy.
fn cloud_fraction(month: u32, rng: &mut ChaCha8Rng) -> f64 {
    let (clear_chance, lo, hi) = match month {
        1..=4 => (0.5, 0.0, 0.12),
        5 => (0.1, 0.3, 0.8),
        6..=9 => (0.0, 0.6, 1.0),
        10 => (0.1, 0.3, 0.9),
        _ => (0.35, 0.0, 0.3),
    };
    if rng.gen_bool(clear_chance) {
        0.0
    } else {
        rng.gen_range(lo..hi)
    }
}

impl World {
    fn build(spec: &SampleSpec) -> Result<World> {
        let epsg = crate::grid::utm_epsg((spec.bbox[0] + spec.bbox[2]) / 2.0, (spec.bbox[1] + spec.bbox[3]) / 2.0);
        let to_utm = Projector::new(4326, epsg)?;
        let corners = [
            (spec.bbox[0], spec.bbox[1]),
            (spec.bbox[2], spec.bbox[1]),
            (spec.bbox[2], spec.bbox[3]),
            (spec.bbox[0], spec.bbox[3]),
        ];
        let utm: Vec<Coord<f64>> = corners
            .iter()
            .map(|&(x, y)| to_utm.coord(Coord { x, y }))
            .collect::<Result<_>>()?;
        let margin = 300.0;
        let x0 = ((utm.iter().map(|c| c.x).fold(f64::MAX, f64::min) - margin) / 20.0).floor() * 20.0;
        let x1 = ((utm.iter().map(|c| c.x).fold(f64::MIN, f64::max) + margin) / 20.0).ceil() * 20.0;
        let y0 = ((utm.iter().map(|c| c.y).fold(f64::MIN, f64::max) + margin) / 20.0).ceil() * 20.0;
        let y1 = ((utm.iter().map(|c| c.y).fold(f64::MAX, f64::min) - margin) / 20.0).floor() * 20.0;
        let (width, height) = (((x1 - x0) / 10.0) as usize, ((y0 - y1) / 10.0) as usize);
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let terrain = Fbm::<Perlin>::new(spec.seed as u32).set_octaves(4).set_frequency(1.0);
        let mut cover = vec![Cover::Field; width * height];
        let mut fixed = vec![[0.0; 6]; width * height];
        let (w, h) = (width as f64, height as f64);
        // Rice parcels of ~140 m x 110 m, each planted up to a month early or late, each its own
        // shade; town blocks of 30 m x 30 m, each with one kind of roof.
        let (pw, ph) = (width / 14 + 1, height / 11 + 1);
        let parcels: Vec<(i32, f32)> = (0..pw * ph)
            .map(|_| ([-1, 0, 0, 1][rng.gen_range(0..4)], rng.gen_range(0.88..1.12)))
            .collect();
        let parcel = (0..width * height)
            .map(|p| ((p / width) / 11) * pw + (p % width) / 14)
            .collect();
        let (bw, bh) = (width / 3 + 1, height / 3 + 1);
        let blocks: Vec<(Spectrum, f32)> = (0..bw * bh)
            .map(|_| {
                let roof = [ROOF_GREY, ROOF_RED, ROOF_RED, ROOF_WHITE, ROOF_BLUE][rng.gen_range(0..5)];
                (roof, rng.gen_range(0.3..0.9))
            })
            .collect();
        for r in 0..height {
            for c in 0..width {
                let p = r * width + c;
                let (x, y) = (c as f64, r as f64);
                let river = 0.72 * w + 18.0 * (y / 37.0).sin() + 9.0 * (y / 13.0).cos();
                let t = terrain.get([x / 160.0, y / 160.0]);
                let town = ((x - 0.55 * w) / (0.13 * w)).powi(2) + ((y - 0.5 * h) / (0.2 * h)).powi(2) < 1.0;
                let bank = (y / 45.0).sin() > 0.55;
                cover[p] = if (x - river).abs() < 3.5 {
                    Cover::Water
                } else if (x - river).abs() < 7.0 && bank {
                    Cover::Bank
                } else if town && x < river - 6.0 {
                    Cover::Town
                } else if x < 0.22 * w || t > 0.35 {
                    Cover::Forest
                } else if t < -0.42 {
                    Cover::Hill
                } else {
                    Cover::Field
                };
                fixed[p] = match cover[p] {
                    Cover::Town => {
                        let (roof, share) = blocks[(r / 3) * bw + c / 3];
                        mix(
                            mix(FOREST_WET, LATERITE, 0.4),
                            roof,
                            (share + rng.gen_range(-0.08..0.08)).clamp(0.0, 1.0),
                        )
                    }
                    Cover::Hill => mix(LATERITE, FOREST_DRY, rng.gen_range(0.0..0.35)),
                    _ => [0.0; 6],
                };
            }
        }
        let first_month = Month::of(spec.first);
        let n_months = first_month.until(Month::of(spec.last)) + 1;
        let mut world = World {
            epsg,
            x0,
            y0,
            width,
            height,
            cover,
            fixed,
            parcels,
            parcel,
            events: Vec::new(),
            first_month,
        };
        world.place_events(&mut rng, n_months, spec.scenario);
        Ok(world)
    }

    fn place_events(&mut self, rng: &mut ChaCha8Rng, n_months: i32, scenario: Scenario) {
        // (width m, length m, kind). Sizes from a single 300 m² house to a 3 ha compound block.
        let demo = [
            (150.0, 200.0, Kind::Construction),
            (120.0, 160.0, Kind::Construction),
            (100.0, 150.0, Kind::Construction),
            (80.0, 100.0, Kind::Construction),
            (60.0, 90.0, Kind::Construction),
            (90.0, 60.0, Kind::Construction),
            (70.0, 70.0, Kind::Construction),
            (55.0, 80.0, Kind::Construction),
            (45.0, 70.0, Kind::Construction),
            (50.0, 60.0, Kind::Construction),
            (40.0, 55.0, Kind::Construction),
            (40.0, 40.0, Kind::Construction),
            (35.0, 40.0, Kind::Construction),
            (30.0, 45.0, Kind::Construction),
            (32.0, 38.0, Kind::Construction),
            (20.0, 30.0, Kind::Construction),
            (15.0, 20.0, Kind::Construction),
            (80.0, 90.0, Kind::ClearingOnly),
            (70.0, 110.0, Kind::ClearingOnly),
            (60.0, 60.0, Kind::Demolition),
        ];
        let plan: Vec<(f64, f64, Kind)> = match scenario {
            Scenario::Demo => demo.to_vec(),
            Scenario::MonsoonBuilding | Scenario::RoofCalledCloud => vec![(80.0, 100.0, Kind::Construction)],
            _ => Vec::new(),
        };
        let mut centres: Vec<(f64, f64, f64)> = Vec::new();
        for (i, &(wm, lm, kind)) in plan.iter().enumerate() {
            let radius = (wm * wm + lm * lm).sqrt() / 2.0;
            let want = if kind == Kind::Demolition {
                [Cover::Town]
            } else {
                [Cover::Field]
            };
            let (cx, cy) = loop {
                let cx = rng.gen_range(60.0..(self.width as f64 * 10.0 - 60.0));
                let cy = rng.gen_range(60.0..(self.height as f64 * 10.0 - 60.0));
                let p = (cy / 10.0) as usize * self.width + (cx / 10.0) as usize;
                let ok_cover = want.contains(&self.cover[p])
                    || (kind == Kind::Construction && i % 3 == 0 && self.cover[p] == Cover::Forest);
                let far = centres
                    .iter()
                    .all(|&(x, y, r)| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() > r + radius + 40.0);
                // Keep sites off the river and inside the AOI (the scene has a 300 m margin).
                let inside = cx > 350.0 + radius
                    && cx < self.width as f64 * 10.0 - 350.0 - radius
                    && cy > 350.0 + radius
                    && cy < self.height as f64 * 10.0 - 350.0 - radius;
                if ok_cover && far && inside {
                    break (cx, cy);
                }
            };
            centres.push((cx, cy, radius));
            let angle: f64 = rng.gen_range(-0.5..0.5);
            let (s, c) = angle.sin_cos();
            let corner = |dx: f64, dy: f64| Coord {
                x: cx + dx * c - dy * s,
                y: cy + dx * s + dy * c,
            };
            let (hw, hl) = (wm / 2.0, lm / 2.0);
            // Outline in scene metres from the top-left corner, y down.
            let local = Polygon::new(
                LineString::from(vec![
                    corner(-hw, -hl),
                    corner(hw, -hl),
                    corner(hw, hl),
                    corner(-hw, hl),
                    corner(-hw, -hl),
                ]),
                vec![],
            );
            let coverage = self.coverage(&local);
            let cleared = if kind == Kind::Demolition {
                rng.gen_range(8..n_months - 4)
            } else {
                rng.gen_range(2..n_months - 8)
            };
            // Event 4 is finished in the middle of the monsoon on purpose.
            let completed = match kind {
                Kind::Construction if i == 4 || scenario == Scenario::MonsoonBuilding => {
                    Some(self.first_month.until(Month { year: 2022, month: 8 }))
                }
                Kind::Construction => Some((cleared + rng.gen_range(1..4)).min(n_months - 4)),
                _ => None,
            };
            let cleared = completed.map_or(cleared, |t| cleared.min(t - 1));
            let roof = [ROOF_GREY, ROOF_BLUE, ROOF_WHITE, ROOF_BLUE][rng.gen_range(0..4)];
            let roof: Spectrum = std::array::from_fn(|b| roof[b] * rng.gen_range(0.92..1.08));
            let roof = if scenario == Scenario::RoofCalledCloud {
                ROOF_WHITE
            } else {
                roof
            };
            // Scene-local metres (y down) to map coordinates.
            let outline = local.map_coords(|c| Coord {
                x: self.x0 + c.x,
                y: self.y0 - c.y,
            });
            self.events.push(Event {
                kind,
                outline,
                coverage,
                cleared,
                completed,
                roof,
            });
        }
    }

    /// Fraction of each 10 m pixel inside `local` (4 x 4 samples a pixel).
    fn coverage(&self, local: &Polygon<f64>) -> Vec<(usize, f32)> {
        use geo::BoundingRect;
        let r = local.bounding_rect().expect("non-empty");
        let (c0, c1) = ((r.min().x / 10.0).floor() as usize, (r.max().x / 10.0).ceil() as usize);
        let (r0, r1) = ((r.min().y / 10.0).floor() as usize, (r.max().y / 10.0).ceil() as usize);
        let mut out = Vec::new();
        for row in r0..r1.min(self.height) {
            for col in c0..c1.min(self.width) {
                let inside = (0..16)
                    .filter(|k| {
                        let x = col as f64 * 10.0 + 1.25 + 2.5 * (k % 4) as f64;
                        let y = row as f64 * 10.0 + 1.25 + 2.5 * (k / 4) as f64;
                        local.contains(&Point::new(x, y))
                    })
                    .count();
                if inside > 0 {
                    out.push((row * self.width + col, inside as f32 / 16.0));
                }
            }
        }
        out
    }

    /// True surface reflectance of every 10 m pixel in a month.
    fn surface(&self, month_index: i32, month: u32) -> Vec<Spectrum> {
        let forest = if (2..=4).contains(&month) {
            FOREST_DRY
        } else {
            FOREST_WET
        };
        let fields: [Spectrum; 3] =
            std::array::from_fn(|k| field_spectrum((month as i32 + k as i32 - 1 - 1).rem_euclid(12) as u32 + 1));
        let dry = matches!(month, 12 | 1..=4);
        let mut s: Vec<Spectrum> = self
            .cover
            .iter()
            .zip(&self.fixed)
            .zip(&self.parcel)
            .map(|((c, f), &parcel)| match c {
                Cover::Forest => forest,
                Cover::Field => {
                    let (phase, gain) = self.parcels[parcel];
                    fields[(phase + 1) as usize].map(|v| v * gain)
                }
                Cover::Water => WATER,
                Cover::Bank => {
                    if dry {
                        SAND
                    } else {
                        WATER
                    }
                }
                Cover::Town | Cover::Hill => *f,
            })
            .collect();
        for e in &self.events {
            if month_index < e.cleared {
                continue;
            }
            let built = e.completed.is_some_and(|t| month_index >= t);
            let top = if built { e.roof } else { LATERITE };
            for &(p, f) in &e.coverage {
                s[p] = mix(s[p], top, f);
            }
        }
        s
    }
}

/// One generated acquisition's facts that the truth file needs.
struct Acquisition {
    date: NaiveDate,
    /// Per event: was its centre seen clearly?
    clear_over_event: Vec<bool>,
}

/// Generates the sample into `out` (created if needed).
pub fn generate(out: &Path, spec: &SampleSpec) -> Result<SampleSummary> {
    let world = World::build(spec)?;
    let mut dates = Vec::new();
    let mut d = spec.first;
    while d <= spec.last {
        dates.push(d);
        d += Duration::days(spec.revisit_days);
    }
    let acquisitions: Vec<Acquisition> = dates
        .par_iter()
        .enumerate()
        .map(|(i, &date)| write_scene(out, spec, &world, i, date))
        .collect::<Result<_>>()?;
    let mut links = vec![json!({"rel": "root", "href": "./catalog.json", "type": "application/json"})];
    for (i, &date) in dates.iter().enumerate() {
        let id = item_id(i, date);
        links.push(json!({"rel": "item", "href": format!("./items/{id}/{id}.json"), "type": "application/geo+json"}));
    }
    let catalog = json!({
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "compound-watch-sample-myawaddy",
        "title": "SYNTHETIC Sentinel-2 L2A sample for the Myawaddy AOI",
        "description": "Synthetic imagery generated by `compound-watch sample`. Not real Sentinel-2 data: for demos and tests only. Earth Search sentinel-2-l2a conventions.",
        "links": links,
    });
    let catalog_path = out.join("catalog.json");
    atomic::write_json(&catalog_path, &catalog)?;
    let truth_path = out.join("truth.geojson");
    write_truth(&truth_path, &world, &acquisitions)?;
    crate::output::qgis::style::write_qml(&truth_path, &crate::output::qgis::style::truth_style())?;
    atomic::write(
        &out.join("README.md"),
        b"# SYNTHETIC sample\n\nGenerated by `compound-watch sample`. These are not real Sentinel-2 images: the landscape,\nclouds and construction are simulated, and `truth.geojson` records what was built and when.\nRegenerate with `compound-watch sample --out <dir>`; the output is the same every time.\n",
    )?;
    Ok(SampleSummary {
        scenes: dates.len(),
        events: world.events.len(),
        catalog: catalog_path,
        truth: truth_path,
    })
}

fn item_id(i: usize, date: NaiveDate) -> String {
    let platform = if i.is_multiple_of(2) { "S2A" } else { "S2B" };
    format!("{platform}_47QNU_{}_0_L2A", date.format("%Y%m%d"))
}

fn write_scene(out: &Path, spec: &SampleSpec, world: &World, index: usize, date: NaiveDate) -> Result<Acquisition> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_mul(1_000_003).wrapping_add(index as u64 + 1));
    let month = Month::of(date);
    let month_index = world.first_month.until(month);
    let (w, h) = (world.width, world.height);
    let surface = world.surface(month_index, date.month());

    // Clouds: a fractal field thresholded to this scene's cloud fraction; thickness grows inward,
    // so edges are thin; shadows are the same field displaced.
    let fraction = cloud_fraction(date.month(), &mut rng);
    let field = Fbm::<Perlin>::new(rng.gen()).set_octaves(5).set_frequency(1.0);
    let raw: Vec<f64> = (0..w * h)
        .map(|p| field.get([(p % w) as f64 / 120.0, (p / w) as f64 / 120.0]))
        .collect();
    let thickness: Vec<f32> = if fraction <= 0.0 {
        vec![0.0; w * h]
    } else {
        let mut sorted = raw.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let k = (((1.0 - fraction) * (w * h) as f64) as usize).min(w * h - 1);
        let threshold = sorted[k];
        raw.iter()
            .map(|&v| (((v - threshold) / 0.12).clamp(0.0, 1.0)) as f32)
            .collect()
    };
    let (sdx, sdy) = (-14isize, 9isize);
    let shadow = |p: usize| -> f32 {
        let (r, c) = ((p / w) as isize - sdy, (p % w) as isize - sdx);
        if r < 0 || c < 0 || r >= h as isize || c >= w as isize {
            0.0
        } else {
            thickness[r as usize * w + c as usize]
        }
    };
    let roofs_called_cloud = rng.gen_bool(0.15) || spec.scenario == Scenario::RoofCalledCloud;
    let hazy = spec.scenario == Scenario::HazeAndCloudEdges;
    // Share of thin cloud edges (thickness 0.1-0.3) that SCL flags.
    let edge_flagged = if hazy { 0.1 } else { 0.5 };
    let swath_edge = if rng.gen_bool(0.1) {
        Some(rng.gen_range(0.6..1.3))
    } else {
        None
    };
    let gain: [f32; 6] = std::array::from_fn(|_| 1.0 + Normal::new(0.0, 0.015).expect("valid").sample(&mut rng));
    let noise = Normal::new(0.0f32, 0.004).expect("valid");
    let haze = if hazy && rng.gen_bool(0.7) {
        rng.gen_range(0.03..0.2)
    } else {
        0.0
    };

    let mut refl = vec![[0f32; 6]; w * h];
    let mut scl10 = vec![0u16; w * h];
    for p in 0..w * h {
        let (r, c) = (p / w, p % w);
        if swath_edge.is_some_and(|e| (c as f64 / w as f64) + 0.6 * (r as f64 / h as f64) > e) {
            continue; // no data: outside the swath
        }
        let t = thickness[p];
        let ts = shadow(p);
        let ground = surface[p];
        let lit: Spectrum = std::array::from_fn(|b| ground[b] * (1.0 - 0.65 * ts));
        let seen = mix(mix(lit, HAZE, haze), CLOUD, t);
        refl[p] = std::array::from_fn(|b| (seen[b] * gain[b] + noise.sample(&mut rng)).max(0.0005));
        let ndvi = (ground[3] - ground[2]) / (ground[3] + ground[2]);
        let mndwi = (ground[1] - ground[4]) / (ground[1] + ground[4]);
        let bright = (ground[0] + ground[1] + ground[2]) / 3.0 > 0.16;
        let surface_class = if mndwi > 0.3 {
            6
        } else if ndvi > 0.4 {
            4
        } else if rng.gen_bool(0.01) {
            7
        } else {
            5
        };
        let u: f64 = rng.gen();
        scl10[p] = if t > 0.6 {
            9
        } else if t > 0.3 || (t > 0.1 && u < edge_flagged) {
            8
        } else if ts > 0.4 || (ts > 0.15 && u < 0.5) {
            3
        } else if bright && roofs_called_cloud {
            9
        } else {
            surface_class
        };
    }

    // Offset regime: from 2022-01-25 most items keep the +1000 DN offset; some are harmonized; a
    // few carry a flag that says the opposite of their pixels.
    let era = date >= crate::detect::reflectance::offset_start();
    let (offset_dn, flag, baseline) = if !era {
        (0u16, Some(false), "03.01")
    } else {
        let baseline = if date.year() == 2022 { "04.00" } else { "05.09" };
        let u: f64 = rng.gen();
        let (raw, harmonized, raw_flag_wrong) = if spec.scenario == Scenario::WrongOffsetFlags {
            (0.4, 0.65, 0.85)
        } else {
            (0.65, 0.9, 0.95)
        };
        if u < raw {
            (1000, Some(false), baseline)
        } else if u < harmonized {
            (0, Some(true), baseline)
        } else if u < raw_flag_wrong {
            (1000, Some(true), baseline)
        } else {
            (0, Some(false), baseline)
        }
    };
    let dn = |v: f32| -> u16 { ((v * 10_000.0).round() as i64 + offset_dn as i64).clamp(1, 65_535) as u16 };
    let valid = |p: usize| refl[p][0] > 0.0;
    let band10 = |b: usize| -> Vec<u16> { (0..w * h).map(|p| if valid(p) { dn(refl[p][b]) } else { 0 }).collect() };
    let (w2, h2) = (w / 2, h / 2);
    let band20 = |b: usize| -> Vec<u16> {
        (0..w2 * h2)
            .map(|q| {
                let (r, c) = (2 * (q / w2), 2 * (q % w2));
                let ps = [r * w + c, r * w + c + 1, (r + 1) * w + c, (r + 1) * w + c + 1];
                if ps.iter().all(|&p| valid(p)) {
                    dn(ps.iter().map(|&p| refl[p][b]).sum::<f32>() / 4.0)
                } else {
                    0
                }
            })
            .collect()
    };
    let scl20: Vec<u16> = (0..w2 * h2)
        .map(|q| {
            let p = 2 * (q / w2) * w + 2 * (q % w2);
            if valid(p) {
                scl10[p]
            } else {
                0
            }
        })
        .collect();

    let id = item_id(index, date);
    let dir = out.join("items").join(&id);
    let gt10 = [world.x0, 10.0, 0.0, world.y0, 0.0, -10.0];
    let gt20 = [world.x0, 20.0, 0.0, world.y0, 0.0, -20.0];
    let bands: [(&str, &str, Vec<u16>, bool); 7] = [
        ("blue", "B02", band10(0), true),
        ("green", "B03", band10(1), true),
        ("red", "B04", band10(2), true),
        ("nir", "B08", band10(3), true),
        ("swir16", "B11", band20(4), false),
        ("swir22", "B12", band20(5), false),
        ("scl", "SCL", scl20, false),
    ];
    let mut assets = serde_json::Map::new();
    for (key, name, data, ten) in &bands {
        let (gt, width, height) = if *ten { (gt10, w, h) } else { (gt20, w2, h2) };
        report::write_cog(
            &dir.join(format!("{name}.tif")),
            &CogRaster {
                epsg: world.epsg,
                geo_transform: gt,
                width,
                height,
                bands: vec![(data, name)],
                rgb: false,
                description: "SYNTHETIC compound-watch sample",
                metadata: vec![],
            },
        )?;
        assets.insert(
            key.to_string(),
            json!({"href": format!("./{name}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"], "gsd": if *ten {10} else {20}}),
        );
    }
    let to_wgs84 = Projector::new(world.epsg, 4326)?;
    let (x1, y1) = (world.x0 + w as f64 * 10.0, world.y0 - h as f64 * 10.0);
    let ring: Vec<Coord<f64>> = [
        (world.x0, y1),
        (x1, y1),
        (x1, world.y0),
        (world.x0, world.y0),
        (world.x0, y1),
    ]
    .iter()
    .map(|&(x, y)| to_wgs84.coord(Coord { x, y }))
    .collect::<Result<_>>()?;
    let (lons, lats): (Vec<f64>, Vec<f64>) = ring.iter().map(|c| (c.x, c.y)).unzip();
    let bbox = [
        lons.iter().copied().fold(f64::MAX, f64::min),
        lats.iter().copied().fold(f64::MAX, f64::min),
        lons.iter().copied().fold(f64::MIN, f64::max),
        lats.iter().copied().fold(f64::MIN, f64::max),
    ];
    let datetime = Utc.from_utc_datetime(&date.and_hms_opt(3, 56, 10).expect("valid"));
    let cloud_cover =
        (thickness.iter().filter(|&&t| t > 0.1).count() as f64 / (w * h) as f64 * 10_000.0).round() / 100.0;
    let item = json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": id,
        // Scenarios share item ids (same dates), so each gets its own collection and cache entries.
        "collection": match spec.scenario {
            Scenario::Demo => "sentinel-2-l2a".to_owned(),
            other => format!("sentinel-2-l2a-synthetic-{}", serde_json::to_value(other).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
        },
        "geometry": {"type": "Polygon", "coordinates": [ring.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>()]},
        "bbox": bbox,
        "properties": {
            "datetime": datetime.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "platform": if index.is_multiple_of(2) { "sentinel-2a" } else { "sentinel-2b" },
            "constellation": "sentinel-2",
            "eo:cloud_cover": cloud_cover,
            "proj:epsg": world.epsg,
            "s2:mgrs_tile": "47QNU",
            "s2:processing_baseline": baseline,
            "earthsearch:boa_offset_applied": flag,
            "compound_watch:synthetic": true,
        },
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../../catalog.json", "type": "application/json"},
        ],
        "assets": assets,
    });
    atomic::write_json(&dir.join(format!("{id}.json")), &item)?;

    let clear_over_event = world
        .events
        .iter()
        .map(|e| {
            let (p, _) = e
                .coverage
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0));
            valid(p) && thickness[p] < 0.1 && shadow(p) < 0.15
        })
        .collect();
    Ok(Acquisition { date, clear_over_event })
}

fn write_truth(path: &Path, world: &World, acquisitions: &[Acquisition]) -> Result<()> {
    let to_wgs84 = Projector::new(world.epsg, 4326)?;
    let mut features = Vec::new();
    for (i, e) in world.events.iter().enumerate() {
        let outline = report::wgs84_outline(&e.outline, &to_wgs84)?;
        let month = |m: i32| world.first_month.plus(m).first_day().to_string();
        let first_clear_after = e.completed.and_then(|t| {
            let start = world.first_month.plus(t).first_day();
            acquisitions
                .iter()
                .find(|a| a.date >= start && a.clear_over_event[i])
                .map(|a| Month::of(a.date).first_day().to_string())
        });
        features.push(json!({
            "type": "Feature",
            "id": format!("truth-{i:02}"),
            "geometry": geojson::Geometry::from(&outline),
            "properties": {
                "kind": e.kind.name(),
                "area_m2": (report::area_m2(&outline) * 10.0).round() / 10.0,
                "cleared": month(e.cleared),
                "completed": e.completed.map(month),
                "first_clear_after": first_clear_after,
            },
        }));
    }
    let doc = json!({
        "type": "FeatureCollection",
        "features": features,
        "compound_watch": {"synthetic": true, "note": "What the generator built. `completed` is the month the roof appears; `first_clear_after` the first month with a clear view of it, the earliest any detector could date it."},
    });
    atomic::write_json(path, &doc)
}

/// How a report compares with the sample's truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
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

/// The polygons of a report or truth feature (empty for any other geometry).
pub fn polygons_of(feature: &geojson::Feature) -> MultiPolygon<f64> {
    feature
        .geometry
        .as_ref()
        .and_then(|g| geo_types::Geometry::<f64>::try_from(g.clone()).ok())
        .map(|g| match g {
            geo_types::Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
            geo_types::Geometry::MultiPolygon(m) => m,
            _ => MultiPolygon::new(vec![]),
        })
        .unwrap_or_else(|| MultiPolygon::new(vec![]))
}

fn prop<'a>(f: &'a geojson::Feature, key: &str) -> Option<&'a Value> {
    f.properties.as_ref().and_then(|p| p.get(key))
}

/// Scores a report against a truth file: an object counts as found, and a detection as correct,
/// when they overlap by at least 30% of the smaller of the two.
pub fn score(report: &geojson::FeatureCollection, truth: &geojson::FeatureCollection, min_area_m2: f64) -> Score {
    let detections: Vec<(MultiPolygon<f64>, Option<Month>)> = report
        .features
        .iter()
        .map(|f| {
            let month = prop(f, "first_detected")
                .and_then(Value::as_str)
                .and_then(|s| s.get(..7))
                .and_then(|s| s.parse().ok());
            (polygons_of(f), month)
        })
        .collect();
    let built: Vec<(&geojson::Feature, MultiPolygon<f64>)> = truth
        .features
        .iter()
        .filter(|f| prop(f, "kind").and_then(Value::as_str) == Some("construction"))
        .map(|f| (f, polygons_of(f)))
        .collect();
    let overlaps = |a: &MultiPolygon<f64>, b: &MultiPolygon<f64>| {
        let inter = a.intersection(b).unsigned_area();
        inter > 0.0 && inter >= 0.3 * a.unsigned_area().min(b.unsigned_area())
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
            let seen: Option<Month> = prop(f, "first_clear_after")
                .and_then(Value::as_str)
                .and_then(|s| s.get(..7))
                .and_then(|s| s.parse().ok());
            if let (Some(m), Some(s)) = (month, seen) {
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
    Score {
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
    use super::*;

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
        let s = score(&report, &truth, 1_000.0);
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
        let s = score(&report, &truth, 1_000.0);
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
        let s = score(&collection(vec![]), &truth, 1_000.0);
        assert_eq!((s.recall, s.precision, s.dating), (0.0, 1.0, 1.0));
    }
}

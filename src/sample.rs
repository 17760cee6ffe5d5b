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
use geo::{Contains, Coord, LineString, MapCoords, Point, Polygon};
use noise::{Fbm, MultiFractal, NoiseFn, Perlin};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

impl Scenario {
    /// Every scenario, the demo first.
    pub const ALL: [Scenario; 6] = [
        Scenario::Demo,
        Scenario::NoConstruction,
        Scenario::WrongOffsetFlags,
        Scenario::HazeAndCloudEdges,
        Scenario::MonsoonBuilding,
        Scenario::RoofCalledCloud,
    ];

    /// The name on the command line and in collection ids and folder names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Demo => "demo",
            Scenario::NoConstruction => "no-construction",
            Scenario::WrongOffsetFlags => "wrong-offset-flags",
            Scenario::HazeAndCloudEdges => "haze-and-cloud-edges",
            Scenario::MonsoonBuilding => "monsoon-building",
            Scenario::RoofCalledCloud => "roof-called-cloud",
        }
    }

    /// What the series holds, in a line.
    pub fn about(self) -> &'static str {
        match self {
            Scenario::Demo => "17 buildings, two cleared-but-unbuilt sites, one demolition",
            Scenario::NoConstruction => {
                "No construction at all: rice parcels cycling flooded, green and bare, river banks"
            }
            Scenario::WrongOffsetFlags => {
                "No construction, and 35% of the items from 2022-01-25 on carry a wrong offset flag"
            }
            Scenario::HazeAndCloudEdges => {
                "No construction, persistent unflagged haze in most scenes and mostly unflagged cloud edges"
            }
            Scenario::MonsoonBuilding => "One building finished in August 2022, in the middle of the monsoon",
            Scenario::RoofCalledCloud => "One bright white roof that the SCL calls cloud in every scene once it stands",
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;

    /// A scenario by its [`name`](Scenario::name); the error lists the names.
    fn from_str(text: &str) -> std::result::Result<Scenario, String> {
        Scenario::ALL.into_iter().find(|s| s.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            format!("{text:?} is not a scenario; one of {}", names.join(", "))
        })
    }
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

/// Metres of a scene pixel (the 10 m bands; the 20 m bands are 2 x 2 of them).
const PIXEL_M: f64 = 10.0;

/// Metres the scenes reach beyond the AOI's box on every side.
const SCENE_MARGIN_M: f64 = 300.0;

/// Scene edges snap to multiples of this many metres, so the 10 m and 20 m grids share them.
const SNAP_M: f64 = 20.0;

/// Rice parcels, in pixels wide and high (~140 m x 110 m).
const PARCEL_PX: (usize, usize) = (14, 11);

/// Town blocks, in pixels on a side (30 m); each has one kind of roof.
const TOWN_BLOCK_PX: usize = 3;

/// Sites keep this far from the scene edge, m: inside the AOI (the scene's 300 m margin) with 50 m
/// to spare.
const SITE_INSET_M: f64 = 350.0;

/// Site centres are drawn at least this far from the scene edge, m (then kept only if inside
/// [`SITE_INSET_M`]).
const DRAW_INSET_M: f64 = 60.0;

/// Metres kept free between two sites.
const SITE_GAP_M: f64 = 40.0;

/// The demo's events: (width m, length m, kind), from a single 300 m² house to a 3 ha compound
/// block.
const DEMO_PLAN: [(f64, f64, Kind); 20] = [
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

/// The demo event finished in the middle of the monsoon, on purpose.
const MONSOON_EVENT: usize = 4;

/// The scenes' extent: the AOI's box in UTM with [`SCENE_MARGIN_M`] around it, snapped to
/// [`SNAP_M`]; `(x0, y0)` is the top-left corner.
struct Frame {
    epsg: u32,
    x0: f64,
    y0: f64,
    width: usize,
    height: usize,
}

impl Frame {
    fn around(bbox: [f64; 4]) -> Result<Frame> {
        let epsg = crate::grid::utm_epsg((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
        let to_utm = Projector::new(4326, epsg)?;
        let corners = [
            (bbox[0], bbox[1]),
            (bbox[2], bbox[1]),
            (bbox[2], bbox[3]),
            (bbox[0], bbox[3]),
        ];
        let utm: Vec<Coord<f64>> = corners
            .iter()
            .map(|&(x, y)| to_utm.coord(Coord { x, y }))
            .collect::<Result<_>>()?;
        let min_x = utm.iter().map(|c| c.x).fold(f64::MAX, f64::min);
        let max_x = utm.iter().map(|c| c.x).fold(f64::MIN, f64::max);
        let max_y = utm.iter().map(|c| c.y).fold(f64::MIN, f64::max);
        let min_y = utm.iter().map(|c| c.y).fold(f64::MAX, f64::min);
        let x0 = ((min_x - SCENE_MARGIN_M) / SNAP_M).floor() * SNAP_M;
        let x1 = ((max_x + SCENE_MARGIN_M) / SNAP_M).ceil() * SNAP_M;
        let y0 = ((max_y + SCENE_MARGIN_M) / SNAP_M).ceil() * SNAP_M;
        let y1 = ((min_y - SCENE_MARGIN_M) / SNAP_M).floor() * SNAP_M;
        Ok(Frame {
            epsg,
            x0,
            y0,
            width: ((x1 - x0) / PIXEL_M) as usize,
            height: ((y0 - y1) / PIXEL_M) as usize,
        })
    }
}

/// The land cover of a pixel at column `x`, row `y` of a `w` x `h` scene with terrain height `t`:
/// a winding river in the east with sandy banks in places, a town west of it, forest in the west
/// and on high ground, laterite hills in the lows, rice fields elsewhere.
fn cover_at(x: f64, y: f64, w: f64, h: f64, t: f64) -> Cover {
    let river = 0.72 * w + 18.0 * (y / 37.0).sin() + 9.0 * (y / 13.0).cos();
    let town = ((x - 0.55 * w) / (0.13 * w)).powi(2) + ((y - 0.5 * h) / (0.2 * h)).powi(2) < 1.0;
    let bank = (y / 45.0).sin() > 0.55;
    if (x - river).abs() < 3.5 {
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
    }
}

/// The events a scenario holds: (width m, length m, kind).
fn plan(scenario: Scenario) -> Vec<(f64, f64, Kind)> {
    match scenario {
        Scenario::Demo => DEMO_PLAN.to_vec(),
        Scenario::MonsoonBuilding | Scenario::RoofCalledCloud => vec![(80.0, 100.0, Kind::Construction)],
        _ => Vec::new(),
    }
}

/// A `wm` x `lm` m rectangle centred on (`cx`, `cy`), turned by `angle` radians, in scene metres
/// from the top-left corner, y down.
fn rectangle(cx: f64, cy: f64, wm: f64, lm: f64, angle: f64) -> Polygon<f64> {
    let (s, c) = angle.sin_cos();
    let corner = |dx: f64, dy: f64| Coord {
        x: cx + dx * c - dy * s,
        y: cy + dx * s + dy * c,
    };
    let (hw, hl) = (wm / 2.0, lm / 2.0);
    Polygon::new(
        LineString::from(vec![
            corner(-hw, -hl),
            corner(hw, -hl),
            corner(hw, hl),
            corner(-hw, hl),
            corner(-hw, -hl),
        ]),
        vec![],
    )
}

/// A new roof: one of the common kinds, each band a little off; always the bright white one in
/// [`Scenario::RoofCalledCloud`] (drawn all the same, so the other draws stay where they were).
fn draw_roof(rng: &mut ChaCha8Rng, scenario: Scenario) -> Spectrum {
    let roof = [ROOF_GREY, ROOF_BLUE, ROOF_WHITE, ROOF_BLUE][rng.gen_range(0..4)];
    let roof: Spectrum = std::array::from_fn(|b| roof[b] * rng.gen_range(0.92..1.08));
    if scenario == Scenario::RoofCalledCloud {
        ROOF_WHITE
    } else {
        roof
    }
}

impl World {
    fn build(spec: &SampleSpec) -> Result<World> {
        let Frame {
            epsg,
            x0,
            y0,
            width,
            height,
        } = Frame::around(spec.bbox)?;
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        // Rice parcels, each planted up to a month early or late, each its own shade.
        let (pw, ph) = (width / PARCEL_PX.0 + 1, height / PARCEL_PX.1 + 1);
        let parcels: Vec<(i32, f32)> = (0..pw * ph)
            .map(|_| ([-1, 0, 0, 1][rng.gen_range(0..4)], rng.gen_range(0.88..1.12)))
            .collect();
        let parcel = (0..width * height)
            .map(|p| ((p / width) / PARCEL_PX.1) * pw + (p % width) / PARCEL_PX.0)
            .collect();
        let (cover, fixed) = lay_out(spec.seed, width, height, &mut rng);
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
        let mut centres: Vec<(f64, f64, f64)> = Vec::new();
        for (i, &(wm, lm, kind)) in plan(scenario).iter().enumerate() {
            let radius = (wm * wm + lm * lm).sqrt() / 2.0;
            let (cx, cy) = self.find_site(rng, i, kind, radius, &centres);
            centres.push((cx, cy, radius));
            let angle: f64 = rng.gen_range(-0.5..0.5);
            let local = rectangle(cx, cy, wm, lm, angle);
            let coverage = self.coverage(&local);
            let (cleared, completed) = self.timeline(rng, i, kind, scenario, n_months);
            let roof = draw_roof(rng, scenario);
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

    /// A centre, in scene metres, for event `i` of `radius` m: on the cover it needs (fields;
    /// every third building may be in forest; demolitions in town), [`SITE_GAP_M`] clear of the
    /// `centres` placed so far, off the river and inside the AOI. Draws until one fits.
    fn find_site(
        &self,
        rng: &mut ChaCha8Rng,
        i: usize,
        kind: Kind,
        radius: f64,
        centres: &[(f64, f64, f64)],
    ) -> (f64, f64) {
        let want = if kind == Kind::Demolition {
            [Cover::Town]
        } else {
            [Cover::Field]
        };
        let (width_m, height_m) = (self.width as f64 * PIXEL_M, self.height as f64 * PIXEL_M);
        loop {
            let cx = rng.gen_range(DRAW_INSET_M..(width_m - DRAW_INSET_M));
            let cy = rng.gen_range(DRAW_INSET_M..(height_m - DRAW_INSET_M));
            let p = (cy / PIXEL_M) as usize * self.width + (cx / PIXEL_M) as usize;
            let ok_cover = want.contains(&self.cover[p])
                || (kind == Kind::Construction && i.is_multiple_of(3) && self.cover[p] == Cover::Forest);
            let far = centres
                .iter()
                .all(|&(x, y, r)| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() > r + radius + SITE_GAP_M);
            let inside = cx > SITE_INSET_M + radius
                && cx < width_m - SITE_INSET_M - radius
                && cy > SITE_INSET_M + radius
                && cy < height_m - SITE_INSET_M - radius;
            if ok_cover && far && inside {
                return (cx, cy);
            }
        }
    }

    /// When event `i` happens, as month indices: the month the site is bare soil from, and (for
    /// construction) the month the roof stands from, at least a month later.
    fn timeline(
        &self,
        rng: &mut ChaCha8Rng,
        i: usize,
        kind: Kind,
        scenario: Scenario,
        n_months: i32,
    ) -> (i32, Option<i32>) {
        let cleared = if kind == Kind::Demolition {
            rng.gen_range(8..n_months - 4)
        } else {
            rng.gen_range(2..n_months - 8)
        };
        let completed = match kind {
            Kind::Construction if i == MONSOON_EVENT || scenario == Scenario::MonsoonBuilding => {
                Some(self.first_month.until(Month { year: 2022, month: 8 }))
            }
            Kind::Construction => Some((cleared + rng.gen_range(1..4)).min(n_months - 4)),
            _ => None,
        };
        (completed.map_or(cleared, |t| cleared.min(t - 1)), completed)
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

/// The land cover of every pixel, and the fixed spectrum of the town and hill pixels (zero
/// elsewhere): town blocks of [`TOWN_BLOCK_PX`] pixels, each with one kind of roof over a share of
/// it; hills of laterite with some dry forest.
fn lay_out(seed: u64, width: usize, height: usize, rng: &mut ChaCha8Rng) -> (Vec<Cover>, Vec<Spectrum>) {
    let terrain = Fbm::<Perlin>::new(seed as u32).set_octaves(4).set_frequency(1.0);
    let (bw, bh) = (width / TOWN_BLOCK_PX + 1, height / TOWN_BLOCK_PX + 1);
    let blocks: Vec<(Spectrum, f32)> = (0..bw * bh)
        .map(|_| {
            let roof = [ROOF_GREY, ROOF_RED, ROOF_RED, ROOF_WHITE, ROOF_BLUE][rng.gen_range(0..5)];
            (roof, rng.gen_range(0.3..0.9))
        })
        .collect();
    let mut cover = vec![Cover::Field; width * height];
    let mut fixed = vec![[0.0; 6]; width * height];
    let (w, h) = (width as f64, height as f64);
    for r in 0..height {
        for c in 0..width {
            let p = r * width + c;
            let (x, y) = (c as f64, r as f64);
            cover[p] = cover_at(x, y, w, h, terrain.get([x / 160.0, y / 160.0]));
            fixed[p] = match cover[p] {
                Cover::Town => {
                    let (roof, share) = blocks[(r / TOWN_BLOCK_PX) * bw + c / TOWN_BLOCK_PX];
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
    (cover, fixed)
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

/// Scene classification (SCL) classes the generator writes (the ESA L2A codes).
mod scl {
    pub(super) const CLOUD_SHADOW: u16 = 3;
    pub(super) const VEGETATION: u16 = 4;
    pub(super) const NOT_VEGETATED: u16 = 5;
    pub(super) const WATER: u16 = 6;
    pub(super) const UNCLASSIFIED: u16 = 7;
    pub(super) const CLOUD_MEDIUM: u16 = 8;
    pub(super) const CLOUD_HIGH: u16 = 9;
}

/// Cloud thinner than this can be seen through: it is not counted in `eo:cloud_cover`, and the
/// ground under it (out of shadow) is a clear view.
const THIN_CLOUD: f32 = 0.1;

/// Cloud thickness rises from 0 to 1 over this much of the cloud field above its threshold, so
/// cloud edges are thin.
const CLOUD_EDGE: f64 = 0.12;

/// Where a cloud's shadow falls from it, pixels (columns, rows): 140 m west, 90 m south.
const SHADOW_SHIFT: (isize, isize) = (-14, 9);

/// Ground in a shadow deeper than this is not a clear view.
const CLEAR_SHADOW: f32 = 0.15;

/// One acquisition's atmosphere and sensor, drawn from its own RNG: clouds and their displaced
/// shadows, haze, per-band gain, the swath edge, and how the SCL misjudges them.
struct Sky {
    width: usize,
    height: usize,
    /// Cloud thickness per 10 m pixel, 0 (none) to 1 (opaque).
    thickness: Vec<f32>,
    /// Whether the SCL calls bright surfaces (roofs) cloud in this scene.
    roofs_called_cloud: bool,
    /// Share of thin cloud edges (thickness 0.1-0.3) the SCL flags.
    edge_flagged: f64,
    /// No data beyond this diagonal (column share + 0.6 x row share), when the scene has a swath
    /// edge.
    swath_edge: Option<f64>,
    /// Per-band calibration gain.
    gain: [f32; 6],
    /// Share of unflagged haze mixed into every pixel.
    haze: f32,
}

impl Sky {
    /// Draws the sky of a scene on `date` (the draws in this order keep the sample unchanged).
    fn draw(spec: &SampleSpec, date: NaiveDate, width: usize, height: usize, rng: &mut ChaCha8Rng) -> Sky {
        let fraction = cloud_fraction(date.month(), rng);
        let thickness = cloud_thickness(fraction, width, height, rng);
        let roofs_called_cloud = rng.gen_bool(0.15) || spec.scenario == Scenario::RoofCalledCloud;
        let hazy = spec.scenario == Scenario::HazeAndCloudEdges;
        let edge_flagged = if hazy { 0.1 } else { 0.5 };
        let swath_edge = if rng.gen_bool(0.1) {
            Some(rng.gen_range(0.6..1.3))
        } else {
            None
        };
        let gain: [f32; 6] = std::array::from_fn(|_| 1.0 + Normal::new(0.0, 0.015).expect("valid").sample(rng));
        let haze = if hazy && rng.gen_bool(0.7) {
            rng.gen_range(0.03..0.2)
        } else {
            0.0
        };
        Sky {
            width,
            height,
            thickness,
            roofs_called_cloud,
            edge_flagged,
            swath_edge,
            gain,
            haze,
        }
    }

    /// Shadow depth at pixel `p`: the thickness of the cloud [`SHADOW_SHIFT`] away.
    fn shadow(&self, p: usize) -> f32 {
        let (w, h) = (self.width, self.height);
        let (sdx, sdy) = SHADOW_SHIFT;
        let (r, c) = ((p / w) as isize - sdy, (p % w) as isize - sdx);
        if r < 0 || c < 0 || r >= h as isize || c >= w as isize {
            0.0
        } else {
            self.thickness[r as usize * w + c as usize]
        }
    }

    /// Whether pixel `p` lies outside the swath (no data).
    fn outside_swath(&self, p: usize) -> bool {
        let (w, h) = (self.width, self.height);
        let (r, c) = (p / w, p % w);
        self.swath_edge
            .is_some_and(|e| (c as f64 / w as f64) + 0.6 * (r as f64 / h as f64) > e)
    }

    /// `eo:cloud_cover`: the percentage of pixels under more than thin cloud, two decimals.
    fn cloud_cover(&self) -> f64 {
        let (w, h) = (self.width, self.height);
        (self.thickness.iter().filter(|&&t| t > THIN_CLOUD).count() as f64 / (w * h) as f64 * 10_000.0).round() / 100.0
    }

    /// Whether the ground at pixel `p` is seen clearly: under thin cloud at most, out of shadow.
    fn clear_at(&self, p: usize) -> bool {
        self.thickness[p] < THIN_CLOUD && self.shadow(p) < CLEAR_SHADOW
    }
}

/// Cloud thickness per pixel: a fractal field thresholded so that `fraction` of the scene is
/// cloud, thickening inward over [`CLOUD_EDGE`]. The field is drawn even for a clear scene.
fn cloud_thickness(fraction: f64, w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let field = Fbm::<Perlin>::new(rng.gen()).set_octaves(5).set_frequency(1.0);
    let raw: Vec<f64> = (0..w * h)
        .map(|p| field.get([(p % w) as f64 / 120.0, (p / w) as f64 / 120.0]))
        .collect();
    if fraction <= 0.0 {
        return vec![0.0; w * h];
    }
    let mut sorted = raw.clone();
    sorted.sort_unstable_by(f64::total_cmp);
    let k = (((1.0 - fraction) * (w * h) as f64) as usize).min(w * h - 1);
    let threshold = sorted[k];
    raw.iter()
        .map(|&v| (((v - threshold) / CLOUD_EDGE).clamp(0.0, 1.0)) as f32)
        .collect()
}

/// What the sensor records over the true `surface` under `sky`: reflectance per pixel (all zero
/// outside the swath) and the 10 m scene classification.
fn observe(surface: &[Spectrum], sky: &Sky, rng: &mut ChaCha8Rng) -> (Vec<Spectrum>, Vec<u16>) {
    let noise = Normal::new(0.0f32, 0.004).expect("valid");
    let mut refl = vec![[0f32; 6]; surface.len()];
    let mut scl10 = vec![0u16; surface.len()];
    for p in 0..surface.len() {
        if sky.outside_swath(p) {
            continue;
        }
        let (t, ts, ground) = (sky.thickness[p], sky.shadow(p), surface[p]);
        let lit: Spectrum = std::array::from_fn(|b| ground[b] * (1.0 - 0.65 * ts));
        let seen = mix(mix(lit, HAZE, sky.haze), CLOUD, t);
        refl[p] = std::array::from_fn(|b| (seen[b] * sky.gain[b] + noise.sample(rng)).max(0.0005));
        scl10[p] = classify(ground, t, ts, sky, rng);
    }
    (refl, scl10)
}

/// The SCL class of a pixel with true spectrum `ground` under cloud `t` and shadow `ts`, wrong
/// as real SCL is: thin cloud edges and light shadows only sometimes flagged, bare ground now and
/// then unclassified, bright roofs called cloud in some scenes.
fn classify(ground: Spectrum, t: f32, ts: f32, sky: &Sky, rng: &mut ChaCha8Rng) -> u16 {
    let ndvi = (ground[3] - ground[2]) / (ground[3] + ground[2]);
    let mndwi = (ground[1] - ground[4]) / (ground[1] + ground[4]);
    let bright = (ground[0] + ground[1] + ground[2]) / 3.0 > 0.16;
    let surface_class = if mndwi > 0.3 {
        scl::WATER
    } else if ndvi > 0.4 {
        scl::VEGETATION
    } else if rng.gen_bool(0.01) {
        scl::UNCLASSIFIED
    } else {
        scl::NOT_VEGETATED
    };
    let u: f64 = rng.gen();
    if t > 0.6 {
        scl::CLOUD_HIGH
    } else if t > 0.3 || (t > THIN_CLOUD && u < sky.edge_flagged) {
        scl::CLOUD_MEDIUM
    } else if ts > 0.4 || (ts > CLEAR_SHADOW && u < 0.5) {
        scl::CLOUD_SHADOW
    } else if bright && sky.roofs_called_cloud {
        scl::CLOUD_HIGH
    } else {
        surface_class
    }
}

/// How an item's pixels were processed, and what its metadata says about it.
struct Processing {
    /// Added to every digital number: the +1000 BOA offset of processing baselines 04.00 on.
    offset_dn: u16,
    /// `earthsearch:boa_offset_applied` as written: says the opposite of the pixels on a few items.
    flag: bool,
    /// `s2:processing_baseline`.
    baseline: &'static str,
}

impl Processing {
    /// From 2022-01-25 most items keep the +1000 DN offset; some are harmonized; a few carry a flag
    /// that says the opposite of their pixels ([`Scenario::WrongOffsetFlags`]: many more).
    fn draw(date: NaiveDate, scenario: Scenario, rng: &mut ChaCha8Rng) -> Processing {
        if date < crate::detect::reflectance::offset_start() {
            return Processing {
                offset_dn: 0,
                flag: false,
                baseline: "03.01",
            };
        }
        let baseline = if date.year() == 2022 { "04.00" } else { "05.09" };
        let u: f64 = rng.gen();
        let (raw, harmonized, raw_flag_wrong) = if scenario == Scenario::WrongOffsetFlags {
            (0.4, 0.65, 0.85)
        } else {
            (0.65, 0.9, 0.95)
        };
        let (offset_dn, flag) = if u < raw {
            (1000, false)
        } else if u < harmonized {
            (0, true)
        } else if u < raw_flag_wrong {
            (1000, true)
        } else {
            (0, false)
        };
        Processing {
            offset_dn,
            flag,
            baseline,
        }
    }
}

/// One band file of an item.
struct BandFile {
    /// Asset key in the item (Earth Search names).
    key: &'static str,
    /// Band name and file stem.
    name: &'static str,
    /// Digital numbers, row-major; 0 = no data.
    data: Vec<u16>,
    /// 10 m (else 20 m).
    ten: bool,
}

/// The item's band files as digital numbers (reflectance x 10000 + `offset_dn`): four 10 m
/// bands, the two SWIR bands averaged over 2 x 2 pixels and the SCL of each 2 x 2 block's
/// top-left pixel at 20 m; 0 wherever a pixel has no data.
fn encode_bands(refl: &[Spectrum], scl10: &[u16], w: usize, h: usize, offset_dn: u16) -> [BandFile; 7] {
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
    let file = |key, name, data, ten| BandFile { key, name, data, ten };
    [
        file("blue", "B02", band10(0), true),
        file("green", "B03", band10(1), true),
        file("red", "B04", band10(2), true),
        file("nir", "B08", band10(3), true),
        file("swir16", "B11", band20(4), false),
        file("swir22", "B12", band20(5), false),
        file("scl", "SCL", scl20, false),
    ]
}

/// Writes the band files as COGs into the item's `dir`; returns the item's `assets`.
fn write_assets(dir: &Path, world: &World, bands: &[BandFile]) -> Result<serde_json::Map<String, Value>> {
    let (w, h) = (world.width, world.height);
    let gt10 = [world.x0, PIXEL_M, 0.0, world.y0, 0.0, -PIXEL_M];
    let gt20 = [world.x0, 2.0 * PIXEL_M, 0.0, world.y0, 0.0, -2.0 * PIXEL_M];
    let mut assets = serde_json::Map::new();
    for band in bands {
        let (gt, width, height) = if band.ten { (gt10, w, h) } else { (gt20, w / 2, h / 2) };
        let name = band.name;
        report::write_cog(
            &dir.join(format!("{name}.tif")),
            &CogRaster {
                epsg: world.epsg,
                geo_transform: gt,
                width,
                height,
                bands: vec![(band.data.as_slice(), name)],
                rgb: false,
                description: "SYNTHETIC compound-watch sample",
                metadata: vec![],
            },
        )?;
        assets.insert(
            band.key.to_string(),
            json!({"href": format!("./{name}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"], "gsd": if band.ten {10} else {20}}),
        );
    }
    Ok(assets)
}

/// The scenes' footprint in WGS84: its closed ring and its `[west, south, east, north]` box.
fn footprint(world: &World) -> Result<(Vec<Coord<f64>>, [f64; 4])> {
    let to_wgs84 = Projector::new(world.epsg, 4326)?;
    let (x1, y1) = (
        world.x0 + world.width as f64 * PIXEL_M,
        world.y0 - world.height as f64 * PIXEL_M,
    );
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
    Ok((ring, bbox))
}

/// The STAC item of acquisition `index` on `date`, in Earth Search's layout.
fn item_json(
    spec: &SampleSpec,
    world: &World,
    index: usize,
    date: NaiveDate,
    processing: &Processing,
    cloud_cover: f64,
    assets: serde_json::Map<String, Value>,
) -> Result<Value> {
    let (ring, bbox) = footprint(world)?;
    let datetime = Utc.from_utc_datetime(&date.and_hms_opt(3, 56, 10).expect("valid"));
    Ok(json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id(index, date),
        // Scenarios share item ids (same dates), so each gets its own collection and cache entries.
        "collection": match spec.scenario {
            Scenario::Demo => "sentinel-2-l2a".to_owned(),
            other => format!("sentinel-2-l2a-synthetic-{other}"),
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
            "s2:processing_baseline": processing.baseline,
            "earthsearch:boa_offset_applied": processing.flag,
            "compound_watch:synthetic": true,
        },
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../../catalog.json", "type": "application/json"},
        ],
        "assets": assets,
    }))
}

/// Generates and writes acquisition `index` on `date`: the world's surface that month, seen
/// through this scene's sky, encoded as the item's band files, with its STAC item.
fn write_scene(out: &Path, spec: &SampleSpec, world: &World, index: usize, date: NaiveDate) -> Result<Acquisition> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_mul(1_000_003).wrapping_add(index as u64 + 1));
    let (w, h) = (world.width, world.height);
    let surface = world.surface(world.first_month.until(Month::of(date)), date.month());
    let sky = Sky::draw(spec, date, w, h, &mut rng);
    let (refl, scl10) = observe(&surface, &sky, &mut rng);
    let processing = Processing::draw(date, spec.scenario, &mut rng);
    let bands = encode_bands(&refl, &scl10, w, h, processing.offset_dn);
    let id = item_id(index, date);
    let dir = out.join("items").join(&id);
    let assets = write_assets(&dir, world, &bands)?;
    let item = item_json(spec, world, index, date, &processing, sky.cloud_cover(), assets)?;
    atomic::write_json(&dir.join(format!("{id}.json")), &item)?;
    // Per event: is the pixel it covers most seen clearly?
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
            refl[p][0] > 0.0 && sky.clear_at(p)
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

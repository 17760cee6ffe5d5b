//! The ground of one scenario: a landscape (hills, a river, paddies, a village, a road, shrub and
//! forest) and the events placed on it, and the surface reflectance of every 10 m pixel on a day.
//! Pure: no I/O, no clouds (those are in `sky`).

use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::materials::{self as m, mix, Roof, Spectrum};

/// Pixel size of the 10 m bands, metres.
pub const PIXEL_M: f64 = 10.0;

/// What a scenario covers.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Seed of every random draw of the scenario.
    pub seed: u64,
    /// Pixels per side at 10 m (300 = 3 km); even, so the 20 m bands tile it.
    pub size_px: usize,
    /// First day of the period.
    pub first: NaiveDate,
    /// Last day of the period.
    pub last: NaiveDate,
}

impl Spec {
    /// The suite's standard scenario: 3 km x 3 km, July 2021 to December 2023.
    pub fn standard(seed: u64) -> Spec {
        Spec {
            seed,
            size_px: 300,
            first: NaiveDate::from_ymd_opt(2021, 7, 1).expect("valid date"),
            last: NaiveDate::from_ymd_opt(2023, 12, 31).expect("valid date"),
        }
    }
}

/// An axis-aligned rectangle in metres from the grid's top-left corner, y pointing down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    /// A rectangle from its centre and size.
    pub fn centred(cx: f64, cy: f64, w: f64, h: f64) -> Rect {
        Rect {
            x0: cx - w / 2.0,
            y0: cy - h / 2.0,
            x1: cx + w / 2.0,
            y1: cy + h / 2.0,
        }
    }
    /// Area in m².
    pub fn area(&self) -> f64 {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }
    /// Grown by `d` metres on every side.
    pub fn grow(&self, d: f64) -> Rect {
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }
    /// Whether the two overlap.
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    /// Share of pixel (col, row) it covers, exactly.
    pub fn coverage(&self, col: usize, row: usize) -> f32 {
        let (px0, py0) = (col as f64 * PIXEL_M, row as f64 * PIXEL_M);
        let wx = (self.x1.min(px0 + PIXEL_M) - self.x0.max(px0)).max(0.0);
        let wy = (self.y1.min(py0 + PIXEL_M) - self.y0.max(py0)).max(0.0);
        (wx * wy / (PIXEL_M * PIXEL_M)) as f32
    }
    /// The pixels it touches, with the share of each it covers.
    pub fn pixels(&self, size_px: usize) -> Vec<(usize, f32)> {
        let c0 = (self.x0 / PIXEL_M).floor().max(0.0) as usize;
        let r0 = (self.y0 / PIXEL_M).floor().max(0.0) as usize;
        let c1 = ((self.x1 / PIXEL_M).ceil() as usize).min(size_px);
        let r1 = ((self.y1 / PIXEL_M).ceil() as usize).min(size_px);
        let mut out = Vec::new();
        for r in r0..r1 {
            for c in c0..c1 {
                let f = self.coverage(c, r);
                if f > 0.0 {
                    out.push((r * size_px + c, f));
                }
            }
        }
        out
    }
}

/// What an event is. The first three are construction; the rest are changes that are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A walled yard cleared to bare soil, then 8-10 roofs in phases covering 20-40% of it.
    Compound,
    /// One large building on a cleared pad.
    Building,
    /// A building of 400-1,000 m², below the 1,000 m² unit.
    SmallBuilding,
    /// A quarry opening and growing.
    Quarry,
    /// A riverbank cut away by a monsoon flood.
    RiverbankErosion,
    /// Rice paddies harvested and ploughed every dry season.
    HarvestedField,
    /// Land cleared to bare soil that stays bare.
    ClearedOnly,
    /// An existing building torn down.
    Demolition,
    /// Forest cut, burnt, cropped and left (shifting cultivation).
    Swidden,
}

impl Kind {
    /// The name in the truth file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Compound => "compound",
            Kind::Building => "building",
            Kind::SmallBuilding => "small_building",
            Kind::Quarry => "quarry",
            Kind::RiverbankErosion => "riverbank_erosion",
            Kind::HarvestedField => "harvested_field",
            Kind::ClearedOnly => "cleared_only",
            Kind::Demolition => "demolition",
            Kind::Swidden => "swidden",
        }
    }
    /// Whether it is construction.
    pub fn is_construction(self) -> bool {
        matches!(self, Kind::Compound | Kind::Building | Kind::SmallBuilding)
    }
}

/// One object of the truth, with what the generator needs to paint it.
#[derive(Clone, Debug)]
pub struct Event {
    /// What it is.
    pub kind: Kind,
    /// The truth outline (the whole compound with its yard; a building's footprint).
    pub outline: Rect,
    /// Roof material (construction) or surface (others).
    pub material: &'static str,
    /// Hard-case labels: monsoon, late, slope, water, phased.
    pub tags: Vec<&'static str>,
    /// The cleared area (yard or pad) and when it is cleared; for others the changed area.
    pub cleared: (Rect, NaiveDate),
    /// Roofs and the day each appears (construction only).
    pub roofs: Vec<(Rect, NaiveDate, Roof)>,
    /// Non-construction: the day of the change; quarries: growth until `until`.
    pub change: NaiveDate,
    /// Quarries: the day it reaches its full extent.
    pub until: NaiveDate,
}

impl Event {
    /// The day the new state first exists: the first roof for construction, else the change.
    pub fn new_state(&self) -> NaiveDate {
        self.roofs.iter().map(|r| r.1).min().unwrap_or(self.change)
    }
    /// The day the last roof appears (construction).
    pub fn finished(&self) -> Option<NaiveDate> {
        self.roofs.iter().map(|r| r.1).max()
    }
    /// Pixels whose view decides whether the new state was seen clearly: the first phase's roofs
    /// for construction, the whole outline for other changes.
    pub fn watch_pixels(&self, size_px: usize) -> Vec<usize> {
        let rects: Vec<Rect> = if self.kind.is_construction() {
            let first = self.new_state();
            self.roofs.iter().filter(|r| r.1 == first).map(|r| r.0).collect()
        } else {
            vec![self.outline]
        };
        let mut px: Vec<usize> = rects
            .iter()
            .flat_map(|r| r.pixels(size_px))
            .filter(|&(_, f)| f >= 0.5)
            .map(|(p, _)| p)
            .collect();
        if px.is_empty() {
            px = rects.iter().flat_map(|r| r.pixels(size_px)).map(|(p, _)| p).collect();
        }
        px.sort_unstable();
        px.dedup();
        px
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ground {
    Shrub,
    Forest,
    Water,
    Bank,
    Paddy(i32),
    OldRoof,
    Road,
}

/// A scenario's landscape and events.
pub struct World {
    /// What it covers.
    pub spec: Spec,
    ground: Vec<Ground>,
    /// Fixed per-pixel brightness texture (multiplicative).
    texture: Vec<f32>,
    /// Terrain slope (radians) and aspect (radians, clockwise from north, downslope direction).
    slope: Vec<(f32, f32)>,
    /// Events, in truth order.
    pub events: Vec<Event>,
}

/// Draws a candidate centre (metres) for an event.
type Sampler<'a> = Box<dyn Fn(&mut ChaCha12Rng) -> (f64, f64) + 'a>;

/// Upper bound of the angle draws. Generator v1's draws (and so its measured scenarios) depend on
/// this exact value, which is why it is not `TAU`.
#[allow(clippy::approx_constant)]
const TURN: f64 = 6.28;

fn day(first: NaiveDate, d: i64) -> NaiveDate {
    first + Duration::days(d)
}

fn ymd(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).expect("valid date")
}

/// A uniformly drawn day in [a, b].
fn between(rng: &mut ChaCha12Rng, a: NaiveDate, b: NaiveDate) -> NaiveDate {
    let n = (b - a).num_days().max(0);
    a + Duration::days(rng.gen_range(0..=n))
}

/// The sun's zenith and azimuth (radians) at the 10:30 overpass near 15° N on a day of the year.
pub fn sun(day_of_year: u32) -> (f32, f32) {
    let season = (2.0 * std::f32::consts::PI * (day_of_year as f32 - 172.0) / 365.0).cos();
    // June: high sun to the north-east; December: lower sun to the south-east.
    let zenith = (30.0 - 14.0 * season).to_radians();
    let azimuth = (120.0 - 45.0 * season).to_radians();
    (zenith, azimuth)
}

impl World {
    /// Builds the landscape and places the events, all from the spec's seed.
    pub fn build(spec: &Spec) -> World {
        let mut rng = ChaCha12Rng::seed_from_u64(spec.seed ^ 0x7e57_bed0);
        let n = spec.size_px;
        let size_m = n as f64 * PIXEL_M;

        // Terrain: two or three hills in one half of the grid.
        let hills: Vec<(f64, f64, f64, f64)> = (0..rng.gen_range(2..=3))
            .map(|_| {
                let cx = rng.gen_range(0.15..0.85) * size_m;
                let cy = rng.gen_range(0.1..0.4) * size_m;
                (cx, cy, rng.gen_range(0.09..0.16) * size_m, rng.gen_range(80.0..220.0))
            })
            .collect();
        let height = |x: f64, y: f64| -> f64 {
            hills
                .iter()
                .map(|&(cx, cy, s, h)| h * (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s * s)).exp())
                .sum()
        };
        let mut slope = vec![(0.0f32, 0.0f32); n * n];
        for r in 0..n {
            for c in 0..n {
                let (x, y) = ((c as f64 + 0.5) * PIXEL_M, (r as f64 + 0.5) * PIXEL_M);
                let dzdx = (height(x + 5.0, y) - height(x - 5.0, y)) / 10.0;
                let dzdy_south = (height(x, y + 5.0) - height(x, y - 5.0)) / 10.0;
                let s = (dzdx * dzdx + dzdy_south * dzdy_south).sqrt().atan();
                // Downslope direction, clockwise from north (north = -y).
                let aspect = (-dzdx).atan2(dzdy_south);
                slope[r * n + c] = (s as f32, aspect as f32);
            }
        }

        // River: sinuous, west to east, in the lower part.
        let river_y = rng.gen_range(0.62..0.78) * size_m;
        let amp = rng.gen_range(30.0..80.0);
        let wave = rng.gen_range(900.0..1600.0);
        let phase = rng.gen_range(0.0..TURN);
        let river_w = rng.gen_range(40.0..70.0);
        let centre = move |x: f64| river_y + amp * (2.0 * std::f64::consts::PI * x / wave + phase).sin();

        // Paddy block south of the river, village and road north of it.
        let paddy_block = Rect {
            x0: rng.gen_range(0.1..0.5) * size_m,
            y0: river_y + amp + river_w / 2.0 + 40.0,
            x1: 0.0,
            y1: 0.0,
        };
        let paddy_block = Rect {
            x1: paddy_block.x0 + rng.gen_range(500.0..800.0),
            y1: (paddy_block.y0 + rng.gen_range(250.0..400.0)).min(size_m - 20.0),
            ..paddy_block
        };
        let road_x = rng.gen_range(0.55..0.9) * size_m;
        let village = Rect::centred(road_x, river_y - amp - 220.0, 260.0, 200.0);

        let mut texture = vec![1.0f32; n * n];
        for t in texture.iter_mut() {
            *t = 1.0 + rng.gen_range(-0.06..0.06);
        }
        let mut ground = vec![Ground::Shrub; n * n];
        let patches: Vec<(f64, f64, f64)> = (0..14)
            .map(|_| {
                (
                    rng.gen_range(0.0..size_m),
                    rng.gen_range(0.0..size_m),
                    rng.gen_range(80.0..260.0),
                )
            })
            .collect();
        let mut parcels: Vec<(Rect, i32)> = Vec::new();
        let mut y = paddy_block.y0;
        while y < paddy_block.y1 - 30.0 {
            let h = rng.gen_range(50.0..120.0f64).min(paddy_block.y1 - y);
            let mut x = paddy_block.x0;
            while x < paddy_block.x1 - 30.0 {
                let w = rng.gen_range(60.0..140.0f64).min(paddy_block.x1 - x);
                parcels.push((
                    Rect {
                        x0: x,
                        y0: y,
                        x1: x + w,
                        y1: y + h,
                    },
                    rng.gen_range(-10..25),
                ));
                x += w;
            }
            y += h;
        }
        let old_roofs: Vec<Rect> = (0..18)
            .map(|_| {
                Rect::centred(
                    rng.gen_range(village.x0..village.x1),
                    rng.gen_range(village.y0..village.y1),
                    rng.gen_range(8.0..22.0),
                    rng.gen_range(8.0..18.0),
                )
            })
            .collect();
        for r in 0..n {
            for c in 0..n {
                let (x, y) = ((c as f64 + 0.5) * PIXEL_M, (r as f64 + 0.5) * PIXEL_M);
                let p = r * n + c;
                let hill = height(x, y);
                let near_patch = patches
                    .iter()
                    .any(|&(px, py, rad)| (x - px).powi(2) + (y - py).powi(2) < rad * rad);
                ground[p] = if hill > 40.0 || near_patch {
                    Ground::Forest
                } else {
                    Ground::Shrub
                };
                let d = (y - centre(x)).abs();
                if d < river_w / 2.0 {
                    ground[p] = Ground::Water;
                } else if d < river_w / 2.0 + 15.0 {
                    ground[p] = Ground::Bank;
                } else if let Some((_, shift)) = parcels
                    .iter()
                    .find(|(rect, _)| x >= rect.x0 && x < rect.x1 && y >= rect.y0 && y < rect.y1)
                {
                    ground[p] = Ground::Paddy(*shift);
                } else if (x - (road_x + 0.15 * (y - size_m / 2.0))).abs() < 4.0 && y < centre(x) - river_w {
                    ground[p] = Ground::Road;
                } else if old_roofs.iter().any(|o| x >= o.x0 && x < o.x1 && y >= o.y0 && y < o.y1) {
                    ground[p] = Ground::OldRoof;
                }
            }
        }

        let mut world = World {
            spec: spec.clone(),
            ground,
            texture,
            slope,
            events: Vec::new(),
        };
        world.place_events(&mut rng, river_w, &centre, &hills, paddy_block, village);
        world
    }

    /// Whether a rectangle is free land (shrub or forest, no other event nearby, inside the grid).
    fn free(&self, r: &Rect, taken: &[Rect]) -> bool {
        let size_m = self.spec.size_px as f64 * PIXEL_M;
        if r.x0 < 60.0 || r.y0 < 60.0 || r.x1 > size_m - 60.0 || r.y1 > size_m - 60.0 {
            return false;
        }
        if taken.iter().any(|t| t.grow(40.0).overlaps(r)) {
            return false;
        }
        r.grow(10.0)
            .pixels(self.spec.size_px)
            .iter()
            .all(|&(p, _)| matches!(self.ground[p], Ground::Shrub | Ground::Forest))
    }

    fn place(
        &self,
        rng: &mut ChaCha12Rng,
        w: f64,
        h: f64,
        taken: &[Rect],
        near: impl Fn(&mut ChaCha12Rng) -> (f64, f64),
    ) -> Option<Rect> {
        (0..400).find_map(|_| {
            let (cx, cy) = near(rng);
            let r = Rect::centred(cx, cy, w, h);
            self.free(&r, taken).then_some(r)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn place_events(
        &mut self,
        rng: &mut ChaCha12Rng,
        river_w: f64,
        centre: &dyn Fn(f64) -> f64,
        hills: &[(f64, f64, f64, f64)],
        paddy_block: Rect,
        village: Rect,
    ) {
        let size_m = self.spec.size_px as f64 * PIXEL_M;
        let (first, last) = (self.spec.first, self.spec.last);
        let anywhere = move |rng: &mut ChaCha12Rng| (rng.gen_range(0.0..size_m), rng.gen_range(0.0..size_m));
        let mut taken: Vec<Rect> = vec![paddy_block, village];
        let mut events = Vec::new();
        let mut roofs: Vec<Roof> = Roof::ALL.to_vec();
        roofs.shuffle(rng);
        let mut next_roof = roofs.into_iter().cycle();

        // Roof dates: ordinary ones fall between November 2021 and September 2023.
        let ordinary = |rng: &mut ChaCha12Rng| between(rng, ymd(2021, 11, 15), ymd(2023, 9, 20).min(last));
        let monsoon = |rng: &mut ChaCha12Rng| {
            let y = if rng.gen_bool(0.5) { 2022 } else { 2023 };
            between(rng, ymd(y, 6, 1), ymd(y, 10, 15))
        };
        let late = |rng: &mut ChaCha12Rng| {
            let months = rng.gen_range(1..=3);
            between(
                rng,
                (last - Duration::days(30 * months)).max(first),
                last - Duration::days(8),
            )
        };

        // Two compounds (one may finish in the monsoon), one late construction that is a compound
        // half the time.
        let late_is_compound = rng.gen_bool(0.5);
        let mut specs: Vec<(Kind, NaiveDate, Vec<&'static str>)> = vec![
            (Kind::Compound, ordinary(rng), vec!["phased"]),
            (
                Kind::Compound,
                if rng.gen_bool(0.5) { monsoon(rng) } else { ordinary(rng) },
                vec!["phased"],
            ),
            (Kind::Building, monsoon(rng), vec!["monsoon"]),
            (Kind::Building, ordinary(rng), vec!["slope"]),
            (Kind::Building, ordinary(rng), vec!["water"]),
            (
                if late_is_compound {
                    Kind::Compound
                } else {
                    Kind::Building
                },
                late(rng),
                vec!["late"],
            ),
            (Kind::SmallBuilding, ordinary(rng), vec![]),
            (Kind::SmallBuilding, ordinary(rng), vec![]),
        ];
        for s in specs.iter_mut() {
            let month = s.1.month();
            if (6..=10).contains(&month) && !s.2.contains(&"monsoon") {
                s.2.push("monsoon");
            }
        }
        for (kind, roof_day, tags) in specs {
            let material = if kind == Kind::SmallBuilding {
                Roof::ALL[rng.gen_range(0..Roof::ALL.len())]
            } else {
                next_roof.next().expect("cycle")
            };
            let clear_gap = Duration::days(rng.gen_range(30..=90));
            let cleared_day = (roof_day - clear_gap).max(first + Duration::days(20));
            match kind {
                Kind::Compound => {
                    let area = rng.gen_range(10_000.0..25_000.0);
                    let aspect: f64 = rng.gen_range(1.0..1.8);
                    let (w, h) = ((area * aspect).sqrt(), (area / aspect).sqrt());
                    let Some(yard) = self.place(rng, w, h, &taken, anywhere) else {
                        continue;
                    };
                    taken.push(yard);
                    let n_roofs: usize = rng.gen_range(8..=10);
                    let cover = rng.gen_range(0.20..0.40);
                    let cols = if w > h { 4 } else { 3 };
                    let rows = n_roofs.div_ceil(cols);
                    let (cw, ch) = ((w - 20.0) / cols as f64, (h - 20.0) / rows as f64);
                    let phases = if tags.contains(&"late") {
                        2
                    } else {
                        rng.gen_range(2..=3)
                    };
                    let mut phase_days = vec![roof_day];
                    for _ in 1..phases {
                        let prev = *phase_days.last().expect("one");
                        let next = prev + Duration::days(rng.gen_range(30..=75));
                        phase_days.push(next.min(last));
                    }
                    let mut rs = Vec::new();
                    for i in 0..n_roofs {
                        let (col, row) = (i % cols, i / cols);
                        let a = area * cover / n_roofs as f64 * rng.gen_range(0.75..1.25);
                        let ratio: f64 = rng.gen_range(1.5..3.0);
                        let (mut rw, mut rh) = ((a * ratio).sqrt(), (a / ratio).sqrt());
                        if cw < ch {
                            std::mem::swap(&mut rw, &mut rh);
                        }
                        let (rw, rh) = (rw.min(cw - 4.0), rh.min(ch - 4.0));
                        let cx = yard.x0
                            + 10.0
                            + cw * (col as f64 + 0.5)
                            + rng.gen_range(-1.0..1.0) * (cw - rw - 4.0).max(0.0) / 2.0;
                        let cy = yard.y0
                            + 10.0
                            + ch * (row as f64 + 0.5)
                            + rng.gen_range(-1.0..1.0) * (ch - rh - 4.0).max(0.0) / 2.0;
                        let phase = (i * phases / n_roofs).min(phases - 1);
                        // One or two roofs of a compound are of another material.
                        let mat = if i % 5 == 4 {
                            Roof::ALL[rng.gen_range(0..Roof::ALL.len())]
                        } else {
                            material
                        };
                        rs.push((Rect::centred(cx, cy, rw, rh), phase_days[phase], mat));
                    }
                    events.push(Event {
                        kind,
                        outline: yard,
                        material: material.name(),
                        tags,
                        cleared: (yard, cleared_day),
                        roofs: rs,
                        change: cleared_day,
                        until: cleared_day,
                    });
                }
                Kind::Building | Kind::SmallBuilding => {
                    let area = if kind == Kind::Building {
                        rng.gen_range(1_200.0..6_000.0)
                    } else {
                        rng.gen_range(400.0..1_000.0)
                    };
                    let ratio: f64 = rng.gen_range(1.0..3.0);
                    let (w, h) = ((area * ratio).sqrt(), (area / ratio).sqrt());
                    let margin = rng.gen_range(8.0..20.0);
                    let near: Sampler<'_> = if tags.contains(&"slope") {
                        let hill = hills[rng.gen_range(0..hills.len())];
                        Box::new(move |rng: &mut ChaCha12Rng| {
                            let a: f64 = rng.gen_range(0.0..TURN);
                            let d = hill.2 * rng.gen_range(0.7..1.3);
                            (hill.0 + d * a.cos(), hill.1 + d * a.sin())
                        })
                    } else if tags.contains(&"water") {
                        let off = river_w / 2.0 + 15.0 + margin + h / 2.0 + rng.gen_range(12.0..25.0);
                        Box::new(move |rng: &mut ChaCha12Rng| {
                            let x = rng.gen_range(100.0..size_m - 100.0);
                            // North of the bank, clear of the meander under the whole footprint.
                            let top = (0..=8)
                                .map(|k| centre(x - w / 2.0 + w * k as f64 / 8.0))
                                .fold(f64::MAX, f64::min);
                            (x, top - off)
                        })
                    } else {
                        Box::new(anywhere)
                    };
                    let Some(pad) = self.place(rng, w + 2.0 * margin, h + 2.0 * margin, &taken, near) else {
                        continue;
                    };
                    taken.push(pad);
                    let roof = Rect {
                        x0: pad.x0 + margin,
                        y0: pad.y0 + margin,
                        x1: pad.x1 - margin,
                        y1: pad.y1 - margin,
                    };
                    events.push(Event {
                        kind,
                        outline: roof,
                        material: material.name(),
                        tags,
                        cleared: (pad, cleared_day),
                        roofs: vec![(roof, roof_day, material)],
                        change: cleared_day,
                        until: cleared_day,
                    });
                }
                _ => unreachable!("only construction is listed here"),
            }
        }

        // Changes that are not construction.
        let any_day = |rng: &mut ChaCha12Rng| between(rng, ymd(2021, 10, 1), ymd(2023, 10, 1).min(last));
        let simple = |kind: Kind, rect: Rect, material: &'static str, change: NaiveDate, until: NaiveDate| Event {
            kind,
            outline: rect,
            material,
            tags: vec![],
            cleared: (rect, change),
            roofs: vec![],
            change,
            until,
        };
        let (w, h) = (rng.gen_range(100.0..180.0), rng.gen_range(80.0..150.0));
        if let Some(r) = self.place(rng, w, h, &taken, anywhere) {
            taken.push(r);
            let start = between(rng, ymd(2021, 8, 1), ymd(2022, 12, 1));
            let until = start + Duration::days(rng.gen_range(180..540));
            events.push(simple(Kind::Quarry, r, "quarry_rock", start, until));
        }
        // A riverbank strip cut in a monsoon flood (August-September).
        for _ in 0..200 {
            let x = rng.gen_range(100.0..size_m - 400.0);
            let len = rng.gen_range(150.0..300.0);
            let top = (0..=10)
                .map(|k| centre(x + len * k as f64 / 10.0))
                .fold(f64::MAX, f64::min);
            let width = rng.gen_range(20.0..35.0);
            let y1 = top - river_w / 2.0 + 5.0;
            let r = Rect {
                x0: x,
                y0: y1 - width,
                x1: x + len,
                y1,
            };
            if !taken.iter().any(|t| t.grow(30.0).overlaps(&r)) {
                taken.push(r);
                let y = if rng.gen_bool(0.5) { 2022 } else { 2023 };
                let d = between(rng, ymd(y, 8, 1), ymd(y, 9, 30));
                events.push(simple(Kind::RiverbankErosion, r, "wet_bank", d, d));
                break;
            }
        }
        let fields_from = first;
        events.push(simple(
            Kind::HarvestedField,
            paddy_block,
            "paddy",
            fields_from,
            fields_from,
        ));
        for kind in [Kind::ClearedOnly, Kind::Swidden] {
            let area = rng.gen_range(4_000.0..20_000.0);
            let ratio: f64 = rng.gen_range(1.0..2.0);
            if let Some(r) = self.place(rng, (area * ratio).sqrt(), (area / ratio).sqrt(), &taken, anywhere) {
                taken.push(r);
                let d = if kind == Kind::Swidden {
                    let y = if rng.gen_bool(0.5) { 2022 } else { 2023 };
                    between(rng, ymd(y, 1, 20), ymd(y, 3, 10))
                } else {
                    any_day(rng)
                };
                let mat = if kind == Kind::Swidden {
                    "char_then_crop"
                } else {
                    "laterite"
                };
                events.push(simple(kind, r, mat, d, d));
            }
        }
        // Demolition of a building that stands from the start.
        let area = rng.gen_range(1_500.0..4_000.0);
        let ratio: f64 = rng.gen_range(1.0..2.5);
        if let Some(r) = self.place(rng, (area * ratio).sqrt(), (area / ratio).sqrt(), &taken, anywhere) {
            taken.push(r);
            events.push(simple(Kind::Demolition, r, "concrete_to_rubble", any_day(rng), first));
        }
        self.events = events;
    }

    /// Surface reflectance of every pixel on `date` (before atmosphere and clouds) and the terrain
    /// illumination factor of each (1 on flat ground).
    pub fn surface(&self, date: NaiveDate) -> (Vec<Spectrum>, Vec<f32>) {
        let doy = date.ordinal();
        let (shrub, forest) = (m::shrub(doy), m::forest(doy));
        let wet = (6..=10).contains(&date.month());
        let mut out: Vec<Spectrum> = self
            .ground
            .iter()
            .map(|g| match *g {
                Ground::Shrub => shrub,
                Ground::Forest => forest,
                Ground::Water => m::WATER,
                // High water covers the bank in the monsoon.
                Ground::Bank => {
                    if wet {
                        mix(m::WET_BANK, m::WATER, 0.6)
                    } else {
                        mix(m::SAND, shrub, 0.3)
                    }
                }
                Ground::Paddy(shift) => m::paddy(doy, shift),
                Ground::OldRoof => m::OLD_ROOF,
                Ground::Road => m::ROAD,
            })
            .collect();
        for e in &self.events {
            self.paint(e, date, &mut out, shrub, forest);
        }
        let (zen, az) = sun(doy);
        let illum: Vec<f32> = self
            .slope
            .iter()
            .map(|&(s, aspect)| {
                let cos_i = zen.cos() * s.cos() + zen.sin() * s.sin() * (az - aspect).cos();
                (cos_i.max(0.05) / zen.cos()).clamp(0.15, 1.4)
            })
            .collect();
        for (p, s) in out.iter_mut().enumerate() {
            let k = self.texture[p] * illum[p];
            for v in s.iter_mut() {
                *v *= k;
            }
        }
        (out, illum)
    }

    fn paint(&self, e: &Event, date: NaiveDate, out: &mut [Spectrum], shrub: Spectrum, forest: Spectrum) {
        let n = self.spec.size_px;
        let layer = |out: &mut [Spectrum], r: &Rect, s: Spectrum| {
            for (p, f) in r.pixels(n) {
                out[p] = mix(out[p], s, f);
            }
        };
        let days = |a: NaiveDate| (date - a).num_days();
        match e.kind {
            Kind::Compound | Kind::Building | Kind::SmallBuilding => {
                let (area, cleared) = e.cleared;
                if date < cleared {
                    return;
                }
                let first_roof = e.new_state();
                let ground = if date < first_roof {
                    m::LATERITE
                } else {
                    mix(m::LATERITE, m::YARD, (days(first_roof) as f32 / 60.0).min(1.0))
                };
                layer(out, &area, ground);
                if e.kind == Kind::Compound && days(cleared) > 20 {
                    // A 2 m concrete wall around the yard.
                    for wall in [
                        Rect {
                            y1: area.y0 + 2.0,
                            ..area
                        },
                        Rect {
                            y0: area.y1 - 2.0,
                            ..area
                        },
                        Rect {
                            x1: area.x0 + 2.0,
                            ..area
                        },
                        Rect {
                            x0: area.x1 - 2.0,
                            ..area
                        },
                    ] {
                        layer(out, &wall, m::WALL);
                    }
                }
                for (r, d, mat) in &e.roofs {
                    if date >= *d {
                        layer(out, r, mat.spectrum());
                    } else if (*d - date).num_days() < 25 && date >= first_roof - Duration::days(25) {
                        // Frame and slab going up: concrete skeleton over soil.
                        layer(out, r, mix(m::LATERITE, m::Roof::Concrete.spectrum(), 0.4));
                    }
                }
            }
            Kind::Quarry => {
                if date < e.change {
                    return;
                }
                let total = (e.until - e.change).num_days().max(1) as f64;
                let share = (0.15 + 0.85 * days(e.change) as f64 / total).min(1.0);
                let r = e.outline;
                let open = Rect {
                    x1: r.x0 + (r.x1 - r.x0) * share,
                    ..r
                };
                let wet = (6..=10).contains(&date.month());
                layer(
                    out,
                    &open,
                    if wet {
                        mix(m::QUARRY_ROCK, m::WATER, 0.25)
                    } else {
                        m::QUARRY_ROCK
                    },
                );
            }
            Kind::RiverbankErosion => {
                if date < e.change {
                    return;
                }
                let r = e.outline;
                let inner = Rect {
                    y0: (r.y0 + r.y1) / 2.0,
                    ..r
                };
                let outer = Rect {
                    y1: (r.y0 + r.y1) / 2.0,
                    ..r
                };
                layer(out, &inner, m::WATER);
                let dry = !(6..=10).contains(&date.month());
                layer(
                    out,
                    &outer,
                    if dry {
                        mix(m::SAND, m::WET_BANK, 0.3)
                    } else {
                        m::WET_BANK
                    },
                );
            }
            Kind::HarvestedField => {}
            Kind::ClearedOnly => {
                if date >= e.change {
                    layer(out, &e.outline, m::LATERITE);
                }
            }
            Kind::Swidden => {
                let t = days(e.change);
                let s = match t {
                    ..0 => return,
                    0..=20 => mix(forest, m::CHAR, 0.5),
                    21..=90 => m::CHAR,
                    91..=140 => mix(m::CHAR, m::LATERITE, 0.6),
                    141..=270 => {
                        let doy = date.ordinal();
                        if (180..=300).contains(&doy) {
                            m::CROP
                        } else {
                            m::STUBBLE
                        }
                    }
                    _ => mix(m::STUBBLE, shrub, ((t - 270) as f32 / 200.0).min(1.0)),
                };
                layer(out, &e.outline, s);
            }
            Kind::Demolition => {
                let t = days(e.change);
                let s = match t {
                    ..0 => Roof::Concrete.spectrum(),
                    0..=45 => m::RUBBLE,
                    _ => mix(m::LATERITE, shrub, ((t - 45) as f32 / 300.0).min(0.7)),
                };
                layer(out, &e.outline, s);
            }
        }
    }

    /// Acquisition days: two satellites 10 days apart each, together every 5 days.
    pub fn acquisitions(&self) -> Vec<(NaiveDate, &'static str)> {
        let mut out = Vec::new();
        let mut d = day(self.spec.first, 1);
        let mut i = 0;
        while d <= self.spec.last {
            out.push((d, if i % 2 == 0 { "sentinel-2a" } else { "sentinel-2b" }));
            d += Duration::days(5);
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_covers_pixels_by_their_exact_share() {
        let r = Rect {
            x0: 5.0,
            y0: 0.0,
            x1: 25.0,
            y1: 10.0,
        };
        let px = r.pixels(10);
        assert_eq!(px, vec![(0, 0.5), (1, 1.0), (2, 0.5)]);
    }

    #[test]
    fn every_scenario_has_the_hard_cases_and_compounds_with_sparse_roofs() {
        // The suite's seeds (splits.json) and the integration test's.
        for seed in [1, 2, 3, 4, 5, 6, 7, 101, 102, 103, 104, 105, 106] {
            hard_cases(seed);
        }
    }

    fn hard_cases(seed: u64) {
        let w = World::build(&Spec::standard(seed));
        let kinds: Vec<Kind> = w.events.iter().map(|e| e.kind).collect();
        assert!(kinds.iter().filter(|k| **k == Kind::Compound).count() >= 2, "{kinds:?}");
        for tag in ["late", "slope", "water", "monsoon"] {
            assert!(
                w.events.iter().any(|e| e.tags.contains(&tag)),
                "seed {seed}: no {tag} event: {kinds:?}"
            );
        }
        for kind in [
            Kind::Quarry,
            Kind::RiverbankErosion,
            Kind::ClearedOnly,
            Kind::Swidden,
            Kind::Demolition,
            Kind::SmallBuilding,
        ] {
            assert!(kinds.contains(&kind), "seed {seed}: no {kind:?}: {kinds:?}");
        }
        for e in w.events.iter().filter(|e| e.kind == Kind::Compound) {
            let roofs: f64 = e.roofs.iter().map(|r| r.0.area()).sum();
            let share = roofs / e.outline.area();
            assert!((0.15..0.45).contains(&share), "roof share {share}");
            assert!((8..=10).contains(&e.roofs.len()));
            assert!(e.cleared.1 < e.new_state());
        }
        for e in &w.events {
            for o in &w.events {
                if !std::ptr::eq(e, o) {
                    assert!(!e.outline.overlaps(&o.outline), "{e:?} overlaps {o:?}");
                }
            }
        }
    }

    #[test]
    fn a_roof_changes_the_surface_only_once_it_stands() {
        let w = World::build(&Spec::standard(5));
        let e = w.events.iter().find(|e| e.kind == Kind::Building).expect("a building");
        let p = e.watch_pixels(w.spec.size_px)[0];
        let before = w.surface(e.cleared.1 - Duration::days(10)).0[p];
        let after = w.surface(e.new_state() + Duration::days(1)).0[p];
        let diff: f32 = before.iter().zip(after).map(|(a, b)| (a - b).abs()).sum();
        assert!(diff > 0.1, "{before:?} -> {after:?}");
    }
}

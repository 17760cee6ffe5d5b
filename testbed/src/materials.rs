//! The testbed's own spectral library: surface reflectance (0..1) of the materials its scenes are
//! made of, in the six bands the scan reads (blue, green, red, nir, swir16, swir22), and the
//! seasonal cycles of vegetation and fields. Values are rough library-style figures chosen for this
//! suite alone; nothing here is taken from, or tuned against, the detector.

/// Reflectance in blue, green, red, nir, swir16, swir22.
pub type Spectrum = [f32; 6];

/// Linear mix: `a` where `f` = 0, `b` where `f` = 1.
pub fn mix(a: Spectrum, b: Spectrum, f: f32) -> Spectrum {
    let f = f.clamp(0.0, 1.0);
    std::array::from_fn(|i| a[i] * (1.0 - f) + b[i] * f)
}

/// Roof materials of new construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roof {
    /// Flat concrete slab, light grey.
    Concrete,
    /// Blue-painted corrugated metal.
    BlueMetal,
    /// Red-painted metal.
    RedMetal,
    /// Green-painted metal.
    GreenMetal,
    /// Bare galvanized steel, bright and flat across the spectrum.
    Galvanized,
    /// Dark clay or cement tiles.
    DarkTile,
    /// White membrane (PVC/TPO), very bright.
    WhiteMembrane,
}

impl Roof {
    /// Every roof material.
    pub const ALL: [Roof; 7] = [
        Roof::Concrete,
        Roof::BlueMetal,
        Roof::RedMetal,
        Roof::GreenMetal,
        Roof::Galvanized,
        Roof::DarkTile,
        Roof::WhiteMembrane,
    ];

    /// The name used in the truth file and the tables.
    pub fn name(self) -> &'static str {
        match self {
            Roof::Concrete => "concrete",
            Roof::BlueMetal => "blue_metal",
            Roof::RedMetal => "red_metal",
            Roof::GreenMetal => "green_metal",
            Roof::Galvanized => "galvanized",
            Roof::DarkTile => "dark_tile",
            Roof::WhiteMembrane => "white_membrane",
        }
    }

    /// The roof's reflectance.
    pub fn spectrum(self) -> Spectrum {
        match self {
            Roof::Concrete => [0.19, 0.21, 0.23, 0.27, 0.31, 0.28],
            Roof::BlueMetal => [0.17, 0.13, 0.08, 0.13, 0.11, 0.09],
            Roof::RedMetal => [0.07, 0.07, 0.18, 0.23, 0.26, 0.21],
            Roof::GreenMetal => [0.06, 0.11, 0.07, 0.16, 0.14, 0.11],
            Roof::Galvanized => [0.29, 0.30, 0.31, 0.32, 0.33, 0.31],
            Roof::DarkTile => [0.06, 0.06, 0.075, 0.10, 0.13, 0.11],
            Roof::WhiteMembrane => [0.54, 0.56, 0.57, 0.59, 0.50, 0.42],
        }
    }
}

/// Freshly cleared red-brown laterite soil.
pub const LATERITE: Spectrum = [0.08, 0.12, 0.20, 0.27, 0.37, 0.31];
/// A compacted gravel yard or hard-standing inside a finished compound.
pub const YARD: Spectrum = [0.13, 0.15, 0.18, 0.22, 0.29, 0.26];
/// A thin concrete perimeter wall seen from above.
pub const WALL: Spectrum = [0.22, 0.24, 0.25, 0.28, 0.30, 0.27];
/// Open river water, slightly turbid.
pub const WATER: Spectrum = [0.055, 0.07, 0.05, 0.025, 0.012, 0.006];
/// Wet mud of a fresh riverbank cut.
pub const WET_BANK: Spectrum = [0.06, 0.08, 0.10, 0.14, 0.15, 0.11];
/// Dry sandy riverbank.
pub const SAND: Spectrum = [0.12, 0.15, 0.19, 0.23, 0.31, 0.27];
/// Pale broken rock on a quarry floor.
pub const QUARRY_ROCK: Spectrum = [0.18, 0.21, 0.25, 0.29, 0.38, 0.33];
/// Charcoal and ash after a swidden burn.
pub const CHAR: Spectrum = [0.035, 0.04, 0.045, 0.07, 0.11, 0.10];
/// Demolition rubble: broken concrete mixed with soil.
pub const RUBBLE: Spectrum = [0.14, 0.16, 0.19, 0.23, 0.31, 0.28];
/// Old roofs of the existing village (rusty metal and old tiles).
pub const OLD_ROOF: Spectrum = [0.08, 0.09, 0.12, 0.17, 0.22, 0.19];
/// A laterite road, compacted.
pub const ROAD: Spectrum = [0.11, 0.13, 0.17, 0.22, 0.30, 0.27];
/// Flooded paddy at transplanting.
pub const PADDY_FLOOD: Spectrum = [0.05, 0.07, 0.06, 0.12, 0.08, 0.05];
/// Harvest stubble.
pub const STUBBLE: Spectrum = [0.08, 0.10, 0.12, 0.22, 0.30, 0.23];
/// Ploughed or fallow alluvial field soil.
pub const FALLOW: Spectrum = [0.09, 0.12, 0.16, 0.23, 0.34, 0.29];
/// A green crop at its peak.
pub const CROP: Spectrum = [0.035, 0.075, 0.04, 0.40, 0.20, 0.09];

const SHRUB_GREEN: Spectrum = [0.03, 0.065, 0.04, 0.36, 0.18, 0.085];
const SHRUB_DRY: Spectrum = [0.07, 0.10, 0.13, 0.24, 0.33, 0.24];
const FOREST_GREEN: Spectrum = [0.025, 0.05, 0.03, 0.32, 0.15, 0.07];
const FOREST_DRY: Spectrum = [0.04, 0.065, 0.06, 0.26, 0.22, 0.13];

/// Greenness of the seasonal vegetation on a day of the year: 1 at the end of the monsoon (early
/// September), 0 at the height of the dry season (early March).
pub fn greenness(day_of_year: u32) -> f32 {
    let phase = 2.0 * std::f32::consts::PI * (day_of_year as f32 - 248.0) / 365.0;
    0.5 + 0.5 * phase.cos()
}

/// Grass and shrub land: strong dry-season senescence (dry grass looks much like bare soil).
pub fn shrub(day_of_year: u32) -> Spectrum {
    mix(SHRUB_DRY, SHRUB_GREEN, greenness(day_of_year).powf(0.7))
}

/// Semi-deciduous forest: milder senescence.
pub fn forest(day_of_year: u32) -> Spectrum {
    mix(FOREST_DRY, FOREST_GREEN, 0.45 + 0.55 * greenness(day_of_year))
}

/// A rain-fed rice parcel's surface on a day of the year (`shift` days later than the calendar):
/// flooded and transplanted in July, green to October, harvested in November, stubble then
/// ploughed fallow through the dry season.
pub fn paddy(day_of_year: u32, shift: i32) -> Spectrum {
    let d = (day_of_year as i32 - shift).rem_euclid(365);
    match d {
        0..=120 => mix(STUBBLE, FALLOW, (d as f32 / 120.0).min(1.0)),
        121..=180 => mix(FALLOW, SHRUB_DRY, 0.3),
        181..=200 => PADDY_FLOOD,
        201..=230 => mix(PADDY_FLOOD, CROP, (d - 200) as f32 / 30.0),
        231..=300 => CROP,
        301..=320 => mix(CROP, STUBBLE, (d - 300) as f32 / 20.0),
        _ => STUBBLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndvi(s: Spectrum) -> f32 {
        (s[3] - s[2]) / (s[3] + s[2])
    }

    #[test]
    fn vegetation_is_green_in_the_monsoon_and_brown_in_the_dry_season() {
        let september = shrub(250);
        let march = shrub(65);
        assert!(ndvi(september) > 0.7, "{september:?}");
        assert!(ndvi(march) < 0.35, "{march:?}");
        assert!(ndvi(forest(65)) > ndvi(march));
    }

    #[test]
    fn paddies_are_green_in_september_and_bare_in_february() {
        assert!(ndvi(paddy(260, 0)) > 0.7);
        assert!(ndvi(paddy(40, 0)) < 0.3);
    }
}

//! The atmosphere of one acquisition: clouds (thick cores with thin edges, from value noise),
//! separate thin cirrus sheets, cloud shadows cast away from the sun, seasonal haze, and the
//! scene classification an imperfect L2A processor would give (bright roofs called cloud, thin
//! cloud and some shadows missed). Pure: no I/O.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha12Rng;

use crate::materials::{mix, Spectrum};

/// One acquisition's sky over the grid.
pub struct Sky {
    /// Cloud opacity per 10 m pixel, 0..1.
    pub alpha: Vec<f32>,
    /// Cloud-shadow strength per pixel, 0..1.
    pub shadow: Vec<f32>,
    /// Haze strength (additive path radiance scale).
    pub haze: f32,
    /// Whether the processor labels thin cirrus in this scene (else thin cloud passes as ground).
    pub cirrus_labelled: bool,
    /// Whether the processor labels cloud shadow in this scene.
    pub shadow_labelled: bool,
    /// Probability that a bright surface pixel is labelled cloud in this scene.
    pub bright_as_cloud: f32,
}

/// Smooth value noise on an n x n grid with features about `cell` pixels across.
fn value_noise(rng: &mut ChaCha12Rng, n: usize, cell: usize) -> Vec<f32> {
    let g = n / cell + 2;
    let lattice: Vec<f32> = (0..g * g).map(|_| rng.gen::<f32>()).collect();
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let mut out = vec![0.0; n * n];
    for r in 0..n {
        let fy = r as f32 / cell as f32;
        let (iy, ty) = (fy as usize, smooth(fy.fract()));
        for c in 0..n {
            let fx = c as f32 / cell as f32;
            let (ix, tx) = (fx as usize, smooth(fx.fract()));
            let v = |x: usize, y: usize| lattice[y * g + x];
            let top = v(ix, iy) * (1.0 - tx) + v(ix + 1, iy) * tx;
            let bottom = v(ix, iy + 1) * (1.0 - tx) + v(ix + 1, iy + 1) * tx;
            out[r * n + c] = top * (1.0 - ty) + bottom * ty;
        }
    }
    out
}

/// A field whose top `cover` share is cloud, as opacity: thick in the core, thin at the edges.
fn cloud_field(rng: &mut ChaCha12Rng, n: usize, cover: f32, max_alpha: f32, edge: f32) -> Vec<f32> {
    if cover <= 0.0 {
        return vec![0.0; n * n];
    }
    let big = rng.gen_range(35..90);
    let a = value_noise(rng, n, big);
    let b = value_noise(rng, n, (big / 3).max(4));
    let c = value_noise(rng, n, 5);
    let f: Vec<f32> = (0..n * n).map(|i| 0.6 * a[i] + 0.3 * b[i] + 0.1 * c[i]).collect();
    let mut sorted = f.clone();
    sorted.sort_by(f32::total_cmp);
    let k = (((1.0 - cover) * (n * n) as f32) as usize).min(n * n - 1);
    let threshold = sorted[k];
    f.iter()
        .map(|&v| {
            if v < threshold {
                0.0
            } else {
                max_alpha * ((v - threshold) / edge).min(1.0).powf(0.7)
            }
        })
        .collect()
}

impl Sky {
    /// Draws the sky of an acquisition on `date` over an n x n grid.
    pub fn draw(rng: &mut ChaCha12Rng, n: usize, date: NaiveDate) -> Sky {
        let month = date.month();
        let u: f32 = rng.gen();
        // Scene cloud cover by season: June-October mostly overcast, November-April mostly clear.
        let cover = match month {
            6..=9 => {
                if u < 0.55 {
                    rng.gen_range(0.9..1.0)
                } else {
                    rng.gen_range(0.3..0.9)
                }
            }
            10 | 5 => {
                if u < 0.35 {
                    rng.gen_range(0.85..1.0)
                } else if u < 0.55 {
                    0.0
                } else {
                    rng.gen_range(0.1..0.7)
                }
            }
            _ => {
                if u < 0.55 {
                    0.0
                } else if u < 0.85 {
                    rng.gen_range(0.02..0.3)
                } else {
                    rng.gen_range(0.3..0.8)
                }
            }
        };
        let (max_alpha, edge) = (rng.gen_range(0.85..1.0), rng.gen_range(0.06..0.15));
        let thick = cloud_field(rng, n, cover, max_alpha, edge);
        let cirrus_p = if (5..=10).contains(&month) { 0.25 } else { 0.12 };
        let cirrus = if rng.gen_bool(cirrus_p) {
            let (cover, max_alpha) = (rng.gen_range(0.3..1.0), rng.gen_range(0.05..0.25));
            cloud_field(rng, n, cover, max_alpha, 0.3)
        } else {
            vec![0.0; n * n]
        };
        let alpha: Vec<f32> = thick
            .iter()
            .zip(&cirrus)
            .map(|(a, b)| 1.0 - (1.0 - a) * (1.0 - b))
            .collect();
        // Shadows fall away from the sun (to the north-west in the morning), 15-60 pixels off.
        let d = rng.gen_range(15.0..60.0f32);
        let az = rng.gen_range(100.0..160.0f32).to_radians();
        let (dx, dy) = ((-d * az.sin()) as isize, (d * az.cos()) as isize);
        let mut shadow = vec![0.0; n * n];
        for r in 0..n as isize {
            for c in 0..n as isize {
                let (sr, sc) = (r - dy, c - dx);
                if sr >= 0 && sc >= 0 && (sr as usize) < n && (sc as usize) < n {
                    let a = thick[sr as usize * n + sc as usize];
                    if a > 0.3 {
                        shadow[r as usize * n + c as usize] = a;
                    }
                }
            }
        }
        let haze = match month {
            3 | 4 => rng.gen_range(0.3..1.5),
            11 | 12 | 1 | 2 => rng.gen_range(0.0..0.5),
            _ => rng.gen_range(0.0..0.3),
        };
        let bright_as_cloud = if rng.gen_bool(0.4) {
            0.0
        } else {
            rng.gen_range(0.3..1.0)
        };
        Sky {
            alpha,
            shadow,
            haze,
            cirrus_labelled: rng.gen_bool(0.5),
            shadow_labelled: rng.gen_bool(0.85),
            bright_as_cloud,
        }
    }

    /// A cloudless sky (for tests).
    pub fn clear(n: usize) -> Sky {
        Sky {
            alpha: vec![0.0; n * n],
            shadow: vec![0.0; n * n],
            haze: 0.0,
            cirrus_labelled: true,
            shadow_labelled: true,
            bright_as_cloud: 0.0,
        }
    }

    /// Whether pixel `p` gives a clear view of the ground (no cloud, thin or thick, no shadow).
    pub fn clear_at(&self, p: usize) -> bool {
        self.alpha[p] < 0.03 && self.shadow[p] < 0.1
    }

    /// Share of pixels under any cloud above 0.1 opacity, in percent (the item's eo:cloud_cover).
    pub fn cloud_cover_percent(&self) -> f64 {
        let n = self.alpha.iter().filter(|&&a| a > 0.1).count();
        (n as f64 / self.alpha.len() as f64 * 10_000.0).round() / 100.0
    }

    /// What the sensor sees at pixel `p` over `ground`: shadowed, hazed, then clouded.
    pub fn observe(&self, p: usize, ground: Spectrum) -> Spectrum {
        const CLOUD: Spectrum = [0.43, 0.42, 0.41, 0.43, 0.33, 0.24];
        const PATH: Spectrum = [0.025, 0.018, 0.012, 0.005, 0.001, 0.0];
        let dark = 1.0 - 0.7 * self.shadow[p];
        let lit: Spectrum = std::array::from_fn(|i| ground[i] * dark + PATH[i] * self.haze);
        mix(lit, CLOUD, self.alpha[p])
    }
}

/// The scene classification of a 20 m pixel from its mean observed reflectance, mean cloud
/// opacity, shadow and terrain illumination, as an imperfect processor would label it.
pub fn classify(sky: &Sky, rng: &mut ChaCha12Rng, obs: Spectrum, alpha: f32, shadow: f32, illum: f32) -> u16 {
    if alpha >= 0.6 {
        return 9;
    }
    if alpha >= 0.35 {
        return 8;
    }
    if alpha >= 0.1 && sky.cirrus_labelled {
        return 10;
    }
    if shadow > 0.3 && sky.shadow_labelled {
        return 3;
    }
    let [b, g, r, n, _, _] = obs;
    let bright = b >= 0.2 && (b + g + r) / 3.0 >= 0.22 && n / r.max(1e-3) < 1.6;
    if bright && rng.gen::<f32>() < sky.bright_as_cloud {
        return if b > 0.35 { 9 } else { 8 };
    }
    if illum < 0.5 {
        return 2;
    }
    if n < 0.06 && g > n {
        return 6;
    }
    let ndvi = (n - r) / (n + r).max(1e-3);
    if ndvi > 0.4 {
        4
    } else if rng.gen::<f32>() < 0.01 {
        7
    } else {
        5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_cover(month: u32) -> f64 {
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        let date = NaiveDate::from_ymd_opt(2022, month, 10).unwrap();
        (0..20)
            .map(|_| Sky::draw(&mut rng, 60, date).cloud_cover_percent())
            .sum::<f64>()
            / 20.0
    }

    #[test]
    fn the_monsoon_is_much_cloudier_than_the_dry_season() {
        let (august, january) = (mean_cover(8), mean_cover(1));
        assert!(august > 70.0, "August {august}");
        assert!(january < 30.0, "January {january}");
    }

    #[test]
    fn a_bright_roof_is_called_cloud_when_the_scene_confuses_them_and_not_otherwise() {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let white = crate::materials::Roof::WhiteMembrane.spectrum();
        let mut sky = Sky::clear(2);
        sky.bright_as_cloud = 1.0;
        assert_eq!(classify(&sky, &mut rng, white, 0.0, 0.0, 1.0), 9);
        sky.bright_as_cloud = 0.0;
        assert_eq!(classify(&sky, &mut rng, white, 0.0, 0.0, 1.0), 5);
    }

    #[test]
    fn thin_cloud_passes_as_ground_when_cirrus_is_not_labelled() {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let mut sky = Sky::clear(2);
        let grass = crate::materials::shrub(250);
        sky.cirrus_labelled = false;
        let hazy = mix(grass, [0.43, 0.42, 0.41, 0.43, 0.33, 0.24], 0.2);
        assert_eq!(classify(&sky, &mut rng, hazy, 0.2, 0.0, 1.0), 4);
        sky.cirrus_labelled = true;
        assert_eq!(classify(&sky, &mut rng, hazy, 0.2, 0.0, 1.0), 10);
    }
}

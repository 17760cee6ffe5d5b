//! Stage 5, assemble: the blocks' results become whole-grid layers and polygons. A pixel whose
//! built-up score stepped is kept where the spectral change confirms it
//! ([`crate::detect::kernel::confirmed`]); kept pixels are grouped into regions of at least the
//! minimum mapping unit, and each region becomes a [`Detection`] dated by its earliest pixels and
//! confirmed once half of it is.

use std::collections::BTreeSet;

use crate::detect::composite::median;
use crate::detect::kernel::{confirmed, BlockResult, Kind, MonthCounts, PixelChange, Recent};
use crate::detect::mask::dilate;
use crate::detect::spectral::changed_regions;
use crate::detect::vectorize::{self, label_regions, Region};
use crate::error::Result;
use crate::grid::{Grid, Projector};
use crate::io::source::Scene;
use crate::month::Month;
use crate::output::report::{self, BelowUnit, Detection, Status, BELOW_UNIT_FROM_M2};
use crate::output::summary::MonthFigures;
use crate::scan::config::ScanConfig;

/// Share of a region's pixels that date it: the earliest tenth that shows the new surface (a
/// compound's first roofs), not the month most of it was built.
const FIRST_SHARE: f64 = 0.1;

/// ... and at least this many pixels, so a speck does not date a region.
const FIRST_PIXELS: usize = 5;

/// The whole grid, put together from its blocks.
#[derive(Debug, Clone)]
pub(crate) struct Assembled {
    /// New construction, by first month and id.
    pub(crate) construction: Vec<Detection>,
    /// Demolition, by first month and id.
    pub(crate) demolition: Vec<Detection>,
    /// The recent composite of the whole grid, row-major.
    pub(crate) recent: Recent,
    /// Per month of the period, over the AOI.
    pub(crate) months: Vec<MonthCounts>,
    /// Construction seen but smaller than the minimum mapping unit, so not in the report.
    pub(crate) below_unit: BelowUnit,
}

impl Assembled {
    /// The monthly counts, taken out, as the summary's measured months: `scenes[m]` scenes were
    /// acquired in `months[m]`, over an AOI of `aoi_pixels` pixels of `res` metres.
    pub(crate) fn month_figures(
        &mut self,
        months: &[Month],
        scenes: &[usize],
        aoi_pixels: u64,
        res: f64,
    ) -> Vec<MonthFigures> {
        months
            .iter()
            .zip(std::mem::take(&mut self.months))
            .zip(scenes)
            .map(|((&month, counts), &n)| MonthFigures::measured(month, n, &counts, aoi_pixels, res))
            .collect()
    }
}

/// Puts the blocks (in row order) together and draws the polygons.
pub(crate) fn assemble(
    config: &ScanConfig,
    grid: &Grid,
    blocks: Vec<BlockResult>,
    scenes: &[Scene],
    months: &[Month],
) -> Result<Assembled> {
    let mut recent = Recent::default();
    let mut magnitude = Vec::with_capacity(grid.len());
    let mut built_share = Vec::with_capacity(grid.len());
    let mut counts = vec![MonthCounts::default(); months.len()];
    let mut changes = Vec::new();
    let mut offset = 0;
    for block in blocks {
        recent.extend(block.recent);
        for (total, m) in counts.iter_mut().zip(&block.months) {
            total.add(m);
        }
        changes.extend(block.changes.into_iter().map(|c| PixelChange {
            pixel: c.pixel + offset,
            ..c
        }));
        offset += block.magnitude.len();
        magnitude.extend(block.magnitude);
        built_share.extend(block.built_share);
    }
    let changed = changed_regions(&magnitude, grid.width, grid.height, &config.detect);
    let polygons = Polygons {
        config,
        grid,
        scenes,
        months,
        to_wgs84: Projector::new(grid.epsg, 4326)?,
        changed,
        magnitude,
    };
    let (construction, built, below_unit) = polygons.of(&changes, Kind::Construction)?;
    let (demolition, unbuilt, _) = polygons.of(&changes, Kind::Demolition)?;
    for (count, stable) in counts
        .iter_mut()
        .zip(stable_builtup(&built_share, &built, &unbuilt, months.len()))
    {
        (count.stable_pixels, count.ambiguous_pixels) = stable;
    }
    for (month, pixels) in &unbuilt {
        counts[*month].demolished_pixels += pixels.len() as u64;
    }
    Ok(Assembled {
        construction,
        demolition,
        recent,
        months: counts,
        below_unit,
    })
}

/// The regions of `kept` from [`BELOW_UNIT_FROM_M2`] up to `min_pixels` pixels.
fn below_unit(kept: &[bool], grid: &Grid, min_pixels: usize) -> BelowUnit {
    let pixel_m2 = grid.res * grid.res;
    let from = (BELOW_UNIT_FROM_M2 / pixel_m2).ceil().max(1.0) as usize;
    let (_, regions) = label_regions(kept, grid.width, grid.height);
    let small: Vec<usize> = regions
        .iter()
        .map(Vec::len)
        .filter(|&n| n >= from && n < min_pixels)
        .collect();
    BelowUnit {
        regions: small.len(),
        area_m2: small.iter().sum::<usize>() as f64 * pixel_m2,
    }
}

/// The pixels of a confirmed region, and the index of the month it is dated to.
type Dated = (usize, Vec<usize>);

/// Built-up share of a pixel's clear months above which it counts as built, when no confirmed
/// region says otherwise ...
const BUILT_SHARE: f32 = 0.5;

/// ... and the band of shares around it whose pixels are ambiguous: the estimate's uncertainty.
const AMBIGUOUS_SHARE: (f32, f32) = (0.3, 0.7);

/// The stable built-up estimate per month: (built pixels, ambiguous pixels). A pixel of a confirmed
/// construction region is built from the region's month on, one of a confirmed demolition region
/// until its month; any other pixel is built in every month when it is built-up in most of its clear
/// months (`built_share`, NaN outside the AOI). So the estimate moves from month to month by
/// exactly the confirmed construction and demolition of that month, in pixels; seasons, clouds and
/// partly seen months do not move it.
fn stable_builtup(built_share: &[f32], built: &[Dated], unbuilt: &[Dated], n_months: usize) -> Vec<(u64, u64)> {
    let mut dated = vec![false; built_share.len()];
    let mut step = vec![0i64; n_months + 1];
    for (month, pixels) in built {
        for &p in pixels {
            dated[p] = true;
            step[*month] += 1;
        }
    }
    for (month, pixels) in unbuilt {
        for &p in pixels {
            dated[p] = true;
            step[0] += 1;
            step[*month] -= 1;
        }
    }
    let (mut base, mut ambiguous) = (0i64, 0u64);
    for (&share, _) in built_share.iter().zip(&dated).filter(|(s, &d)| !d && !s.is_nan()) {
        base += i64::from(share > BUILT_SHARE);
        ambiguous += u64::from((AMBIGUOUS_SHARE.0..=AMBIGUOUS_SHARE.1).contains(&share));
    }
    step.iter()
        .take(n_months)
        .scan(base, |total, s| {
            *total += s;
            Some(((*total).max(0) as u64, ambiguous))
        })
        .collect()
}

/// What turns confirmed pixels into polygons.
struct Polygons<'a> {
    config: &'a ScanConfig,
    grid: &'a Grid,
    scenes: &'a [Scene],
    months: &'a [Month],
    to_wgs84: Projector,
    /// Per grid pixel: in a region of significant spectral change.
    changed: Vec<bool>,
    /// Per grid pixel: the spectral step magnitude (unsmoothed).
    magnitude: Vec<f32>,
}

/// Construction grows from its roofs by at most this many pixels (30 m): the yard between a
/// compound's rows of roofs and its walls, not the field beside it.
const GROW_PIXELS: usize = 3;

/// A construction region holds at least this many pixels whose built-up score stepped up (roofs) ...
const SEED_PIXELS: usize = 4;

/// ... and at least this share of its pixels: a cleared yard with a few roofs on it is a compound,
/// a quarry floor with a speck of noise is not.
const SEED_SHARE: f64 = 0.05;

impl Polygons<'_> {
    /// The polygons of one kind, sorted by first month and id, the confirmed ones' pixels, and
    /// what was seen below the mapping unit.
    fn of(&self, changes: &[PixelChange], kind: Kind) -> Result<(Vec<Detection>, Vec<Dated>, BelowUnit)> {
        let grid = self.grid;
        let mut at = vec![usize::MAX; grid.len()];
        for (i, c) in changes.iter().enumerate().filter(|(_, c)| c.kind == kind) {
            at[c.pixel] = i;
        }
        let stepped: Vec<bool> = at.iter().map(|&i| i != usize::MAX).collect();
        let seeds = confirmed(&stepped, &self.changed);
        let kept = match kind {
            Kind::Construction => self.grown(&seeds),
            Kind::Demolition => seeds,
        };
        let min_pixels = (self.config.min_area_m2 / (grid.res * grid.res)).ceil().max(1.0) as usize;
        let below_unit = below_unit(&kept, grid, min_pixels);
        let mut found = Vec::new();
        let mut dated = Vec::new();
        for region in vectorize::regions(&kept, grid, min_pixels)? {
            let pixels: Vec<&PixelChange> = region
                .pixels
                .iter()
                .filter(|&&p| at[p] != usize::MAX)
                .map(|&p| &changes[at[p]])
                .collect();
            let d = self.detection(kind, &region, &pixels)?;
            if d.status == Status::Provisional && pixels.len() < min_pixels {
                // Provisional evidence stands alone: its own roof pixels must reach the mapping
                // unit, without the yard grown around them.
                continue;
            }
            if d.status == Status::Confirmed {
                let month = self
                    .months
                    .iter()
                    .position(|&m| m == d.first_detected)
                    .expect("a month of the period");
                dated.push((month, region.pixels));
            }
            found.push(d);
        }
        found.sort_by(|a, b| (a.first_detected, &a.id).cmp(&(b.first_detected, &b.id)));
        Ok((found, dated, below_unit))
    }

    /// Construction grown from its roofs: the connected pixels of significant spectral change
    /// (magnitude at least `change_low`, in a changed region) within [`GROW_PIXELS`] of the roof
    /// pixels (`seeds`), kept
    /// where they hold enough roofs ([`SEED_PIXELS`], [`SEED_SHARE`]). A compound's cleared yard,
    /// walls and hard-standing join its roofs in one polygon; a quarry or a cleared field with no
    /// roof on it is not construction.
    fn grown(&self, seeds: &[bool]) -> Vec<bool> {
        let low = self.config.detect.change_low;
        let near = dilate(seeds, self.grid.width, self.grid.height, GROW_PIXELS);
        let ground: Vec<bool> = (0..seeds.len())
            .map(|p| seeds[p] || (near[p] && self.changed[p] && self.magnitude[p] >= low))
            .collect();
        let (_, components) = label_regions(&ground, self.grid.width, self.grid.height);
        let mut kept = vec![false; seeds.len()];
        for pixels in components {
            let n_seeds = pixels.iter().filter(|&&p| seeds[p]).count();
            if n_seeds >= SEED_PIXELS.max((SEED_SHARE * pixels.len() as f64).ceil() as usize) {
                for p in pixels {
                    kept[p] = true;
                }
            }
        }
        kept
    }

    /// One region's polygon, dated, scored and with its evidence.
    ///
    /// Dated by its earliest pixels: `first_detected` is the month by which [`FIRST_SHARE`] of its
    /// pixels (at least [`FIRST_PIXELS`]) show the new surface, `last_clear_before` that pixel's last
    /// clear month before. Confirmed once at least half its pixels are, on the month that half was
    /// reached; provisional before.
    fn detection(&self, kind: Kind, region: &Region, pixels: &[&PixelChange]) -> Result<Detection> {
        let mut dated: Vec<(usize, usize)> = pixels.iter().map(|p| (p.month, p.last_before)).collect();
        dated.sort_unstable();
        let k =
            ((pixels.len() as f64 * FIRST_SHARE).ceil() as usize).clamp(FIRST_PIXELS.min(pixels.len()), pixels.len());
        let (first, last_before) = dated[k.max(1) - 1];
        let mut confirmed_on: Vec<usize> = pixels.iter().filter_map(|p| p.confirmed_on).collect();
        confirmed_on.sort_unstable();
        let half = pixels.len().div_ceil(2);
        let confirmed_on = (confirmed_on.len() >= half).then(|| confirmed_on[half - 1]);
        let confidence = pixels.iter().map(|p| p.confidence as f64).sum::<f64>() / pixels.len() as f64;
        let mut obs: Vec<f32> = pixels.iter().map(|p| p.clear_obs as f32).collect();
        let evidence: BTreeSet<u32> = pixels.iter().flat_map(|p| p.evidence.iter().copied()).collect();
        let mut evidence: Vec<&Scene> = evidence.into_iter().map(|s| &self.scenes[s as usize]).collect();
        evidence.sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
        let first_pixel = region.pixels[0];
        let outline = report::wgs84_outline(&region.outline, &self.to_wgs84)?;
        let kind = match kind {
            Kind::Construction => "",
            Kind::Demolition => "demolition-",
        };
        Ok(Detection {
            id: format!(
                "{}-{kind}r{:05}c{:05}",
                self.config.aoi.slug,
                first_pixel / self.grid.width,
                first_pixel % self.grid.width
            ),
            area_m2: report::area_m2(&outline),
            outline,
            status: if confirmed_on.is_some() {
                Status::Confirmed
            } else {
                Status::Provisional
            },
            first_detected: self.months[first],
            last_clear_before: self.months[last_before],
            confirmed_on: confirmed_on.map(|m| self.months[m]),
            confidence,
            n_clear_obs: median(&mut obs).round() as u32,
            scenes: evidence.into_iter().map(|s| s.id.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_estimate_moves_only_by_confirmed_construction_and_demolition() {
        // Six pixels: two built most of the time, one ambiguous (half), one never built, one
        // built by construction in month 2, one demolished in month 3; NaN is outside the AOI.
        let share = [0.9, 0.8, 0.5, 0.0, 0.0, 1.0, f32::NAN];
        let built = vec![(2, vec![4])];
        let unbuilt = vec![(3, vec![5])];
        let stable = stable_builtup(&share, &built, &unbuilt, 5);
        let pixels: Vec<u64> = stable.iter().map(|s| s.0).collect();
        // Base: pixels 0 and 1 (0.5 is not "most"); pixel 5 until month 3; pixel 4 from month 2.
        assert_eq!(pixels, vec![3, 3, 4, 3, 3]);
        // Pixel 2 (half its months) is the uncertainty; dated pixels are not ambiguous.
        assert!(stable.iter().all(|s| s.1 == 1));
    }
}

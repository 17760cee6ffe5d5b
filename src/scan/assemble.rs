//! Stage 5, assemble: the blocks' results become whole-grid layers and polygons. A pixel whose
//! built-up score stepped is kept where the spectral change confirms it
//! ([`crate::detect::kernel::confirmed`]); kept pixels are grouped into regions of at least the
//! minimum mapping unit, and each region becomes a [`Detection`] dated by the lower median of its
//! pixels' months.

use std::collections::BTreeSet;

use crate::detect::composite::median;
use crate::detect::kernel::{confirmed, BlockResult, Kind, MonthCounts, PixelChange};
use crate::detect::spectral::changed_regions;
use crate::detect::vectorize::{self, Region};
use crate::error::Result;
use crate::grid::{Grid, Projector};
use crate::io::source::Scene;
use crate::month::Month;
use crate::output::report::{self, Detection};
use crate::output::summary::MonthFigures;
use crate::scan::config::ScanConfig;

/// The whole grid, put together from its blocks.
#[derive(Debug, Clone)]
pub(crate) struct Assembled {
    /// New construction, by first month and id.
    pub(crate) construction: Vec<Detection>,
    /// Demolition, by first month and id.
    pub(crate) demolition: Vec<Detection>,
    /// Latest clear composite of red, green, blue and NIR, reflectance x 10000, row-major.
    pub(crate) latest: [Vec<u16>; 4],
    /// Per month of the period, over the AOI.
    pub(crate) months: Vec<MonthCounts>,
}

impl Assembled {
    /// The monthly counts, taken out, as the summary's measured months: `by_month[m]` are the
    /// scenes of `months[m]`, over an AOI of `aoi_pixels` pixels of `res` metres.
    pub(crate) fn month_figures(
        &mut self,
        months: &[Month],
        by_month: &[Vec<usize>],
        aoi_pixels: u64,
        res: f64,
    ) -> Vec<MonthFigures> {
        months
            .iter()
            .zip(std::mem::take(&mut self.months))
            .zip(by_month)
            .map(|((&month, counts), ids)| MonthFigures::measured(month, ids.len(), &counts, aoi_pixels, res))
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
    let mut latest: [Vec<u16>; 4] = Default::default();
    let mut magnitude = Vec::with_capacity(grid.len());
    let mut counts = vec![MonthCounts::default(); months.len()];
    let mut changes = Vec::new();
    let mut offset = 0;
    for block in blocks {
        for (i, band) in block.latest.into_iter().enumerate() {
            latest[i].extend(band);
        }
        for (total, m) in counts.iter_mut().zip(&block.months) {
            total.add(m);
        }
        changes.extend(block.changes.into_iter().map(|c| PixelChange {
            pixel: c.pixel + offset,
            ..c
        }));
        offset += block.magnitude.len();
        magnitude.extend(block.magnitude);
    }
    let changed = changed_regions(&magnitude, grid.width, grid.height, &config.detect);
    let polygons = Polygons {
        config,
        grid,
        scenes,
        months,
        to_wgs84: Projector::new(grid.epsg, 4326)?,
        changed,
    };
    Ok(Assembled {
        construction: polygons.of(&changes, Kind::Construction)?,
        demolition: polygons.of(&changes, Kind::Demolition)?,
        latest,
        months: counts,
    })
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
}

impl Polygons<'_> {
    /// The polygons of one kind, sorted by first month and id.
    fn of(&self, changes: &[PixelChange], kind: Kind) -> Result<Vec<Detection>> {
        let grid = self.grid;
        let mut at = vec![usize::MAX; grid.len()];
        for (i, c) in changes.iter().enumerate().filter(|(_, c)| c.kind == kind) {
            at[c.pixel] = i;
        }
        let stepped: Vec<bool> = at.iter().map(|&i| i != usize::MAX).collect();
        let kept = confirmed(&stepped, &self.changed);
        let min_pixels = (self.config.min_area_m2 / (grid.res * grid.res)).ceil().max(1.0) as usize;
        let mut found = vectorize::regions(&kept, grid, min_pixels)?
            .iter()
            .map(|region| {
                let pixels: Vec<&PixelChange> = region.pixels.iter().map(|&p| &changes[at[p]]).collect();
                self.detection(kind, region, &pixels)
            })
            .collect::<Result<Vec<_>>>()?;
        found.sort_by(|a, b| (a.first_detected, &a.id).cmp(&(b.first_detected, &b.id)));
        Ok(found)
    }

    /// One region's polygon, dated, scored and with its evidence.
    fn detection(&self, kind: Kind, region: &Region, pixels: &[&PixelChange]) -> Result<Detection> {
        let mut month_idx: Vec<usize> = pixels.iter().map(|p| p.month).collect();
        month_idx.sort_unstable();
        // The lower median: a region is dated when at least half of it has changed.
        let first = month_idx[(month_idx.len() - 1) / 2];
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
            first_detected: self.months[first],
            confidence,
            n_clear_obs: median(&mut obs).round() as u32,
            scenes: evidence.into_iter().map(|s| s.id.clone()).collect(),
        })
    }
}

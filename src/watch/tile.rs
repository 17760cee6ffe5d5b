//! Region-wide sites: a site larger than one worker should hold is cut into tiles on its scan grid,
//! each tile is scanned as a site of its own, and the tiles' reports are merged into the report the
//! unsplit scan would have written.
//!
//! Tiles are rectangles of the region's grid (the grid `scan::run` would use for the whole site),
//! so every tile pixel is a region pixel. Each tile is scanned with a margin of
//! [`MARGIN_PIXELS`] around its core: the pixel rules that look at neighbours (cloud buffer,
//! smoothing, growth from roofs) reach a few pixels, and a compound is a few hundred metres, so a
//! polygon that crosses a seam is usually whole inside one tile's margin. The merge keeps:
//!
//! - every polygon that lies whole inside a tile (it comes no nearer than `GUARD_PIXELS` to a
//!   cut edge of the tile's margin):
//!   its pixels and id are those of the unsplit scan. A polygon whole in two tiles is kept once,
//!   from the tile whose core holds its first pixel;
//! - of a polygon larger than the margin (cut in every tile it crosses), each tile's piece inside
//!   that tile's core, the pieces that touch across seams unioned into one polygon (see
//!   [`merge`] for how its figures are combined).
//!
//! The pieces are not the unsplit scan's polygon: a tile decides a cut polygon's regions
//! (hysteresis of the spectral change, growth from roofs and its share of roofs, the minimum
//! mapping unit) on the part it sees. So a polygon put together from pieces is scanned again in a
//! patch, a tile whose core is the polygon's bounding cells with a margin around them, doubled
//! each round while it is still cut (at most `PATCH_ROUNDS` rounds, each patch at most
//! `PATCH_TILES` times the largest tile); the patch's whole polygons replace the pieces. Only a
//! polygon larger than that stays a union of pieces.
//!
//! Each tile is an ordinary scan ([`crate::scan::run`]) into `<site>/tiles/<name>/`, with the
//! region's statistics given ([`crate::scan::region`]: per scene its offset and whether it is mostly
//! clear, and the spectral normalization, measured once over the whole region in a first pass), so
//! that its pixels are the unsplit scan's; the merged report, demolition layer and diff go to the
//! site's folder. Never prints; reads no imagery itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use geo::{Area, BooleanOps, BoundingRect, Coord, Intersects, MultiPolygon, Polygon, Rect};
use geojson::{Feature, FeatureCollection};
use serde_json::{json, Value};

use crate::aoi::Aoi;
use crate::error::{Error, Result};
use crate::grid::{Grid, Projector};
use crate::io::source::{SceneSearch, Skipped};
use crate::io::window::WindowReader;
use crate::output::diff;
use crate::output::report::{self, multipolygon_of};
use crate::output::round;
use crate::scan::region::Part;
use crate::scan::{self, Progress, RegionStats, ScanConfig, ScanSummary};

/// The analysis resolution, metres (as `scan::run` uses).
const RES: f64 = 10.0;

/// The tile size when the watch list sets none, km² of grid: 250 km² is 2.5 million pixels, about
/// 2.2 GB at the peak of a 24-month scan (see [`super::estimate_mb`]); a site up to that size is
/// one tile, a 5,000 km² border strip (its bounding box larger still) is a few dozen.
pub const DEFAULT_TILE_KM2: f64 = 250.0;

/// Pixels of margin scanned around each tile's core (480 m): well beyond the reach of every
/// neighbourhood rule (cloud buffer 2, smoothing 3, growth 3 pixels) and larger than most
/// compounds, so a polygon across a seam is whole in one tile.
pub const MARGIN_PIXELS: usize = 48;

/// Pixels next to a tile's cut edge whose neighbourhood the tile did not see whole: the reach of
/// the neighbourhood rules (smoothing 3, growth 3, cloud buffer 2). A polygon this close to a cut
/// edge is not taken as whole from that tile.
const GUARD_PIXELS: f64 = 8.0;

/// A rectangle of grid cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    /// First row.
    pub row: usize,
    /// First column.
    pub col: usize,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Cells {
    /// The rectangle grown by `margin` on each side, within a grid of `height` x `width`.
    fn grown(self, margin: usize, height: usize, width: usize) -> Cells {
        let (row, col) = (self.row.saturating_sub(margin), self.col.saturating_sub(margin));
        Cells {
            row,
            col,
            rows: (self.row + self.rows + margin).min(height) - row,
            cols: (self.col + self.cols + margin).min(width) - col,
        }
    }

    fn contains(self, row: usize, col: usize) -> bool {
        (self.row..self.row + self.rows).contains(&row) && (self.col..self.col + self.cols).contains(&col)
    }

    /// The rectangle in the grid's CRS.
    fn map_rect(self, grid: &Grid) -> Polygon<f64> {
        let (a, b) = (
            grid.to_map(self.col as f64, (self.row + self.rows) as f64),
            grid.to_map((self.col + self.cols) as f64, self.row as f64),
        );
        Rect::new(a, b).to_polygon()
    }
}

/// One tile of a region.
#[derive(Debug, Clone)]
pub struct Tile {
    /// `r<R>c<C>`, its place in the tiling: the folder its scan writes to.
    pub name: String,
    /// The cells it owns.
    pub core: Cells,
    /// The cells it scans: the core and its margin.
    pub scanned: Cells,
    /// A patch: scanned after the tiles, around a polygon larger than their margin (see [`scan()`]);
    /// only the polygons it holds whole are taken from it.
    pub patch: bool,
    /// What it scans: the region's AOI cut to `scanned`, with the region's name and slug (so
    /// feature ids are formed as the region's).
    pub aoi: Aoi,
}

/// A region cut into tiles.
#[derive(Debug, Clone)]
pub struct Tiling {
    /// The region's AOI.
    pub aoi: Aoi,
    /// The region's grid: the grid an unsplit scan would use.
    pub grid: Grid,
    /// The tiles that hold part of the AOI, row by row.
    pub tiles: Vec<Tile>,
    /// Pixels of margin scanned around each tile's core.
    pub margin: usize,
}

/// The tiling of `aoi` into tiles of at most about `tile_km2` of grid each, scanned with a margin of
/// [`MARGIN_PIXELS`], or `None` when its grid is no larger than one tile.
pub fn plan(aoi: &Aoi, tile_km2: f64) -> Result<Option<Tiling>> {
    plan_with_margin(aoi, tile_km2, MARGIN_PIXELS)
}

/// [`plan`] with a margin of `margin` pixels (a larger one scans more twice; with a smaller one
/// more polygons cross it and are scanned again in patches, see [`scan()`]).
pub fn plan_with_margin(aoi: &Aoi, tile_km2: f64, margin: usize) -> Result<Option<Tiling>> {
    if !(tile_km2.is_finite() && tile_km2 > 0.0) {
        return Err(Error::Config {
            field: "tile_km2".into(),
            reason: format!("{tile_km2} must be a positive area in km²"),
        });
    }
    let grid = Grid::for_aoi(aoi, RES)?;
    let km2 = grid.len() as f64 * grid.res * grid.res / 1e6;
    if km2 <= tile_km2 {
        return Ok(None);
    }
    let side = (((tile_km2 * 1e6).sqrt() / grid.res) as usize).max(1);
    let (n_rows, n_cols) = (grid.height.div_ceil(side), grid.width.div_ceil(side));
    let region = Projector::new(4326, grid.epsg)?.multi_polygon(&aoi.geometry)?;
    let mut tiles = Vec::new();
    for i in 0..n_rows {
        for j in 0..n_cols {
            let (r0, r1) = (i * grid.height / n_rows, (i + 1) * grid.height / n_rows);
            let (c0, c1) = (j * grid.width / n_cols, (j + 1) * grid.width / n_cols);
            let core = Cells {
                row: r0,
                col: c0,
                rows: r1 - r0,
                cols: c1 - c0,
            };
            if let Some(tile) = tile_of(aoi, &grid, &region, format!("r{i}c{j}"), core, margin)? {
                tiles.push(tile);
            }
        }
    }
    Ok(Some(Tiling {
        aoi: aoi.clone(),
        grid,
        tiles,
        margin,
    }))
}

/// The tile `name` that owns `core` of `grid` and scans it with `margin` pixels around, or `None`
/// when its core holds no part of the region (`region`: the AOI in the grid's CRS).
fn tile_of(
    aoi: &Aoi,
    grid: &Grid,
    region: &MultiPolygon<f64>,
    name: String,
    core: Cells,
    margin: usize,
) -> Result<Option<Tile>> {
    let owned = region.intersection(&MultiPolygon::new(vec![core.map_rect(grid)]));
    if owned.unsigned_area() == 0.0 {
        return Ok(None);
    }
    let scanned = core.grown(margin, grid.height, grid.width);
    let part = region.intersection(&MultiPolygon::new(vec![scanned.map_rect(grid)]));
    let geometry = Projector::new(grid.epsg, 4326)?.multi_polygon(&part)?;
    Ok(Some(Tile {
        aoi: Aoi {
            name: aoi.name.clone(),
            slug: aoi.slug.clone(),
            origin: format!("{} (tile {name})", aoi.origin),
            area_m2: geo::GeodesicArea::geodesic_area_unsigned(&geometry),
            geometry,
            properties: aoi.properties.clone(),
        },
        name,
        core,
        scanned,
        patch: false,
    }))
}

/// Scans a region tile by tile (each with `config`'s settings, into `<out>/tiles/<name>/`), then
/// writes the merged `report.geojson`, `demolition.geojson` and `diff.geojson` (against the
/// previous merged report) into `config.out_dir`: [`measure`], [`scan_tile`] for each tile, then
/// [`finish`], the three steps a sharded run spreads over its shards and its gather. A tile that
/// fails or is refused fails the region; the tiles already published keep their outputs, and a
/// rerun scans every tile again (from the cache).
///
/// The summary's scene counts are the largest of any tile's (the tiles see the same scenes where
/// they overlap), its skipped scenes all of them, its windows the sum; it has no month figures.
pub fn scan(
    config: &ScanConfig,
    tiling: &Tiling,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let (stats, windows_fetched) = measure(config, tiling, source, reader, progress)?;
    let mut summaries = Vec::new();
    for tile in &tiling.tiles {
        summaries.push(scan_tile(config, tiling, tile, &stats, source, reader, progress)?);
    }
    let mut summary = finish(config, tiling, summaries, &stats, source, reader, progress)?;
    // The windows the first pass read are cached by the time the tiles' scans look for them.
    summary.windows_fetched += windows_fetched;
    summary.windows_cached = summary.windows_cached.saturating_sub(windows_fetched);
    Ok(summary)
}

/// The scan of `tile`: the region's `config` with the tile's AOI, on the region's grid, into
/// `<out>/tiles/<name>/`.
fn tile_config(config: &ScanConfig, tiling: &Tiling, tile: &Tile) -> ScanConfig {
    let mut tile_config = config.clone();
    tile_config.aoi = tile.aoi.clone();
    tile_config.out_dir = config.out_dir.join("tiles").join(&tile.name);
    tile_config.epsg = Some(tiling.grid.epsg);
    tile_config
}

/// The region's statistics ([`crate::scan::region`]), measured once over the cells each tile owns,
/// and how many scene bands were read from the source for them (into the cache the tiles' scans
/// then read).
pub fn measure(
    config: &ScanConfig,
    tiling: &Tiling,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<(RegionStats, usize)> {
    let parts: Vec<Part> = tiling
        .tiles
        .iter()
        .map(|tile| Part {
            config: tile_config(config, tiling, tile),
            rows: tile.core.row..tile.core.row + tile.core.rows,
            cols: tile.core.col..tile.core.col + tile.core.cols,
        })
        .collect();
    scan::region::measure(&tiling.grid, &parts, source, reader, progress)
}

/// Scans one tile (or patch) of the region into `<out>/tiles/<name>/`, computing with the region's
/// statistics `stats`, not its own (see [`crate::scan::region`]).
pub fn scan_tile(
    config: &ScanConfig,
    tiling: &Tiling,
    tile: &Tile,
    stats: &RegionStats,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let mut tile_config = tile_config(config, tiling, tile);
    tile_config.given = Some(stats.clone());
    scan::run(&tile_config, source, reader, progress)
}

/// Merges the tiles' scans (`summaries[i]` of `tiling.tiles[i]`), scans the patches the merge
/// needs (with the region's `stats`), and writes the region's `report.geojson`,
/// `demolition.geojson` and `diff.geojson` into `config.out_dir`. Returns the region's summary
/// (see [`scan()`]), without the windows of the first pass.
pub fn finish(
    config: &ScanConfig,
    tiling: &Tiling,
    mut summaries: Vec<ScanSummary>,
    stats: &RegionStats,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let out = &config.out_dir;
    let grid = &tiling.grid;
    if summaries.len() != tiling.tiles.len() {
        return Err(Error::State {
            path: out.join("tiles"),
            reason: format!(
                "{} tile scans for the {} tiles of the region; scan every tile, then merge",
                summaries.len(),
                tiling.tiles.len()
            ),
        });
    }
    // A polygon larger than the margin comes in pieces, each decided on part of it: it is scanned
    // again whole, in a patch around it, with a margin doubled each round it is still cut.
    let mut tiling = tiling.clone();
    let region = Projector::new(4326, grid.epsg)?.multi_polygon(&tiling.aoi.geometry)?;
    let largest = tiling
        .tiles
        .iter()
        .map(|t| t.scanned.rows * t.scanned.cols)
        .max()
        .unwrap_or(0);
    let mut round = 0;
    let (reports, construction, demolitions, demolition) = loop {
        let reports = read_reports(&summaries, |s| &s.report)?;
        let demolitions = read_reports(&summaries, |s| &s.demolition)?;
        let (construction, mut cut) = merge_cut(&tiling, &reports)?;
        let (demolition, more) = merge_cut(&tiling, &demolitions)?;
        cut.extend(more);
        let patches = match round < PATCH_ROUNDS {
            true => patches(&tiling, &region, cut, round, largest)?,
            false => Vec::new(),
        };
        if patches.is_empty() {
            break (reports, construction, demolitions, demolition);
        }
        for tile in patches {
            summaries.push(scan_tile(config, &tiling, &tile, stats, source, reader, progress)?);
            tiling.tiles.push(tile);
        }
        round += 1;
    };
    let _lock = scan::lock(out)?;
    let mut construction = merged_collection(&tiling, construction, &reports)?;
    let demolition = merged_collection(&tiling, demolition, &demolitions)?;
    let report_path = out.join("report.geojson");
    let previous = match report_path.is_file() {
        true => report::read_geojson(&report_path)?,
        false => FeatureCollection {
            bbox: None,
            features: Vec::new(),
            foreign_members: None,
        },
    };
    diff::stabilize_ids(&previous, &mut construction);
    let changes = diff::diff(&previous, &construction);
    report::write_geojson(&out.join("diff.geojson"), &changes.collection)?;
    report::write_geojson(&out.join("demolition.geojson"), &demolition)?;
    report::write_geojson(&report_path, &construction)?;
    Ok(combined(out, &summaries, &construction, changes.counts))
}

/// The patches of round `round` (from 0) around the polygons put together from pieces (their
/// bounding `cut` cells), each with the tiling's margin doubled each round; none larger
/// than [`PATCH_TILES`] times the `largest` tile's pixels.
fn patches(
    tiling: &Tiling,
    region: &MultiPolygon<f64>,
    cut: Vec<Cells>,
    round: usize,
    largest: usize,
) -> Result<Vec<Tile>> {
    let mut patches: Vec<Tile> = Vec::new();
    for cells in cut {
        let name = format!("patch{round}-r{}c{}", cells.row, cells.col);
        let Some(tile) = tile_of(&tiling.aoi, &tiling.grid, region, name, cells, tiling.margin << round)? else {
            continue;
        };
        let fits = tile.scanned.rows * tile.scanned.cols <= PATCH_TILES * largest;
        if fits && !patches.iter().any(|p| p.core == tile.core) {
            patches.push(Tile { patch: true, ..tile });
        }
    }
    Ok(patches)
}

/// Rounds of patches at most (with the default margin, 48, 96 and 192 pixels around a polygon's
/// pieces).
const PATCH_ROUNDS: usize = 3;

/// A patch scans at most this many times the pixels of the largest tile (a polygon larger still
/// stays the union of its pieces).
const PATCH_TILES: usize = 4;

/// Each scan's report picked by `pick` from its summary, with its path.
fn read_reports(
    summaries: &[ScanSummary],
    pick: fn(&ScanSummary) -> &PathBuf,
) -> Result<Vec<(PathBuf, FeatureCollection)>> {
    summaries
        .iter()
        .map(|s| Ok((pick(s).clone(), report::read_geojson(pick(s))?)))
        .collect()
}

/// The region's summary from its tiles' (see [`scan`]).
fn combined(
    out: &std::path::Path,
    tiles: &[ScanSummary],
    report: &FeatureCollection,
    changes: diff::Counts,
) -> ScanSummary {
    let most = |f: fn(&ScanSummary) -> usize| tiles.iter().map(f).max().unwrap_or(0);
    let mut skipped: BTreeMap<String, Skipped> = BTreeMap::new();
    let (mut no_data, mut cloudy) = (Vec::new(), Vec::new());
    for t in tiles {
        for s in &t.skipped {
            skipped.entry(s.id.clone()).or_insert_with(|| s.clone());
        }
        no_data.extend(t.no_data.iter().cloned());
        cloudy.extend(t.cloudy.iter().cloned());
    }
    for ids in [&mut no_data, &mut cloudy] {
        ids.sort();
        ids.dedup();
    }
    ScanSummary {
        scenes_found: most(|t| t.scenes_found),
        scenes_new: most(|t| t.scenes_new),
        scenes_used: most(|t| t.scenes_used),
        windows_fetched: tiles.iter().map(|t| t.windows_fetched).sum(),
        windows_cached: tiles.iter().map(|t| t.windows_cached).sum(),
        skipped: skipped.into_values().collect(),
        no_data,
        cloudy,
        windows_scouted: tiles.iter().map(|t| t.windows_scouted).sum(),
        months_with_scenes: most(|t| t.months_with_scenes),
        detections: report.features.len(),
        report: out.join("report.geojson"),
        composite: out.join("tiles"),
        diff: out.join("diff.geojson"),
        changes,
        project: out.join("tiles"),
        summary_page: out.join("tiles"),
        demolitions: tiles.iter().map(|t| t.demolitions).sum(),
        demolition: out.join("demolition.geojson"),
        months: Vec::new(),
        aoi_pixels: tiles.iter().map(|t| t.aoi_pixels).sum(),
    }
}

/// The merged features as a report: the first tile's provenance, with the region's AOI and grid,
/// every tile's scenes, skipped scenes and the tiles themselves.
fn merged_collection(
    tiling: &Tiling,
    features: Vec<Feature>,
    tiles: &[(PathBuf, FeatureCollection)],
) -> Result<FeatureCollection> {
    use crate::output::provenance::MEMBER;
    let member = |c: &FeatureCollection| c.foreign_members.as_ref().and_then(|m| m.get(MEMBER)).cloned();
    let mut provenance = tiles.first().and_then(|(_, c)| member(c)).unwrap_or_else(|| json!({}));
    let aoi = &tiling.aoi;
    provenance["aoi"] = json!({
        "name": aoi.name,
        "slug": aoi.slug,
        "origin": aoi.origin,
        "bbox": aoi.bbox(),
        "area_m2": aoi.area_m2.round(),
        "properties": aoi.properties,
    });
    provenance["grid"] = serde_json::to_value(&tiling.grid).map_err(|e| Error::Report {
        path: PathBuf::from("report.geojson"),
        reason: format!("its grid cannot be written ({e})"),
    })?;
    for list in ["scenes", "skipped"] {
        let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
        for value in tiles.iter().filter_map(|(_, c)| member(c)) {
            for item in value[list].as_array().into_iter().flatten() {
                let id = item["id"].as_str().unwrap_or_default().to_owned();
                by_id.entry(id).or_insert_with(|| item.clone());
            }
        }
        provenance[list] = Value::Array(by_id.into_values().collect());
    }
    provenance["tiles"] = Value::Array(
        tiling
            .tiles
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "core": {"row": t.core.row, "col": t.core.col, "rows": t.core.rows, "cols": t.core.cols},
                    "scanned": {
                        "row": t.scanned.row, "col": t.scanned.col, "rows": t.scanned.rows, "cols": t.scanned.cols
                    },
                    "patch": t.patch,
                })
            })
            .collect(),
    );
    let mut foreign = serde_json::Map::new();
    foreign.insert(MEMBER.into(), provenance);
    Ok(FeatureCollection {
        bbox: None,
        features,
        foreign_members: Some(foreign),
    })
}

/// A polygon id's parts: `<slug>-[demolition-]r<row>c<col>`, the row and column of its first pixel.
fn parse_id<'a>(id: &'a str, slug: &str) -> Option<(&'a str, usize, usize)> {
    let rest = id.strip_prefix(slug)?.strip_prefix('-')?;
    let at = rest.rfind('r')?;
    let (kind, cell) = rest.split_at(at);
    let (row, col) = cell[1..].split_once('c')?;
    Some((kind, row.parse().ok()?, col.parse().ok()?))
}

fn make_id(slug: &str, kind: &str, row: usize, col: usize) -> String {
    format!("{slug}-{kind}r{row:05}c{col:05}")
}

/// One tile's polygon, on the region's grid.
struct Found {
    feature: Feature,
    /// Outline in the grid's CRS.
    utm: MultiPolygon<f64>,
    /// It keeps away from the cut edges of its tile: the tile saw it and its neighbourhood whole.
    whole: bool,
    /// Its tile's core holds its first pixel.
    owned: bool,
    /// Its tile's core, in the grid's CRS.
    core: Polygon<f64>,
}

/// Merges the tiles' reports (`reports[i]` from `tiling.tiles[i]`'s scan, with the file it was
/// read from) into the region's features, sorted by first month and id as a scan sorts them.
///
/// A polygon cut by the margins is the union of its pieces inside each tile's core. Its figures
/// combine the pieces': `first_detected` the earliest (with that piece's `last_clear_before`),
/// `confidence` the area-weighted mean, `n_clear_obs` the area-weighted median, `scenes` all of
/// them; confirmed once pieces covering half its area are, on the month that half was reached (the
/// scan's rule, with area for pixels); `area_m2` is the union's geodesic area (the one way areas
/// are computed) and its id is formed from its first pixel, as the scan forms ids.
pub fn merge(tiling: &Tiling, reports: &[(PathBuf, FeatureCollection)]) -> Result<Vec<Feature>> {
    merge_cut(tiling, reports).map(|(features, _)| features)
}

/// [`merge`], and the cells of each polygon it had to put together from pieces (each polygon's
/// bounding cells): the polygons no tile saw whole. A patch tile's polygons that it did not see
/// whole are left out.
fn merge_cut(tiling: &Tiling, reports: &[(PathBuf, FeatureCollection)]) -> Result<(Vec<Feature>, Vec<Cells>)> {
    let grid = &tiling.grid;
    let slug = &tiling.aoi.slug;
    let to_utm = Projector::new(4326, grid.epsg)?;
    let mut found = Vec::new();
    for (tile, (path, collection)) in tiling.tiles.iter().zip(reports) {
        let fail = |reason: String| Error::Report {
            path: path.clone(),
            reason,
        };
        let tile_grid: Grid = collection
            .foreign_members
            .as_ref()
            .and_then(|m| m.get(crate::output::provenance::MEMBER))
            .and_then(|p| serde_json::from_value(p["grid"].clone()).ok())
            .ok_or_else(|| fail("has no `compound_watch.grid`; rescan the tile".into()))?;
        if tile_grid.epsg != grid.epsg || tile_grid.res != grid.res {
            return Err(fail(format!(
                "is on EPSG:{} at {} m, not the region's EPSG:{} at {} m; rescan the tile",
                tile_grid.epsg, tile_grid.res, grid.epsg, grid.res
            )));
        }
        let dr = ((grid.y0 - tile_grid.y0) / grid.res).round() as i64;
        let dc = ((tile_grid.x0 - grid.x0) / grid.res).round() as i64;
        for feature in &collection.features {
            let id = feature_id(feature);
            let (kind, row, col) = parse_id(&id, slug)
                .ok_or_else(|| fail(format!("holds a polygon id {id:?} not formed as {slug}-r<row>c<col>")))?;
            let (row, col) = ((row as i64 + dr) as usize, (col as i64 + dc) as usize);
            let utm = to_utm.multi_polygon(&multipolygon_of(feature))?;
            let mut feature = feature.clone();
            set_id(&mut feature, make_id(slug, kind, row, col));
            let whole = !touches_cut(&utm, tile.scanned, grid);
            if tile.patch && !whole {
                continue;
            }
            found.push(Found {
                whole,
                owned: tile.core.contains(row, col),
                core: tile.core.map_rect(grid),
                utm,
                feature,
            });
        }
    }
    let (mut wholes, pieces): (Vec<Found>, Vec<Found>) = found.into_iter().partition(|f| f.whole);
    // A polygon whole in two tiles is kept once: from the tile that owns its first pixel.
    wholes.sort_by_key(|f| !f.owned);
    let mut kept: BTreeMap<String, Found> = BTreeMap::new();
    for f in wholes {
        let id = feature_id(&f.feature);
        if !kept.contains_key(&id) && !kept.values().any(|k| overlaps(&k.utm, &f.utm)) {
            kept.insert(id, f);
        }
    }
    let pieces: Vec<(MultiPolygon<f64>, Feature)> = pieces
        .into_iter()
        .filter(|p| !kept.values().any(|k| overlaps(&k.utm, &p.utm)))
        .map(|p| (p.utm.intersection(&MultiPolygon::new(vec![p.core])), p.feature))
        .filter(|(utm, _)| utm.unsigned_area() > 0.0)
        .collect();
    let mut features: Vec<Feature> = kept.into_values().map(|f| f.feature).collect();
    let mut cut = Vec::new();
    for group in touching(pieces) {
        let (feature, cells) = union_of(group, grid, slug)?;
        features.push(feature);
        cut.push(cells);
    }
    features.sort_by_cached_key(|f| (text(f, "first_detected"), feature_id(f)));
    Ok((features, cut))
}

fn feature_id(feature: &Feature) -> String {
    match &feature.id {
        Some(geojson::feature::Id::String(s)) => s.clone(),
        _ => text(feature, "id"),
    }
}

fn set_id(feature: &mut Feature, id: String) {
    if let Some(props) = feature.properties.as_mut() {
        props.insert("id".into(), json!(id));
    }
    feature.id = Some(geojson::feature::Id::String(id));
}

fn text(feature: &Feature, key: &str) -> String {
    feature
        .property(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number(feature: &Feature, key: &str) -> f64 {
    feature.property(key).and_then(Value::as_f64).unwrap_or_default()
}

/// Whether an outline comes within [`GUARD_PIXELS`] of an edge of `scanned` that was cut from the
/// region (not the region grid's own edge): there, the tile did not see the rest of the polygon, or
/// all of its neighbourhood.
fn touches_cut(utm: &MultiPolygon<f64>, scanned: Cells, grid: &Grid) -> bool {
    let Some(r) = utm.bounding_rect() else { return false };
    let (col_min, col_max) = ((r.min().x - grid.x0) / grid.res, (r.max().x - grid.x0) / grid.res);
    let (row_min, row_max) = ((grid.y0 - r.max().y) / grid.res, (grid.y0 - r.min().y) / grid.res);
    let (top, left) = (scanned.row as f64, scanned.col as f64);
    let (bottom, right) = ((scanned.row + scanned.rows) as f64, (scanned.col + scanned.cols) as f64);
    (scanned.row > 0 && row_min < top + GUARD_PIXELS)
        || (scanned.col > 0 && col_min < left + GUARD_PIXELS)
        || (scanned.row + scanned.rows < grid.height && row_max > bottom - GUARD_PIXELS)
        || (scanned.col + scanned.cols < grid.width && col_max > right - GUARD_PIXELS)
}

/// Whether two outlines share area (not just an edge).
fn overlaps(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> bool {
    let boxes = a.bounding_rect().zip(b.bounding_rect());
    boxes.is_some_and(|(x, y)| x.intersects(&y)) && a.intersection(b).unsigned_area() > 0.0
}

/// The pieces in groups that touch or overlap, each group in the order given.
fn touching(pieces: Vec<(MultiPolygon<f64>, Feature)>) -> Vec<Vec<(MultiPolygon<f64>, Feature)>> {
    let n = pieces.len();
    let mut group: Vec<usize> = (0..n).collect();
    fn root(group: &mut [usize], mut i: usize) -> usize {
        while group[i] != i {
            group[i] = group[group[i]];
            i = group[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if pieces[i].0.intersects(&pieces[j].0) {
                let (a, b) = (root(&mut group, i), root(&mut group, j));
                group[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<(MultiPolygon<f64>, Feature)>> = BTreeMap::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        let r = root(&mut group, i);
        groups.entry(r).or_default().push(piece);
    }
    groups.into_values().collect()
}

/// One polygon from the pieces of a polygon cut by the tiles' margins (rules at [`merge`]), and
/// the cells it covers.
fn union_of(group: Vec<(MultiPolygon<f64>, Feature)>, grid: &Grid, slug: &str) -> Result<(Feature, Cells)> {
    let union = group
        .iter()
        .skip(1)
        .fold(group[0].0.clone(), |acc, (utm, _)| acc.union(utm));
    let areas: Vec<f64> = group.iter().map(|(utm, _)| utm.unsigned_area()).collect();
    let total: f64 = areas.iter().sum();
    let features: Vec<&Feature> = group.iter().map(|(_, f)| f).collect();
    let earliest = features
        .iter()
        .min_by_key(|f| text(f, "first_detected"))
        .expect("a group has a piece");
    let weighted = |key: &str| {
        features
            .iter()
            .zip(&areas)
            .map(|(f, a)| number(f, key) * a)
            .sum::<f64>()
            / total
    };
    let mut obs: Vec<(f64, f64)> = features
        .iter()
        .zip(&areas)
        .map(|(f, &a)| (number(f, "n_clear_obs"), a))
        .collect();
    obs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut confirmed: Vec<(String, f64)> = features
        .iter()
        .zip(&areas)
        .filter(|(f, _)| text(f, "status") == "confirmed")
        .map(|(f, &a)| (text(f, "confirmed_on"), a))
        .collect();
    confirmed.sort_by(|a, b| a.0.cmp(&b.0));
    let confirmed_on = half_way(&confirmed, total);
    let mut scenes: Vec<String> = features
        .iter()
        .flat_map(|f| f.property("scenes").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    scenes.sort();
    scenes.dedup();
    let to_wgs84 = Projector::new(grid.epsg, 4326)?;
    let outlines = union
        .0
        .iter()
        .map(|p| report::wgs84_outline(p, &to_wgs84))
        .collect::<Result<Vec<_>>>()?;
    let area_m2: f64 = outlines.iter().map(report::area_m2).sum();
    let (row, col) = first_pixel(&union, grid);
    let earliest_id = feature_id(earliest);
    let (kind, _, _) = parse_id(&earliest_id, slug).unwrap_or(("", 0, 0));
    let mut feature = (*earliest).clone();
    set_id(&mut feature, make_id(slug, kind, row, col));
    feature.geometry = Some(match outlines.as_slice() {
        [one] => geojson::Geometry::from(one),
        _ => geojson::Geometry::from(&MultiPolygon::new(outlines)),
    });
    let props = feature.properties.get_or_insert_with(Default::default);
    props.insert("area_m2".into(), json!(round(area_m2, 1)));
    props.insert("area_ha".into(), json!(round(area_m2 / 10_000.0, 3)));
    props.insert(
        "status".into(),
        json!(if confirmed_on.is_some() {
            "confirmed"
        } else {
            "provisional"
        }),
    );
    props.insert("confirmed_on".into(), json!(confirmed_on));
    props.insert("confidence".into(), json!(round(weighted("confidence"), 3)));
    props.insert(
        "n_clear_obs".into(),
        json!(half_way(&obs, total).unwrap_or_default().round() as u32),
    );
    props.insert("scenes".into(), json!(scenes));
    Ok((feature, cells_of(&union, grid)))
}

/// The cells of `grid` an outline's bounding box covers.
fn cells_of(outline: &MultiPolygon<f64>, grid: &Grid) -> Cells {
    let Some(r) = outline.bounding_rect() else {
        return Cells {
            row: 0,
            col: 0,
            rows: 0,
            cols: 0,
        };
    };
    let at = |v: f64, n: usize| (v.max(0.0) as usize).min(n);
    let (col, col_end) = (
        at(((r.min().x - grid.x0) / grid.res).floor(), grid.width),
        at(((r.max().x - grid.x0) / grid.res).ceil(), grid.width),
    );
    let (row, row_end) = (
        at(((grid.y0 - r.max().y) / grid.res).floor(), grid.height),
        at(((grid.y0 - r.min().y) / grid.res).ceil(), grid.height),
    );
    Cells {
        row,
        col,
        rows: row_end - row,
        cols: col_end - col,
    }
}

/// The value at which the running total of `weights` (sorted by value) reaches half of `total`.
fn half_way<T: Clone>(sorted: &[(T, f64)], total: f64) -> Option<T> {
    let mut sum = 0.0;
    sorted.iter().find_map(|(v, w)| {
        sum += w;
        (sum >= total / 2.0).then(|| v.clone())
    })
}

/// The row and column of an outline's first pixel in row-major order: the leftmost pixel of its
/// top row (as a scan's regions are numbered).
fn first_pixel(outline: &MultiPolygon<f64>, grid: &Grid) -> (usize, usize) {
    let coords = || {
        outline
            .0
            .iter()
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
            .flat_map(|ring| ring.coords().copied())
    };
    let top = coords().map(|c| c.y).fold(f64::NEG_INFINITY, f64::max);
    let left = coords()
        .filter(|c: &Coord<f64>| (c.y - top).abs() < grid.res / 4.0)
        .map(|c| c.x)
        .fold(f64::INFINITY, f64::min);
    (
        ((grid.y0 - top) / grid.res).round().max(0.0) as usize,
        ((left - grid.x0) / grid.res).round().max(0.0) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aoi::{from_bbox, AoiLimits};

    #[test]
    fn ids_parse_back_to_their_kind_and_first_pixel() {
        assert_eq!(parse_id("kk-r00012c00340", "kk"), Some(("", 12, 340)));
        assert_eq!(
            parse_id("a-b-demolition-r00001c00002", "a-b"),
            Some(("demolition-", 1, 2))
        );
        assert_eq!(parse_id("other-r00001c00002", "kk"), None);
        assert_eq!(make_id("kk", "", 12, 340), "kk-r00012c00340");
    }

    #[test]
    fn a_small_site_is_one_tile_and_a_large_one_is_cut_on_its_grid() {
        let aoi = from_bbox([98.49, 16.67, 98.535, 16.71], &AoiLimits::default()).unwrap();
        assert!(plan(&aoi, DEFAULT_TILE_KM2).unwrap().is_none());
        let tiling = plan(&aoi, 6.0).unwrap().unwrap();
        let grid = &tiling.grid;
        assert_eq!(tiling.tiles.len(), 4, "about 22 km² in tiles of 6 km²: 2 x 2");
        // The cores cover the grid once.
        let cells: usize = tiling.tiles.iter().map(|t| t.core.rows * t.core.cols).sum();
        assert_eq!(cells, grid.len());
        for t in &tiling.tiles {
            // Each tile's own grid is the region's grid cut to what it scans.
            let g = Grid::for_aoi_in(&t.aoi, RES, Some(grid.epsg)).unwrap();
            let (col, row) = ((g.x0 - grid.x0) / RES, (grid.y0 - g.y0) / RES);
            assert_eq!((col.fract(), row.fract()), (0.0, 0.0), "{}", t.name);
            assert!(
                (col - t.scanned.col as f64).abs() <= 1.0,
                "{}: {col} vs {:?}",
                t.name,
                t.scanned
            );
            assert!(
                (row - t.scanned.row as f64).abs() <= 1.0,
                "{}: {row} vs {:?}",
                t.name,
                t.scanned
            );
            assert!(t.scanned.rows >= t.core.rows + MARGIN_PIXELS);
        }
    }

    #[test]
    fn an_outline_at_a_cut_edge_is_not_whole_but_one_at_the_grid_edge_is() {
        let grid = Grid {
            epsg: 32647,
            x0: 0.0,
            y0: 1000.0,
            width: 100,
            height: 100,
            res: 10.0,
        };
        let scanned = Cells {
            row: 0,
            col: 0,
            rows: 60,
            cols: 60,
        };
        let square = |c0: f64, r0: f64, c1: f64, r1: f64| {
            MultiPolygon::new(vec![Rect::new(grid.to_map(c0, r1), grid.to_map(c1, r0)).to_polygon()])
        };
        assert!(!touches_cut(&square(0.0, 0.0, 5.0, 5.0), scanned, &grid), "grid edge");
        assert!(touches_cut(&square(50.0, 10.0, 60.0, 20.0), scanned, &grid), "cut edge");
        assert!(
            touches_cut(&square(40.0, 10.0, 53.0, 20.0), scanned, &grid),
            "within the guard"
        );
        assert!(!touches_cut(&square(40.0, 10.0, 52.0, 20.0), scanned, &grid));
        assert_eq!(first_pixel(&square(7.0, 3.0, 9.0, 5.0), &grid), (3, 7));
    }

    #[test]
    fn the_half_way_value_weighs_by_area() {
        let sorted = [("2022-01", 1.0), ("2022-03", 1.0), ("2022-05", 4.0)];
        assert_eq!(half_way(&sorted, 6.0), Some("2022-05"));
        assert_eq!(half_way(&sorted[..2], 6.0), None, "a third confirmed is not half");
    }
}

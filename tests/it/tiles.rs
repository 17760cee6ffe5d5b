//! Region-wide sites: the sample's AOI cut into 3 x 4 tiles on its scan grid, each tile scanned
//! alone and the reports merged: every polygon once, one polygon across the seams. Prints how many
//! keep the unsplit scan's id and area (within 1 %).

use compound_watch::report::{multipolygon_of, read_geojson};
use compound_watch::scan::Silent;
use compound_watch::source::StaticCatalog;
use compound_watch::watch::tile;
use compound_watch::window::GdalReader;
use compound_watch::Projector;
use geo::{Area, BooleanOps, BoundingRect, MultiPolygon};
use serde_json::Value;

use crate::common::{demo_config, demo_scan, sample_dir};

/// (id, area m², outline in the grid's CRS) of every polygon of a report.
fn polygons(path: &std::path::Path, to_utm: &Projector) -> Vec<(String, f64, MultiPolygon<f64>)> {
    read_geojson(path)
        .unwrap()
        .features
        .iter()
        .map(|f| {
            let id = f.property("id").and_then(Value::as_str).unwrap().to_owned();
            let area = f.property("area_m2").and_then(Value::as_f64).unwrap();
            (id, area, to_utm.multi_polygon(&multipolygon_of(f)).unwrap())
        })
        .collect()
}

fn shared_area(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    a.intersection(b).unsigned_area()
}

#[test]
fn a_region_scanned_in_tiles_gives_each_polygon_once_and_whole_across_the_seams() {
    let whole = demo_scan();
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(&dir.path().join("out"), &whole.cache());
    // About 22 km² of grid in tiles of at most 2.5 km²: 3 x 4 tiles, whose seams cross compounds.
    let tiling = tile::plan(&config.aoi, 2.5).unwrap().expect("the sample is cut");
    assert_eq!(tiling.tiles.len(), 12);
    let source = StaticCatalog::new(sample_dir().join("catalog.json"));
    let summary = tile::scan(&config, &tiling, &source, &GdalReader::default(), &Silent).unwrap();

    let grid = &tiling.grid;
    let to_utm = Projector::new(4326, grid.epsg).unwrap();
    let merged = polygons(&summary.report, &to_utm);
    let unsplit = polygons(&whole.summary.report, &to_utm);
    let rows: Vec<f64> = tiling
        .tiles
        .iter()
        .map(|t| t.core.row as f64)
        .filter(|&r| r > 0.0)
        .collect();
    let cols: Vec<f64> = tiling
        .tiles
        .iter()
        .map(|t| t.core.col as f64)
        .filter(|&c| c > 0.0)
        .collect();
    let crosses = |g: &MultiPolygon<f64>| {
        let r = g.bounding_rect().unwrap();
        let (c0, c1) = ((r.min().x - grid.x0) / grid.res, (r.max().x - grid.x0) / grid.res);
        let (r0, r1) = ((grid.y0 - r.max().y) / grid.res, (grid.y0 - r.min().y) / grid.res);
        rows.iter().any(|&s| r0 < s && s < r1) || cols.iter().any(|&s| c0 < s && s < c1)
    };

    eprintln!(
        "{:<24} {:>9} {:<24} {:>9} {:>7} {:>7}",
        "unsplit", "m²", "tiles", "m²", "cover", "seam"
    );
    let (mut same, mut crossing) = (0, 0);
    for (id, area, outline) in &unsplit {
        // Every merged polygon that covers a part of it.
        let covering: Vec<(&String, f64, f64)> = merged
            .iter()
            .map(|(m_id, m_area, m)| (m_id, *m_area, shared_area(outline, m) / outline.unsigned_area()))
            .filter(|c| c.2 > 0.05)
            .collect();
        let best = covering.iter().max_by(|a, b| a.2.total_cmp(&b.2));
        let seam = crosses(outline);
        crossing += usize::from(seam);
        let (m_id, m_area, cover) = best.map_or(("-", f64::NAN, 0.0), |b| (b.0.as_str(), b.1, b.2));
        eprintln!("{id:<24} {area:>9.1} {m_id:<24} {m_area:>9.1} {cover:>7.3} {seam:>7}");
        same += usize::from(m_id == id && (m_area - area).abs() <= 0.01 * area);
        // Away from the seams a tile's polygon may differ from the unsplit scan's by the pixels its
        // own statistics decide (README, "Region-wide sites"); across a seam it must be one polygon.
        if seam {
            assert!(
                covering.len() == 1 && cover > 0.5,
                "{id} crosses a seam and is not one polygon: {covering:?}"
            );
        }
    }
    eprintln!(
        "{same} of {} polygons keep their id and their area within 1 %; {crossing} cross a seam",
        unsplit.len()
    );
    assert!(crossing >= 1, "no polygon of the sample crosses a seam of this tiling");
    for (i, (a_id, _, a)) in merged.iter().enumerate() {
        for (b_id, _, b) in &merged[i + 1..] {
            assert!(
                shared_area(a, b) == 0.0,
                "{a_id} and {b_id} overlap: a polygon kept twice"
            );
        }
    }
}

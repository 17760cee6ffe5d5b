//! Region-wide sites: the sample's AOI cut into 3 x 4 tiles on its scan grid, each tile scanned
//! alone (with the region's statistics) and the reports merged give the unsplit scan's polygons:
//! the same count, the same ids, areas within 1 %, polygons across the seams whole.

use compound_watch::report::{multipolygon_of, read_geojson};
use compound_watch::scan::{ScanConfig, Silent};
use compound_watch::source::StaticCatalog;
use compound_watch::watch::tile;
use compound_watch::window::GdalReader;
use compound_watch::Projector;
use geo::{Area, BooleanOps, BoundingRect, MultiPolygon};
use serde_json::Value;

use crate::common::{demo_config, demo_scan, sample_dir};

/// (id, area m², outline in the grid's CRS, dates and status) of every polygon of a report.
fn polygons(path: &std::path::Path, to_utm: &Projector) -> Vec<(String, f64, MultiPolygon<f64>, String)> {
    read_geojson(path)
        .unwrap()
        .features
        .iter()
        .map(|f| {
            let id = f.property("id").and_then(Value::as_str).unwrap().to_owned();
            let area = f.property("area_m2").and_then(Value::as_f64).unwrap();
            let facts = ["first_detected", "last_clear_before", "status", "confirmed_on"]
                .map(|k| f.property(k).map(Value::to_string).unwrap_or_default())
                .join(" ");
            (id, area, to_utm.multi_polygon(&multipolygon_of(f)).unwrap(), facts)
        })
        .collect()
}

fn shared_area(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    a.intersection(b).unsigned_area()
}

#[test]
fn a_region_scanned_in_tiles_gives_the_unsplit_scans_polygons() {
    let config = |out: &std::path::Path| demo_config(out, &demo_scan().cache());
    let dir = tempfile::tempdir().unwrap();
    // About 22 km² of grid in tiles of at most 2.5 km²: 3 x 4 tiles, whose seams cross compounds.
    let tiling = tile::plan(&config(dir.path()).aoi, 2.5)
        .unwrap()
        .expect("the sample is cut");
    assert_eq!((tiling.tiles.len(), tiling.margin), (12, tile::MARGIN_PIXELS));
    let patches = same_polygons(&config(&dir.path().join("out")), &tiling);
    assert_eq!(patches, 0, "every polygon is whole within the default margin of a tile");
}

#[test]
fn a_polygon_larger_than_the_margin_is_scanned_again_whole() {
    let config = |out: &std::path::Path| demo_config(out, &demo_scan().cache());
    let dir = tempfile::tempdir().unwrap();
    // A margin of 12 pixels (120 m): compounds across the seams are larger than it.
    let tiling = tile::plan_with_margin(&config(dir.path()).aoi, 2.5, 12)
        .unwrap()
        .expect("the sample is cut");
    let patches = same_polygons(&config(&dir.path().join("out")), &tiling);
    assert!(
        patches >= 1,
        "no polygon of the sample is larger than a 12-pixel margin"
    );
}

/// Scans `tiling` with `config` and asserts its merged report has the unsplit scan's polygons;
/// returns how many patches were scanned.
fn same_polygons(config: &ScanConfig, tiling: &tile::Tiling) -> usize {
    let whole = demo_scan();
    let source = StaticCatalog::new(sample_dir().join("catalog.json"));
    let summary = tile::scan(config, tiling, &source, &GdalReader::default(), &Silent).unwrap();

    let grid = &tiling.grid;
    let to_utm = Projector::new(4326, grid.epsg).unwrap();
    let merged = polygons(&summary.report, &to_utm);
    let unsplit = polygons(&whole.summary.report, &to_utm);
    let seams = |core: fn(&tile::Tile) -> usize| -> Vec<f64> {
        let mut at: Vec<usize> = tiling.tiles.iter().map(core).filter(|&r| r > 0).collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter().map(|r| r as f64).collect()
    };
    let (rows, cols) = (seams(|t| t.core.row), seams(|t| t.core.col));
    let crosses = |g: &MultiPolygon<f64>| {
        let r = g.bounding_rect().unwrap();
        let (c0, c1) = ((r.min().x - grid.x0) / grid.res, (r.max().x - grid.x0) / grid.res);
        let (r0, r1) = ((grid.y0 - r.max().y) / grid.res, (grid.y0 - r.min().y) / grid.res);
        rows.iter().any(|&s| r0 < s && s < r1) || cols.iter().any(|&s| c0 < s && s < c1)
    };

    eprintln!(
        "{:<24} {:>9} {:>9} {:>7} {:>5} {:>5}",
        "unsplit id", "m²", "tiles m²", "cover", "seam", "dates"
    );
    let (mut same, mut crossing, mut differ) = (0, 0, Vec::new());
    for (id, area, outline, facts) in &unsplit {
        let seam = crosses(outline);
        crossing += usize::from(seam);
        let counterpart = merged.iter().find(|(m_id, _, _, _)| m_id == id);
        let (m_area, cover, dates) = counterpart.map_or((f64::NAN, 0.0, false), |(_, m_area, m, m_facts)| {
            let cover = shared_area(outline, m) / outline.unsigned_area();
            (*m_area, cover, m_facts == facts)
        });
        eprintln!("{id:<24} {area:>9.1} {m_area:>9.1} {cover:>7.3} {seam:>5} {dates:>5}");
        if dates && (m_area - area).abs() <= 0.01 * area {
            same += 1;
        } else {
            differ.push(id.clone());
        }
    }
    eprintln!(
        "{same} of {} polygons keep their id, their dates and their area within 1 %; {crossing} cross a seam; the \
         tiles give {} polygons",
        unsplit.len(),
        merged.len()
    );
    assert!(crossing >= 1, "no polygon of the sample crosses a seam of this tiling");
    assert!(
        differ.is_empty(),
        "no counterpart with the same id, dates and area within 1 %: {differ:?}"
    );
    assert_eq!(merged.len(), unsplit.len(), "the tiles give other polygons as well");
    for (i, (a_id, _, a, _)) in merged.iter().enumerate() {
        for (b_id, _, b, _) in &merged[i + 1..] {
            assert!(
                shared_area(a, b) == 0.0,
                "{a_id} and {b_id} overlap: a polygon kept twice"
            );
        }
    }
    let report = read_geojson(&summary.report).unwrap();
    let tiles = &report.foreign_members.unwrap()["compound_watch"]["tiles"];
    let patches: Vec<&Value> = tiles
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["patch"] == true)
        .collect();
    eprintln!("{} patches scanned: {patches:?}", patches.len());
    patches.len()
}

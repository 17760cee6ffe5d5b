//! The `--bbox W,S,E,N` parser and check: `aoi::parse_bbox`, then `aoi::from_bbox`.

use compound_watch::aoi::{self, AoiLimits};

fn main() {
    let limits = AoiLimits::default();
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        let Ok(bbox) = aoi::parse_bbox(text) else {
            return;
        };
        if let Ok(aoi) = aoi::from_bbox(bbox, &limits) {
            let [w, s, e, n] = aoi.bbox();
            assert!(w < e && s < n, "empty box {:?} for {text:?}", aoi.bbox());
            assert!(aoi.area_m2 >= limits.min_area_m2 && aoi.area_m2 <= limits.max_area_km2 * 1e6);
        }
    });
}

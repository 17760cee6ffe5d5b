//! The AOI file parser and checker: `aoi::parse`, which `aoi::load` calls on a file's text.

use std::path::Path;

use compound_watch::aoi::{self, AoiLimits};

fn main() {
    let limits = AoiLimits::default();
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        if let Ok(aoi) = aoi::parse(text, Path::new("fuzz.geojson"), &limits) {
            // A checked AOI has coordinates (`bbox` expects them) and an area within the limits.
            let [w, s, e, n] = aoi.bbox();
            assert!(w < e && s < n, "empty box {:?} for {text:?}", aoi.bbox());
            assert!(aoi.area_m2 >= limits.min_area_m2 && aoi.area_m2 <= limits.max_area_km2 * 1e6);
        }
    });
}

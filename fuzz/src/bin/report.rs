//! The report readers: `report::parse_geojson` (incremental scans) and `diff::parse`, which checks
//! ids and geometries on top of it (the `diff` command and a scan's previous report).

use std::path::Path;

use compound_watch::{diff, report};

fn main() {
    let path = Path::new("out/report.geojson");
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        let parsed = report::parse_geojson(text, path);
        let checked = diff::parse(text, path);
        // `diff::parse` accepts only what `report::parse_geojson` accepts.
        assert!(parsed.is_ok() || checked.is_err());
    });
}

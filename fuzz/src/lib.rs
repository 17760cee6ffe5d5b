//! What the fuzz targets share: the query every search target asks, and the input size limit.

use compound_watch::month::Month;
use compound_watch::source::SearchQuery;

/// Inputs longer than this are skipped. Real AOIs, items, pages and reports are larger, but bugs in
/// parsers show on small inputs, and the AOI check's topology test is quadratic in the vertex count
/// (huge polygons are the AOI vertex limit's job, not the fuzzer's).
pub const MAX_INPUT: usize = 16 * 1024;

/// The input as text, as `std::fs::read_to_string` would give it, or `None` (not UTF-8, or too long).
pub fn text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_INPUT {
        return None;
    }
    std::str::from_utf8(data).ok()
}

/// A search for the whole world from year 1 to 9999 under any cloud cover, so that every
/// well-formed item goes on to become a scene (or be refused with a reason).
pub fn query() -> SearchQuery {
    SearchQuery {
        bbox: [-180.0, -90.0, 180.0, 90.0],
        geometry: None,
        from: Month { year: 1, month: 1 },
        to: Month { year: 9999, month: 12 },
        max_cloud_cover: 100.0,
    }
}

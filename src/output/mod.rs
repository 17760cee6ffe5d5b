//! What a scan leaves for people: the GeoJSON reports and the composite COG (`report`), the
//! monthly composite COGs (`months`), the month-to-month `diff`, the QGIS styles and project (`qgis`), the monthly `summary` pages, the
//! report in other vector formats (`vector`) and the STAC Item describing the outputs (`stac_item`).

pub(crate) mod diff;
pub(crate) mod months;
pub(crate) mod provenance;
pub(crate) mod qgis;
pub(crate) mod report;
pub(crate) mod stac_item;
pub(crate) mod summary;
pub(crate) mod vector;

/// `v` rounded to `decimals` decimal places: how every figure is rounded before it is written.
/// `+ 0.0` turns -0.0 (the sum of nothing, or a tiny negative) into 0.0, which prints as "0".
pub(crate) fn round(v: f64, decimals: i32) -> f64 {
    let s = 10f64.powi(decimals);
    (v * s).round() / s + 0.0
}

/// "1 polygon", "2 polygons": a count with its noun in the right number, for every sentence a
/// person reads (pages, alerts, the command's lines).
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(super::plural(1, "polygon", "polygons"), "1 polygon");
        assert_eq!(super::plural(0, "polygon", "polygons"), "0 polygons");
        assert_eq!(super::plural(2, "AOI", "AOIs"), "2 AOIs");
    }
}

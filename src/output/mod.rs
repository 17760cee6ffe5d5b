//! What a scan leaves for people: the GeoJSON reports and the composite COG (`report`), the
//! month-to-month `diff`, the QGIS styles and project (`qgis`), and the monthly `summary` pages.

pub(crate) mod diff;
pub(crate) mod provenance;
pub(crate) mod qgis;
pub(crate) mod report;
pub(crate) mod summary;

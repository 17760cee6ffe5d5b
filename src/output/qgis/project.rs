//! The QGIS project a scan writes (`project.qgs`): the composite in true colour, the AOI outline,
//! the report and the diff, styled as their `.qml` files style them, vectors above the raster, and
//! the map on the AOI. The report and demolition layers are temporal on `first_detected` (what
//! was there by then), and the project's time range is the scanned months, so the temporal
//! controller steps through the period a month at a time.
//!
//! Data sources are relative to the project file (`./report.geojson`), so the output directory can
//! be moved or copied as a whole. Built with the same XML builder as the styles; no I/O but [`write()`].

use std::path::Path;

use crate::detect::kernel::RECENT_MONTHS;
use crate::error::{Error, Result};
use crate::grid;
use crate::io::atomic;
use crate::month::Month;
use crate::output::months;
use crate::output::provenance::Period;
use crate::output::qgis::style::{self, document, Element, LayerStyle, QGIS_VERSION};

/// What a layer draws.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Polygons from a GeoJSON file in WGS84, drawn with this style.
    Vector(LayerStyle),
    /// A GeoTIFF whose bands 1, 2, 3 are red, green, blue reflectance x 10000, stretched from 0 to
    /// `max` (dark imagery like Sentinel-2 land is readable at about 2500, 25 % reflectance).
    TrueColour {
        /// Value drawn white.
        max: u16,
    },
}

/// One layer of the project.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// Unique layer id within the project (written with a `compound_watch_` prefix).
    pub id: String,
    /// Name in the layer panel.
    pub name: String,
    /// File name relative to the project file's directory.
    pub file: String,
    /// EPSG code of the file's CRS.
    pub epsg: u32,
    /// How it is drawn.
    pub content: Content,
    /// Ticked in the layer panel (drawn) when the project opens.
    pub visible: bool,
    /// The Date field that makes the layer temporal: with the temporal controller on, a feature is
    /// drawn from that date on (QGIS's "single field with date/time", accumulating).
    pub temporal_field: Option<&'static str>,
    /// The month a raster shows: with the temporal controller on, it is drawn in that month only
    /// (QGIS's fixed temporal range).
    pub month: Option<Month>,
    /// The group the layer sits in, in the layer panel (consecutive layers of one group share it);
    /// a group is unticked when the project opens.
    pub group: Option<&'static str>,
}

/// A project: its CRS, initial view and layers (first drawn on top).
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// Project title.
    pub title: String,
    /// EPSG code of the project (map) CRS.
    pub epsg: u32,
    /// Initial view `[xmin, ymin, xmax, ymax]` in the project CRS.
    pub extent: [f64; 4],
    /// Layers, top first.
    pub layers: Vec<Layer>,
    /// The months the temporal controller steps through, when the project has temporal layers.
    pub period: Option<Period>,
}

/// A `<spatialrefsys>` QGIS can read: its WKT (which QGIS prefers, being lossless) and authority id.
fn spatial_ref(epsg: u32) -> Result<Element> {
    let srs = grid::srs(epsg)?;
    let gdal = |what: &str| Error::gdal(format!("writing EPSG:{epsg} as {what} for the QGIS project"));
    Ok(Element::new("spatialrefsys")
        .attr("nativeFormat", "Wkt")
        .child(Element::with_text("wkt", srs.to_wkt().map_err(gdal("WKT"))?))
        .child(Element::with_text("proj4", srs.to_proj4().map_err(gdal("PROJ"))?))
        .child(Element::with_text("authid", format!("EPSG:{epsg}")))
        .child(Element::with_text("description", srs.name().unwrap_or_default())))
}

fn extent(name: &'static str, [xmin, ymin, xmax, ymax]: [f64; 4]) -> Element {
    Element::new(name)
        .child(Element::with_text("xmin", xmin))
        .child(Element::with_text("ymin", ymin))
        .child(Element::with_text("xmax", xmax))
        .child(Element::with_text("ymax", ymax))
}

/// A fixed min/max stretch of one band.
fn stretch(name: &'static str, max: u16) -> Element {
    Element::new(name)
        .child(Element::with_text("minValue", 0))
        .child(Element::with_text("maxValue", max))
        .child(Element::with_text("algorithm", "StretchToMinimumMaximum"))
}

fn true_colour(max: u16) -> Element {
    Element::new("pipe")
        .child(
            Element::new("rasterrenderer")
                .attr("type", "multibandcolor")
                .attr("opacity", 1)
                .attr("alphaBand", -1)
                .attr("redBand", 1)
                .attr("greenBand", 2)
                .attr("blueBand", 3)
                .child(Element::new("rasterTransparency"))
                .child(
                    // "None": keep the stretch written here instead of recomputing one from statistics.
                    Element::new("minMaxOrigin")
                        .child(Element::with_text("limits", "None"))
                        .child(Element::with_text("extent", "WholeRaster"))
                        .child(Element::with_text("statAccuracy", "Estimated")),
                )
                .child(stretch("redContrastEnhancement", max))
                .child(stretch("greenContrastEnhancement", max))
                .child(stretch("blueContrastEnhancement", max)),
        )
        .child(
            Element::new("brightnesscontrast")
                .attr("brightness", 0)
                .attr("contrast", 0)
                .attr("gamma", 1),
        )
        .child(Element::new("rasterresampler").attr("maxOversampling", 2))
}

/// The id QGIS keeps: it replaces ids of 10 characters or fewer with random ones when it reads a
/// project, which cuts the layer tree off its layers.
fn layer_id(id: &str) -> String {
    format!("compound_watch_{id}")
}

/// QGIS's vector temporal properties: mode 1 is "single field with date/time", `accumulate` draws
/// every feature whose date is at or before the controller's current month, so construction stays
/// on the map once it has appeared.
fn temporal(field: &str) -> Element {
    Element::new("temporal")
        .attr("enabled", 1)
        .attr("mode", 1)
        .attr("startField", field)
        .attr("endField", "")
        .attr("durationField", "")
        .attr("durationUnit", "min")
        .attr("fixedDuration", 0)
        .attr("accumulate", 1)
        .attr("limitMode", 0)
        .attr("startExpression", "")
        .attr("endExpression", "")
        .child(
            Element::new("fixedRange")
                .child(Element::new("start"))
                .child(Element::new("end")),
        )
}

/// A raster's fixed temporal range: the whole of `month`, and not the first second of the next
/// (a range's end is included, and the next month's frame starts there).
fn fixed_month(month: Month) -> Element {
    let last = month.plus(1).first_day() - chrono::Days::new(1);
    Element::new("temporal")
        .attr("enabled", 1)
        .attr("mode", 0)
        .attr("fetchMode", 0)
        .child(
            Element::new("fixedRange")
                .child(Element::with_text("start", format!("{}T00:00:00Z", month.first_day())))
                .child(Element::with_text("end", format!("{last}T23:59:59Z"))),
        )
}

/// The project's time range, a month a step: from the first day of the first month to the first
/// day after the last.
fn time_settings(Period { from, to }: Period) -> Element {
    let day = |m: crate::month::Month| format!("{}T00:00:00Z", m.first_day());
    Element::new("ProjectTimeSettings")
        .attr("timeStep", 1)
        .attr("timeStepUnit", "mon")
        .attr("frameRate", 1)
        .attr("cumulativeTemporalRange", 0)
        .child(
            Element::new("TemporalRange")
                .child(Element::with_text("start", day(from)))
                .child(Element::with_text("end", day(to.plus(1)))),
        )
}

fn map_layer(layer: &Layer) -> Result<Element> {
    let common = |e: Element| -> Result<Element> {
        Ok(e.child(Element::with_text("id", layer_id(&layer.id)))
            .child(Element::with_text("datasource", format!("./{}", layer.file)))
            .child(Element::with_text("layername", &layer.name))
            .child(Element::new("srs").child(spatial_ref(layer.epsg)?)))
    };
    Ok(match &layer.content {
        Content::Vector(style) => {
            let mut e = common(
                Element::new("maplayer")
                    .attr("type", "vector")
                    .attr("geometry", "Polygon")
                    .attr("labelsEnabled", u8::from(style.labeling.is_some())),
            )?
            .child(Element::with_text("provider", "ogr").attr("encoding", "UTF-8"));
            if let Some(field) = layer.temporal_field {
                e = e.child(temporal(field));
            }
            e = e.child(style.renderer.clone());
            if let Some(labeling) = &style.labeling {
                e = e.child(labeling.clone());
            }
            e
        }
        Content::TrueColour { max } => {
            let mut e =
                common(Element::new("maplayer").attr("type", "raster"))?.child(Element::with_text("provider", "gdal"));
            if let Some(month) = layer.month {
                e = e.child(fixed_month(month));
            }
            e.child(true_colour(*max))
        }
    })
}

/// The layer panel: each layer in turn, consecutive layers of a group inside it (unticked).
fn layer_tree(layers: &[Layer]) -> Vec<Element> {
    let node = |l: &Layer| {
        Element::new("layer-tree-layer")
            .attr("id", layer_id(&l.id))
            .attr("name", &l.name)
            .attr("source", format!("./{}", l.file))
            .attr(
                "providerKey",
                if matches!(l.content, Content::Vector(_)) {
                    "ogr"
                } else {
                    "gdal"
                },
            )
            .attr("checked", if l.visible { "Qt::Checked" } else { "Qt::Unchecked" })
            .attr("expanded", 1)
    };
    let mut tree = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let Some(group) = layers[i].group else {
            tree.push(node(&layers[i]));
            i += 1;
            continue;
        };
        let n = layers[i..].iter().take_while(|l| l.group == Some(group)).count();
        tree.push(
            Element::new("layer-tree-group")
                .attr("name", group)
                .attr("checked", "Qt::Unchecked")
                .attr("expanded", 0)
                .children(layers[i..i + n].iter().map(node)),
        );
        i += n;
    }
    tree
}

/// The project as a `.qgs` document.
pub(crate) fn qgs(project: &Project) -> Result<String> {
    let tree = layer_tree(&project.layers);
    let layers = project.layers.iter().map(map_layer).collect::<Result<Vec<_>>>()?;
    let crs = spatial_ref(project.epsg)?;
    let mut root = Element::new("qgis")
        .attr("version", QGIS_VERSION)
        .attr("projectname", &project.title)
        .child(Element::new("homePath").attr("path", ""))
        .child(Element::with_text("title", &project.title))
        .child(Element::new("projectCrs").child(crs.clone()))
        .child(
            Element::new("layer-tree-group")
                .children(tree)
                // Drawing order follows the tree: the first layer is drawn on top.
                .child(Element::new("custom-order").attr("enabled", 0)),
        )
        .child(
            Element::new("mapcanvas")
                .attr("name", "theMapCanvas")
                .attr("annotationsVisible", 1)
                .child(Element::with_text("units", "meters"))
                .child(extent("extent", project.extent))
                .child(Element::with_text("rotation", 0))
                .child(Element::new("destinationsrs").child(crs)),
        )
        .child(Element::new("projectlayers").children(layers))
        .child(
            Element::new("properties")
                .child(Element::new("Paths").child(Element::with_text("Absolute", "false").attr("type", "bool")))
                // Without this QGIS ignores <projectCrs> and takes the first layer's CRS.
                .child(
                    Element::new("SpatialRefSys")
                        .child(Element::with_text("ProjectionsEnabled", 1).attr("type", "int")),
                ),
        );
    if let Some(period) = project.period {
        root = root.child(time_settings(period));
    }
    Ok(document(&root))
}

/// Writes the project atomically.
pub(crate) fn write(path: &Path, project: &Project) -> Result<()> {
    atomic::write(path, qgs(project)?.as_bytes())
}

/// The project of a scan's outputs over `period`: AOI, report, diff, demolition, with `months` the
/// monthly composites (a group, unticked: tick it and the temporal controller shows one month at a
/// time, the newest on top without it) and the recent composite, titled `title`, in the grid's
/// UTM CRS and framed on the grid.
///
/// The report sits above the diff: on a first scan (`first_scan`) the diff marks every polygon
/// `added` and would hide the report's colours by month, so it is then left unticked; on a later
/// scan it is ticked and shows, around and under the report's polygons, what changed since.
pub(crate) fn of_scan(
    title: String,
    grid: &crate::grid::Grid,
    period: &Period,
    report: &geojson::FeatureCollection,
    demolition: &geojson::FeatureCollection,
    first_scan: bool,
    months: bool,
) -> Project {
    let vector = |id: &str, name: &str, style: LayerStyle| Layer {
        id: id.into(),
        name: name.into(),
        file: format!("{id}.geojson"),
        epsg: 4326,
        content: Content::Vector(style),
        visible: true,
        temporal_field: None,
        month: None,
        group: None,
    };
    let raster = |id: String, name: String, file: String| Layer {
        id,
        name,
        file,
        epsg: grid.epsg,
        content: Content::TrueColour { max: TRUE_COLOUR_WHITE },
        visible: true,
        temporal_field: None,
        month: None,
        group: None,
    };
    let month_layers = period.from.through(period.to).into_iter().rev().map(|m| Layer {
        month: Some(m),
        group: Some(MONTHS_GROUP),
        ..raster(format!("month_{m}"), m.to_string(), months::file(m))
    });
    let by_month = |layer: Layer| Layer {
        temporal_field: Some("first_detected"),
        ..layer
    };
    let (x1, y0) = (
        grid.x0 + grid.width as f64 * grid.res,
        grid.y0 - grid.height as f64 * grid.res,
    );
    let mut layers = vec![
        vector("aoi", "AOI", style::aoi_style()),
        by_month(vector(
            "report",
            "new construction (report)",
            style::report_style(report),
        )),
        Layer {
            visible: !first_scan,
            ..vector("diff", "change since the previous scan (diff)", style::diff_style())
        },
        by_month(vector(
            "demolition",
            "demolition (reported apart)",
            style::report_style(demolition),
        )),
    ];
    if months {
        layers.extend(month_layers);
    }
    layers.push(raster(
        "composite".into(),
        format!("recent composite (median of the last {RECENT_MONTHS} months)"),
        "composite.tif".into(),
    ));
    Project {
        title,
        epsg: grid.epsg,
        extent: [grid.x0, y0, x1, grid.y0],
        layers,
        period: Some(*period),
    }
}

/// The layer-panel group of the monthly composites.
pub(crate) const MONTHS_GROUP: &str = "monthly composites (tick, then step with the temporal controller)";

/// Reflectance x 10000 drawn white in the composite layer (0.25 shows land and roofs without
/// saturating most of them).
const TRUE_COLOUR_WHITE: u16 = 2500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_relative_ordered_and_the_raster_is_stretched() {
        let project = Project {
            title: "t".into(),
            epsg: 32647,
            extent: [480_000.0, 1_845_000.0, 481_000.0, 1_846_000.0],
            layers: vec![
                Layer {
                    id: "report".into(),
                    name: "report".into(),
                    file: "report.geojson".into(),
                    epsg: 4326,
                    content: Content::Vector(crate::output::qgis::style::aoi_style()),
                    visible: true,
                    temporal_field: None,
                    month: None,
                    group: None,
                },
                Layer {
                    id: "composite".into(),
                    name: "composite".into(),
                    file: "composite.tif".into(),
                    epsg: 32647,
                    content: Content::TrueColour { max: 2500 },
                    visible: true,
                    temporal_field: None,
                    month: None,
                    group: None,
                },
            ],
            period: None,
        };
        let text = qgs(&project).unwrap();
        let report = text.find("<layer-tree-layer id=\"compound_watch_report\"").unwrap();
        let composite = text.find("<layer-tree-layer id=\"compound_watch_composite\"").unwrap();
        assert!(text.contains("<id>compound_watch_report</id>"));
        assert!(report < composite, "vectors must be above the raster");
        assert!(text.contains("<datasource>./report.geojson</datasource>"));
        assert!(text.contains("<Absolute type=\"bool\">false</Absolute>"));
        assert!(text.contains("<maxValue>2500</maxValue>"));
        assert!(text.contains("<authid>EPSG:32647</authid>"));
        // Every layer's source is beside the project, so the folder can be moved or sent on.
        let mut sources: Vec<&str> = text
            .split("<datasource>")
            .skip(1)
            .map(|s| s.split('<').next().unwrap())
            .collect();
        sources.sort_unstable();
        assert_eq!(sources, ["./composite.tif", "./report.geojson"]);
        assert!(!text.contains("<temporal ") && !text.contains("ProjectTimeSettings"));
    }

    fn scan_project(first_scan: bool) -> String {
        let grid = crate::grid::Grid {
            epsg: 32647,
            x0: 480_000.0,
            y0: 1_846_000.0,
            width: 100,
            height: 100,
            res: 10.0,
        };
        let empty: geojson::FeatureCollection =
            serde_json::from_str(r#"{"type":"FeatureCollection","features":[]}"#).unwrap();
        let period = Period {
            from: "2021-07".parse().unwrap(),
            to: "2023-06".parse().unwrap(),
        };
        qgs(&of_scan("t".into(), &grid, &period, &empty, &empty, first_scan, true)).unwrap()
    }

    /// The `<maplayer>` element of the layer `id`.
    fn maplayer<'a>(text: &'a str, id: &str) -> &'a str {
        let at = text.find(&format!("<id>compound_watch_{id}</id>")).unwrap();
        let start = text[..at].rfind("<maplayer").unwrap();
        let end = at + text[at..].find("</maplayer>").unwrap();
        &text[start..end]
    }

    #[test]
    fn the_report_and_demolition_step_through_the_months_by_first_detected() {
        let text = scan_project(true);
        for id in ["report", "demolition"] {
            let layer = maplayer(&text, id);
            assert!(
                layer.contains(r#"<temporal enabled="1" mode="1" startField="first_detected""#)
                    && layer.contains(r#"accumulate="1""#),
                "{layer}"
            );
        }
        for id in ["aoi", "diff", "composite"] {
            assert!(!maplayer(&text, id).contains("<temporal"), "{id} is not temporal");
        }
        assert!(text.contains(r#"<ProjectTimeSettings timeStep="1" timeStepUnit="mon""#));
        assert!(
            text.contains("<start>2021-07-01T00:00:00Z</start>") && text.contains("<end>2023-07-01T00:00:00Z</end>")
        );
    }

    #[test]
    fn each_monthly_composite_is_drawn_in_its_own_month_in_an_unticked_group_above_the_composite() {
        let text = scan_project(true);
        let march = maplayer(&text, "month_2022-03");
        assert!(
            march.contains("<datasource>./months/2022-03.tif</datasource>"),
            "{march}"
        );
        assert!(
            march.contains(r#"<temporal enabled="1" mode="0" fetchMode="0">"#)
                && march.contains("<start>2022-03-01T00:00:00Z</start>")
                && march.contains("<end>2022-03-31T23:59:59Z</end>"),
            "{march}"
        );
        // 24 months, newest first, in one unticked group between the vectors and the composite.
        let group = text.find("<layer-tree-group name=\"monthly composites").unwrap();
        assert!(text[group..].split('>').next().unwrap().contains("Qt::Unchecked"));
        let at = |id: &str| {
            text.find(&format!("<layer-tree-layer id=\"compound_watch_{id}\""))
                .unwrap()
        };
        assert!(at("demolition") < group && group < at("month_2023-06"));
        assert!(at("month_2023-06") < at("month_2021-07") && at("month_2021-07") < at("composite"));
        assert_eq!(text.matches("<layer-tree-layer id=\"compound_watch_month_").count(), 24);
        let composite_in_group = text[group..].find("</layer-tree-group>").unwrap()
            < text[group..].find("compound_watch_composite").unwrap();
        assert!(composite_in_group, "the composite is outside the group");
        let grid = crate::grid::Grid::for_tests(1, 1);
        let period = Period {
            from: "2022-01".parse().unwrap(),
            to: "2022-02".parse().unwrap(),
        };
        let empty: geojson::FeatureCollection =
            serde_json::from_str(r#"{"type":"FeatureCollection","features":[]}"#).unwrap();
        let without = qgs(&of_scan("t".into(), &grid, &period, &empty, &empty, true, false)).unwrap();
        assert!(!without.contains("month_") && !without.contains("monthly composites"));
    }

    #[test]
    fn on_a_first_scan_the_diff_is_below_the_report_and_unticked() {
        let tree = |text: &str, id: &str| {
            let at = text
                .find(&format!("<layer-tree-layer id=\"compound_watch_{id}\""))
                .unwrap();
            (at, text[at..].split('>').next().unwrap().contains("Qt::Checked"))
        };
        let first = scan_project(true);
        let (report, report_on) = tree(&first, "report");
        let (diff, diff_on) = tree(&first, "diff");
        assert!(report < diff && report_on && !diff_on);
        let later = scan_project(false);
        assert!(tree(&later, "diff").1, "a later scan shows what changed");
    }
}

//! QGIS styles for the files the tool writes: a `.qml` beside each GeoJSON, with the same base name,
//! which QGIS applies by itself when a person opens the GeoJSON.
//!
//! The XML is built in code by a small element builder rather than filled into templates, so each
//! renderer reads as what it is. Styles are pure values ([`LayerStyle`]); the QGIS project (`project`)
//! embeds the same elements, so a layer looks the same whether opened alone or through the project.
//! Checked against QGIS 3.22 (`../shared/tools/qgis/render_map.py`, which fails on an unstyled feature).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::atomic;
use crate::output::diff::Change;

/// The QGIS version written into styles and projects; 3.22 (Debian 12) is the oldest one tested.
pub(crate) const QGIS_VERSION: &str = "3.22.16-Białowieża";

/// One XML element, built in code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// An empty element.
    pub(crate) fn new(name: &'static str) -> Element {
        Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub(crate) fn attr(mut self, key: &'static str, value: impl ToString) -> Element {
        self.attrs.push((key, value.to_string()));
        self
    }

    /// Adds a child element.
    pub(crate) fn child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Adds child elements.
    pub(crate) fn children(mut self, children: impl IntoIterator<Item = Element>) -> Element {
        self.children.extend(children.into_iter().map(Node::Element));
        self
    }

    /// Adds text content.
    pub(crate) fn text(mut self, text: impl ToString) -> Element {
        self.children.push(Node::Text(text.to_string()));
        self
    }

    /// `<name>text</name>`, the commonest shape in a QGIS project.
    pub(crate) fn with_text(name: &'static str, text: impl ToString) -> Element {
        Element::new(name).text(text)
    }

    fn write(&self, out: &mut String, depth: usize) {
        let indent = " ".repeat(depth);
        out.push_str(&indent);
        out.push('<');
        out.push_str(self.name);
        for (key, value) in &self.attrs {
            out.push_str(&format!(" {key}=\"{}\"", escape(value)));
        }
        match self.children.as_slice() {
            [] => out.push_str("/>\n"),
            [Node::Text(text)] => out.push_str(&format!(">{}</{}>\n", escape(text), self.name)),
            children => {
                out.push_str(">\n");
                for child in children {
                    match child {
                        Node::Element(e) => e.write(out, depth + 1),
                        Node::Text(text) => out.push_str(&format!("{indent} {}\n", escape(text))),
                    }
                }
                out.push_str(&format!("{indent}</{}>\n", self.name));
            }
        }
    }
}

/// A QGIS XML document (style or project) with `root` as its `<qgis>` element.
pub(crate) fn document(root: &Element) -> String {
    let mut out = String::from("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n");
    root.write(&mut out, 0);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An RGBA colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rgba(pub u8, pub u8, pub u8, pub u8);

impl std::fmt::Display for Rgba {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.0, self.1, self.2, self.3)
    }
}

/// How one kind of polygon is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fill {
    /// Fill colour; `None` draws the outline only.
    pub fill: Option<Rgba>,
    /// Outline colour.
    pub outline: Rgba,
    /// Outline width, millimetres.
    pub width_mm: f64,
    /// A dashed outline (for things that are no longer there, and for the AOI).
    pub dashed: bool,
}

impl Fill {
    fn symbol(&self, name: usize) -> Element {
        let option = |key: &'static str, value: String| {
            Element::new("Option")
                .attr("name", key)
                .attr("type", "QString")
                .attr("value", value)
        };
        let options = [
            ("color", self.fill.unwrap_or(Rgba(0, 0, 0, 0)).to_string()),
            ("style", if self.fill.is_some() { "solid" } else { "no" }.into()),
            ("outline_color", self.outline.to_string()),
            ("outline_style", if self.dashed { "dash" } else { "solid" }.into()),
            ("outline_width", self.width_mm.to_string()),
            ("outline_width_unit", "MM".into()),
            ("joinstyle", "miter".into()),
        ];
        Element::new("symbol")
            .attr("type", "fill")
            .attr("name", name)
            .attr("alpha", 1)
            .attr("clip_to_extent", 1)
            .attr("force_rhr", 0)
            .child(
                Element::new("layer")
                    .attr("class", "SimpleFill")
                    .attr("enabled", 1)
                    .attr("locked", 0)
                    .attr("pass", 0)
                    .child(
                        Element::new("Option")
                            .attr("type", "Map")
                            .children(options.into_iter().map(|(k, v)| option(k, v))),
                    ),
            )
    }
}

/// A vector layer's look: its renderer and, if any, its labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerStyle {
    /// The `<renderer-v2>` element.
    pub renderer: Element,
    /// The `<labeling>` element, when the layer is labelled.
    pub labeling: Option<Element>,
}

impl LayerStyle {
    /// The style as a `.qml` document.
    pub(crate) fn qml(&self) -> String {
        let mut root = Element::new("qgis")
            .attr("version", QGIS_VERSION)
            .attr("styleCategories", "Symbology|Labeling")
            .attr("labelsEnabled", u8::from(self.labeling.is_some()))
            .child(self.renderer.clone());
        if let Some(labeling) = &self.labeling {
            root = root.child(labeling.clone());
        }
        document(&root)
    }
}

/// The report's style: one category per month of `first_detected` present in `collection`, coloured
/// along a ramp from the oldest (dark) to the newest (brightest), plus the catch-all, so every feature
/// gets a symbol; labelled with the area in hectares.
///
/// Categories on the Date field rather than a graduated renderer on an expression such as
/// `to_int(format_date("first_detected",'yyyyMM'))`: QGIS reads the property as a Date, and a
/// renderer on a plain field is one every QGIS client (and a symbol check without a render loop)
/// evaluates the same way. QGIS compares a Date with a category by its ISO text, `YYYY-MM-DD`.
pub(crate) fn report_style(collection: &geojson::FeatureCollection) -> LayerStyle {
    let months: BTreeSet<&str> = collection
        .features
        .iter()
        .filter_map(|f| f.property("first_detected")?.as_str())
        .filter(|date| is_iso_date(date))
        .collect();
    let n = months.len();
    let categories: Vec<(&str, &str, Fill)> = months
        .iter()
        .enumerate()
        .map(|(i, date)| {
            let t = if n > 1 { i as f64 / (n - 1) as f64 } else { 1.0 };
            let (r, g, b) = ramp(t);
            let fill = Fill {
                fill: Some(Rgba(r, g, b, 190)),
                outline: Rgba(20, 20, 20, 255),
                width_mm: 0.3,
                dashed: false,
            };
            (*date, &date[..7], fill)
        })
        .collect();
    LayerStyle {
        renderer: categorized("first_detected", &categories),
        labeling: Some(labels("format_number(\"area_ha\",2) || ' ha'")),
    }
}

/// `YYYY-MM-DD`, the only form of date a report holds.
fn is_iso_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() && text.len() == 10
}

/// Dark red (oldest) through orange to bright yellow (newest): t in 0..1.
fn ramp(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, f64, f64); 3] = [(128.0, 0.0, 38.0), (253.0, 141.0, 60.0), (255.0, 255.0, 102.0)];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// White labels with a dark halo, over the polygon, from a QGIS expression.
fn labels(expression: &str) -> Element {
    let settings = Element::new("settings")
        .attr("calloutType", "simple")
        .child(
            Element::new("text-style")
                .attr("fieldName", expression)
                .attr("isExpression", 1)
                .attr("fontFamily", "Sans Serif")
                .attr("fontSize", 9)
                .attr("fontSizeUnit", "Point")
                .attr("fontWeight", 75)
                .attr("textColor", Rgba(255, 255, 255, 255))
                .attr("textOpacity", 1)
                .attr("namedStyle", "Bold")
                .child(
                    Element::new("text-buffer")
                        .attr("bufferDraw", 1)
                        .attr("bufferSize", 0.8)
                        .attr("bufferSizeUnits", "MM")
                        .attr("bufferColor", Rgba(0, 0, 0, 255))
                        .attr("bufferOpacity", 0.8),
                ),
        )
        .child(
            Element::new("placement")
                .attr("placement", 1) // OverPoint: at the polygon's centroid
                .attr("centroidInside", 1)
                .attr("fitInPolygonOnly", 0),
        )
        .child(
            Element::new("rendering")
                .attr("drawLabels", 1)
                .attr("obstacle", 1)
                .attr("displayAll", 0)
                .attr("upsidedownLabels", 0),
        );
    Element::new("labeling").attr("type", "simple").child(settings)
}

/// How each kind of change is drawn; removed polygons are a dashed outline with no fill.
pub(crate) fn change_fill(change: Change) -> Fill {
    let solid = |r, g, b, a| Fill {
        fill: Some(Rgba(r, g, b, a)),
        outline: Rgba(r / 2, g / 2, b / 2, 255),
        width_mm: 0.4,
        dashed: false,
    };
    match change {
        Change::Added => solid(227, 26, 28, 200),
        Change::Grown => solid(255, 127, 0, 200),
        Change::Shrunk => solid(31, 120, 180, 200),
        Change::Unchanged => solid(190, 190, 190, 120),
        Change::Removed => Fill {
            fill: None,
            outline: Rgba(0, 255, 255, 255),
            width_mm: 0.6,
            dashed: true,
        },
    }
}

/// Drawn for a value no category names: magenta, which no category uses.
const OTHER: Fill = Fill {
    fill: Some(Rgba(255, 0, 255, 160)),
    outline: Rgba(128, 0, 128, 255),
    width_mm: 0.4,
    dashed: false,
};

/// A renderer categorised by `attr`, plus a catch-all category (QGIS's "all other values", an empty
/// value) so that a feature with an unexpected or missing value is still drawn.
fn categorized(attr: &str, categories: &[(&str, &str, Fill)]) -> Element {
    let other = categories.len();
    let category = |i: usize, value: &str, label: &str| {
        Element::new("category")
            .attr("value", value)
            .attr("symbol", i)
            .attr("label", label)
            .attr("render", "true")
    };
    let elements = categories
        .iter()
        .enumerate()
        .map(|(i, (value, label, _))| category(i, value, label))
        .chain([category(other, "", "other")]);
    let symbols = categories
        .iter()
        .enumerate()
        .map(|(i, (_, _, fill))| fill.symbol(i))
        .chain([OTHER.symbol(other)]);
    Element::new("renderer-v2")
        .attr("type", "categorizedSymbol")
        .attr("attr", attr)
        .attr("symbollevels", 0)
        .attr("forceraster", 0)
        .attr("enableorderby", 0)
        .child(Element::new("categories").children(elements))
        .child(Element::new("symbols").children(symbols))
}

/// The diff's style: categorised by `change`, plus the catch-all.
pub(crate) fn diff_style() -> LayerStyle {
    let categories: Vec<(&str, &str, Fill)> = Change::ALL
        .iter()
        .map(|c| (c.name(), c.name(), change_fill(*c)))
        .collect();
    LayerStyle {
        renderer: categorized("change", &categories),
        labeling: None,
    }
}

/// The sample's `truth.geojson`: categorised by `kind`; what a detector must find (construction) in
/// green, what it must not (a site cleared and never built, a demolition) as outlines.
pub(crate) fn truth_style() -> LayerStyle {
    let outline = |r, g, b| Fill {
        fill: None,
        outline: Rgba(r, g, b, 255),
        width_mm: 0.6,
        dashed: true,
    };
    let construction = Fill {
        fill: Some(Rgba(51, 160, 44, 150)),
        outline: Rgba(20, 80, 20, 255),
        width_mm: 0.4,
        dashed: false,
    };
    LayerStyle {
        renderer: categorized(
            "kind",
            &[
                ("construction", "construction", construction),
                ("clearing_only", "cleared, never built", outline(255, 255, 0)),
                ("demolition", "demolished", outline(0, 255, 255)),
            ],
        ),
        labeling: None,
    }
}

/// The AOI: a dashed white outline, so the imagery inside stays visible.
pub(crate) fn aoi_style() -> LayerStyle {
    let symbol = Fill {
        fill: None,
        outline: Rgba(255, 255, 255, 255),
        width_mm: 0.7,
        dashed: true,
    }
    .symbol(0);
    LayerStyle {
        renderer: Element::new("renderer-v2")
            .attr("type", "singleSymbol")
            .attr("symbollevels", 0)
            .attr("forceraster", 0)
            .attr("enableorderby", 0)
            .child(Element::new("symbols").child(symbol)),
        labeling: None,
    }
}

/// The `.qml` path QGIS looks for beside a data file: same directory and base name.
pub(crate) fn qml_path(data: &Path) -> PathBuf {
    data.with_extension("qml")
}

/// Writes `style` beside `data` (atomically), where QGIS finds it.
pub(crate) fn write_qml(data: &Path, style: &LayerStyle) -> Result<()> {
    atomic::write(&qml_path(data), style.qml().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report_with(months: &[&str]) -> geojson::FeatureCollection {
        let features = months
            .iter()
            .map(|m| {
                let mut f = geojson::Feature::default();
                f.set_property("first_detected", json!(m));
                f
            })
            .collect();
        geojson::FeatureCollection {
            bbox: None,
            features,
            foreign_members: None,
        }
    }

    #[test]
    fn report_classes_are_the_months_present_oldest_darkest() {
        let style = report_style(&report_with(&["2023-04-01", "2022-11-01", "2023-04-01"]));
        let qml = style.qml();
        assert!(qml.contains(r#"attr="first_detected""#), "{qml}");
        assert!(
            qml.contains(r#"<category value="2022-11-01" symbol="0" label="2022-11""#),
            "{qml}"
        );
        assert!(
            qml.contains(r#"<category value="2023-04-01" symbol="1" label="2023-04""#),
            "{qml}"
        );
        assert!(qml.contains(r#"<category value="" symbol="2" label="other""#), "{qml}");
        assert_eq!(qml.matches("<category ").count(), 3);
        assert!(qml.contains("labelsEnabled=\"1\"") && qml.contains("format_number(&quot;area_ha&quot;,2)"));
        let brightness = |(r, g, b): (u8, u8, u8)| r as u32 + g as u32 + b as u32;
        assert!(brightness(ramp(0.0)) < brightness(ramp(0.5)) && brightness(ramp(0.5)) < brightness(ramp(1.0)));
    }

    #[test]
    fn diff_style_has_a_category_per_change_and_a_catch_all() {
        let qml = diff_style().qml();
        for c in Change::ALL {
            assert!(qml.contains(&format!("<category value=\"{}\"", c.name())), "{qml}");
        }
        assert!(qml.contains(r#"<category value="" symbol="5" label="other""#));
        assert_eq!(qml.matches("<symbol ").count(), 6);
        // Removed: outline only, dashed.
        let removed = change_fill(Change::Removed);
        assert!(removed.fill.is_none() && removed.dashed);
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let e = Element::new("a").attr("x", "1 < 2 & \"q\"").text("<b>");
        assert_eq!(
            document(&e).lines().nth(1),
            Some(r#"<a x="1 &lt; 2 &amp; &quot;q&quot;">&lt;b&gt;</a>"#)
        );
    }

    #[test]
    fn the_qml_sits_beside_the_geojson_with_its_base_name() {
        assert_eq!(qml_path(Path::new("out/diff.geojson")), PathBuf::from("out/diff.qml"));
    }
}

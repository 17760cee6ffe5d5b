//! The words and tables of a summary, written once as Markdown; the HTML pages are that Markdown
//! rendered by pulldown-cmark, so the two can never say different things (nor show Markdown
//! syntax in the HTML).
//!
//! The HTML has its CSS inline and loads nothing from the network: it must open the same way from
//! a USB stick in a field office as on a web server. `summary.html` finds its pictures beside it
//! by relative paths; the mail copy carries them inside itself as `data:` URIs.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

use super::{AcrossFigures, MonthFigures, SiteFigures, Totals, LARGEST_LISTED};
use crate::month::Month;
use crate::output::plural;

/// Polygons listed in the table of a page; all of them are in `report.geojson` and `summary.json`.
const POLYGONS_LISTED: usize = 20;

fn ha(v: f64) -> String {
    format!("{v:.2}")
}

fn signed_ha(v: Option<f64>) -> String {
    match v {
        Some(v) if v > 0.0 => format!("+{v:.2}"),
        Some(v) if v < 0.0 => format!("\u{2212}{:.2}", -v),
        Some(_) => "0.00".into(),
        None => String::new(),
    }
}

fn latlon(lat: f64, lon: f64) -> String {
    let ns = if lat < 0.0 { 'S' } else { 'N' };
    let ew = if lon < 0.0 { 'W' } else { 'E' };
    format!("{:.5}\u{b0} {ns}, {:.5}\u{b0} {ew}", lat.abs(), lon.abs())
}

fn months_list(months: &[Month]) -> String {
    months.iter().map(Month::to_string).collect::<Vec<_>>().join(", ")
}

/// The plain-language sections of a page, each a heading and its sentences.
struct Words {
    warning: Option<String>,
    sections: Vec<(&'static str, Vec<String>)>,
}

const SYNTHETIC_WARNING: &str =
    "SYNTHETIC DATA. These figures come from the bundled sample that `compound-watch sample` \
generates. They describe simulated imagery, not a real place or real buildings; do not forward them as findings.";

fn limits(synthetic: bool) -> Vec<String> {
    let mut out = vec![
        "Sentinel-2 pixels are 10 m across. The figures are areas of built-up surface, not counts of buildings; a 0.1 ha polygon is about ten pixels, and a small building can be missed altogether.".to_owned(),
        "The imagery shows roofs and bare ground, not people: it cannot tell who is inside, how many, or what a building is used for.".to_owned(),
        "A roof finished while the site was under cloud is dated by the first clear view after it, so in the monsoon a date can be months late. Built-up area in a month is measured only over that month's clear pixels, so a partly cloudy month can read lower.".to_owned(),
        "Every polygon is a lead to check over higher-resolution imagery, not proof. Its scenes are listed in report.geojson so anyone can look at the same images.".to_owned(),
    ];
    out.push(if synthetic {
        "This summary was made from the bundled synthetic sample: nothing in it is real.".to_owned()
    } else {
        "Figures made from the bundled synthetic sample (`compound-watch sample`) are never real; this summary was made from the scenes listed below.".to_owned()
    });
    out
}

/// The plain-language sections of a per-AOI page.
fn site_words(f: &SiteFigures) -> Words {
    Words {
        warning: f.synthetic.then(|| SYNTHETIC_WARNING.to_owned()),
        sections: vec![
            ("What changed", what_changed(f)),
            ("Where", where_words(f)),
            ("How sure", how_sure(f)),
            ("What the imagery cannot tell", limits(f.synthetic)),
        ],
    }
}

/// "What changed": how much new construction, when, and how the built-up area moved.
fn what_changed(f: &SiteFigures) -> Vec<String> {
    let t = &f.totals;
    let (from, to) = (f.period.from, f.period.to);
    let mut changed = Vec::new();
    match (t.first_new, t.last_new) {
        (Some(first), Some(last)) => {
            changed.push(format!(
                "Between {from} and {to}, {} ha of new construction appeared in {} at {}. The first was seen in {first}, the latest in {last}.",
                ha(t.new_ha),
                plural(t.new_polygons, "polygon", "polygons"),
                md_text(&f.aoi_name)
            ));
            if let Some(busiest) = f.months.iter().max_by(|a, b| a.new_ha.total_cmp(&b.new_ha)) {
                changed.push(format!(
                    "The most was first seen in {}: {} ha in {}.",
                    busiest.month,
                    ha(busiest.new_ha),
                    plural(busiest.new_polygons, "polygon", "polygons")
                ));
            }
        }
        _ => changed.push(format!(
            "Between {from} and {to}, no new construction was detected at {} (nothing as large as the minimum mapping unit).",
            md_text(&f.aoi_name)
        )),
    }
    if t.provisional_polygons > 0 {
        changed.push(format!(
            "A further {} ha in {} {} provisional: seen in too few clear months after the change to confirm it yet; the next scan confirms or withdraws {}.",
            ha(t.provisional_ha),
            plural(t.provisional_polygons, "polygon", "polygons"),
            if t.provisional_polygons == 1 { "is" } else { "are" },
            if t.provisional_polygons == 1 { "it" } else { "them" },
        ));
    }
    if let (Some(m0), Some(a), Some(m1), Some(b)) =
        (t.first_clear, t.first_builtup_ha, t.latest_clear, t.latest_builtup_ha)
    {
        if m0 != m1 {
            let unc = f.months.first().map_or(0.0, |m| m.builtup_uncertainty_ha);
            changed.push(format!(
                "The stable built-up estimate went from {} ha in {m0} to {} ha in {m1} (± {} ha of pixels whose class is ambiguous); it moves only by confirmed construction and demolition.",
                ha(a),
                ha(b),
                ha(unc)
            ));
        }
    }
    changed
}

/// "Where": the largest polygons by name and place.
fn where_words(f: &SiteFigures) -> Vec<String> {
    let mut place = Vec::new();
    if f.polygons.is_empty() {
        place.push("There are no polygons to place.".to_owned());
    } else {
        place.push(format!(
            "The largest {}, by area:",
            plural(f.polygons.len().min(LARGEST_LISTED), "polygon", "polygons")
        ));
        for p in f.polygons.iter().take(LARGEST_LISTED) {
            place.push(format!(
                "{}: {} ha centred at {}, first seen {}, confidence {:.2}.",
                md_text(&p.id),
                ha(p.area_ha),
                latlon(p.lat, p.lon),
                p.first_detected,
                p.confidence
            ));
        }
        place.push(
            "Every polygon is numbered on the location map and outlined in report.geojson; open project.qgs in QGIS to see them over composite.tif month by month."
                .to_owned(),
        );
    }
    place
}

/// "How sure": confidence, the observations behind the polygons, gaps and skipped scenes.
fn how_sure(f: &SiteFigures) -> Vec<String> {
    let t = &f.totals;
    let mut sure = Vec::new();
    if let (Some(mean), Some(min)) = (t.mean_confidence, t.min_confidence) {
        sure.push(format!(
            "Mean confidence of the polygons is {mean:.2} (lowest {min:.2}), on a scale of 0 to 1 that is not yet calibrated as a probability."
        ));
        let mut obs: Vec<u32> = f.polygons.iter().map(|p| p.n_clear_obs).collect();
        obs.sort_unstable();
        if let (Some(lo), Some(hi)) = (obs.first(), obs.last()) {
            sure.push(format!(
                "Each polygon rests on {lo} to {hi} clear observations of its pixels over the period (median per polygon)."
            ));
        }
    }
    sure.push(gap_sentence(t));
    sure.push(if t.skipped_scenes == 0 {
        format!("{} were used; none was skipped.", plural(t.scenes, "scene", "scenes"))
    } else {
        format!(
            "{} were used; {} found could not be used (listed in the report's compound_watch.skipped), so some months rest on fewer images.",
            plural(t.scenes, "scene", "scenes"),
            plural(t.skipped_scenes, "scene", "scenes")
        )
    });
    sure
}

fn across_words(a: &AcrossFigures) -> Words {
    let mut changed = vec![format!(
        "Across {}, {} ha of new construction appeared in {}.",
        plural(a.sites.len(), "AOI", "AOIs"),
        ha(a.new_ha),
        plural(a.new_polygons, "polygon", "polygons")
    )];
    for s in &a.sites {
        let t = &s.totals;
        changed.push(match t.last_new {
            Some(last) => format!(
                "{}: {} ha in {} between {} and {}, the latest first seen in {last}.",
                md_text(&s.aoi_name),
                ha(t.new_ha),
                plural(t.new_polygons, "polygon", "polygons"),
                s.period.from,
                s.period.to
            ),
            None => format!(
                "{}: no new construction between {} and {}.",
                md_text(&s.aoi_name),
                s.period.from,
                s.period.to
            ),
        });
    }
    let sure = a
        .sites
        .iter()
        .map(|s| {
            let t = &s.totals;
            format!(
                "{}: mean confidence {}. {}",
                md_text(&s.aoi_name),
                t.mean_confidence.map_or("n/a".into(), |c| format!("{c:.2}")),
                gap_sentence(t)
            )
        })
        .collect();
    let synthetic = a.sites.iter().any(|s| s.synthetic);
    Words {
        warning: synthetic.then(|| SYNTHETIC_WARNING.to_owned()),
        sections: vec![
            ("What changed", changed),
            ("How sure", sure),
            ("What the imagery cannot tell", limits(synthetic)),
        ],
    }
}

/// How a column is laid out.
#[derive(Clone, Copy, PartialEq)]
enum Col {
    /// Words: left-aligned, may wrap.
    Text,
    /// A short label such as a month or an id: left-aligned, never wrapped.
    Label,
    /// A number: right-aligned, never wrapped.
    Number,
}

/// A table: header cells, then rows of cells, laid out by `cols`.
struct Table {
    header: Vec<&'static str>,
    cols: Vec<Col>,
    rows: Vec<Vec<String>>,
    /// Rows shown in italics, greyed on the page (gap months).
    muted: Vec<bool>,
}

fn month_table(rows: &[MonthFigures]) -> Table {
    Table {
        header: vec![
            "Month",
            "Scenes",
            "Clear view",
            "Clear obs. (median)",
            "Built-up ha (stable)",
            "± ha",
            "Measured this month, ha",
            "vs previous month",
            "vs a year before",
            "New ha",
            "New polygons",
            "New ha since start",
            "Provisional ha",
            "Mean confidence",
        ],
        cols: [[Col::Label].as_slice(), &[Col::Number; 13]].concat(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.month.to_string(),
                    r.scenes.to_string(),
                    format!("{:.0}%", r.clear_fraction * 100.0),
                    format!("{}", r.clear_obs_median),
                    r.builtup_ha.map_or_else(String::new, ha),
                    ha(r.builtup_uncertainty_ha),
                    r.builtup_measured_ha.map_or_else(|| gap_word(r.scenes).to_owned(), ha),
                    signed_ha(r.builtup_change_ha),
                    signed_ha(r.builtup_yoy_ha),
                    if r.new_polygons > 0 {
                        ha(r.new_ha)
                    } else {
                        String::new()
                    },
                    if r.new_polygons > 0 {
                        r.new_polygons.to_string()
                    } else {
                        String::new()
                    },
                    ha(r.cumulative_new_ha),
                    if r.provisional_polygons > 0 {
                        ha(r.provisional_ha)
                    } else {
                        String::new()
                    },
                    r.mean_confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
                ]
            })
            .collect(),
        muted: rows.iter().map(|r| r.gap).collect(),
    }
}

/// What a month without a measure shows in tables: nothing to see, or nothing seen clearly.
fn gap_word(scenes: usize) -> &'static str {
    if scenes == 0 {
        "no scene"
    } else {
        "too cloudy"
    }
}

/// How a polygon is dated across gaps, as the detector dates it (`first_detected`).
pub(super) const GAP_DATING: &str = "A polygon is dated by the first month in which its own pixels were seen clearly with the new surface. A month too cloudy to measure the whole site can still date construction whose pixels it saw, so new construction can fall in a gap month; construction under cloud for longer is dated to the first month its pixels were seen clearly after it.";

/// The months without a measure, in words: "no scene" and "too cloudy" are different facts.
fn gap_sentence(t: &Totals) -> String {
    if t.gap_months.is_empty() {
        return format!("All {} months had enough clear view to measure.", t.months);
    }
    let cloudy: Vec<Month> = t
        .gap_months
        .iter()
        .copied()
        .filter(|m| !t.no_scene_months.contains(m))
        .collect();
    let mut parts = Vec::new();
    if !t.no_scene_months.is_empty() {
        parts.push(format!(
            "{} of {} months had no scene at all: {}",
            t.no_scene_months.len(),
            t.months,
            months_list(&t.no_scene_months)
        ));
    }
    if !cloudy.is_empty() {
        parts.push(format!(
            "{} of {} months were too cloudy to measure: {}",
            cloudy.len(),
            t.months,
            months_list(&cloudy)
        ));
    }
    format!(
        "{} (gaps: the built-up area is not measured there, never shown as zero). {GAP_DATING}",
        parts.join("; ")
    )
}

fn polygon_table(f: &SiteFigures) -> Table {
    let shown = &f.polygons[..f.polygons.len().min(POLYGONS_LISTED)];
    Table {
        header: vec![
            "Map",
            "Polygon",
            "Area ha",
            "First seen",
            "Status",
            "Confidence",
            "Clear obs.",
            "Centre",
        ],
        cols: vec![
            Col::Number,
            Col::Label,
            Col::Number,
            Col::Label,
            Col::Label,
            Col::Number,
            Col::Number,
            Col::Label,
        ],
        rows: shown
            .iter()
            .enumerate()
            .map(|(i, p)| {
                vec![
                    (i + 1).to_string(),
                    p.id.clone(),
                    ha(p.area_ha),
                    p.first_detected.to_string(),
                    if p.provisional { "provisional" } else { "confirmed" }.to_owned(),
                    format!("{:.2}", p.confidence),
                    p.n_clear_obs.to_string(),
                    latlon(p.lat, p.lon),
                ]
            })
            .collect(),
        muted: vec![false; shown.len()],
    }
}

fn across_table(a: &AcrossFigures) -> Table {
    Table {
        header: vec![
            "AOI",
            "Period",
            "New ha",
            "Polygons",
            "Last new",
            "Mean confidence",
            "Latest month",
            "New ha that month",
            "Built-up ha that month",
            "Gap months",
            "Scenes",
        ],
        cols: vec![
            Col::Text,
            Col::Label,
            Col::Number,
            Col::Number,
            Col::Label,
            Col::Number,
            Col::Label,
            Col::Number,
            Col::Number,
            Col::Label,
            Col::Number,
        ],
        rows: a
            .sites
            .iter()
            .map(|s| {
                let t = &s.totals;
                let latest = s.latest_month.as_ref();
                vec![
                    s.aoi_name.clone(),
                    format!("{} to {}", s.period.from, s.period.to),
                    ha(t.new_ha),
                    t.new_polygons.to_string(),
                    t.last_new.map(|m| m.to_string()).unwrap_or_default(),
                    t.mean_confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
                    latest.map(|m| m.month.to_string()).unwrap_or_default(),
                    latest.map(|m| ha(m.new_ha)).unwrap_or_default(),
                    latest.map_or(String::new(), |m| {
                        m.builtup_ha.map_or_else(|| gap_word(m.scenes).to_owned(), ha)
                    }),
                    format!("{} of {}", t.gap_months.len(), t.months),
                    t.scenes.to_string(),
                ]
            })
            .collect(),
        muted: vec![false; a.sites.len()],
    }
}

// ---- Markdown, the one source ----

/// `text` (a name a user chose, an id) safe inside Markdown: its punctuation that Markdown would
/// read as emphasis, a link, a table cell, code or raw HTML is escaped.
/// An underscore inside a word (`S2B_47QMU`) never starts emphasis, so it is left as it is and a
/// scene id stays readable in `summary.md`.
fn md_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let inside_word = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_alphanumeric());
        let special = match c {
            '_' => !(inside_word(i.checked_sub(1)) && inside_word(Some(i + 1))),
            _ => matches!(c, '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#'),
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as a code span (a file name, a command); a backtick inside would end it, so none is kept.
fn md_code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

fn md_table(t: &Table) -> String {
    let mut out = format!("| {} |\n|", t.header.join(" | "));
    for &c in &t.cols {
        out += if c == Col::Number { "---:|" } else { "---|" };
    }
    out.push('\n');
    for (row, muted) in t.rows.iter().zip(&t.muted) {
        let cells: Vec<String> = row
            .iter()
            .map(|c| match md_text(c) {
                c if *muted && !c.is_empty() => format!("*{c}*"),
                c => c,
            })
            .collect();
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// The synthetic-data warning, first thing under the title.
fn md_warning(w: &Words) -> String {
    w.warning
        .as_ref()
        .map(|warning| format!("> **{warning}**\n\n"))
        .unwrap_or_default()
}

fn md_words(w: &Words) -> String {
    let mut out = String::new();
    for (heading, sentences) in &w.sections {
        out += &format!("## {heading}\n\n");
        for s in sentences {
            out += &format!("- {s}\n");
        }
        out.push('\n');
    }
    out
}

/// A picture and its caption.
fn md_figure(p: &super::Picture) -> String {
    format!(
        "![{}]({})\n\n*{}*\n\n",
        md_text(&p.caption),
        p.path,
        md_text(&p.caption)
    )
}

/// The key figures of a page, as a one-row table.
fn md_key_figures(cells: &[(String, String)]) -> String {
    let header: Vec<&str> = cells.iter().map(|(label, _)| label.as_str()).collect();
    let values: Vec<&str> = cells.iter().map(|(_, value)| value.as_str()).collect();
    format!(
        "| {} |\n|{}\n| {} |\n\n",
        header.join(" | "),
        "---:|".repeat(cells.len()),
        values.join(" | ")
    )
}

/// When the page was made and from what: the newest scene behind it.
fn md_generated(f: &SiteFigures) -> String {
    let latest = match &f.latest_scene {
        Some(s) => format!(
            "; latest scene {} ({})",
            s.datetime.get(..10).unwrap_or(&s.datetime),
            md_text(&s.id)
        ),
        None => "; no scene was used".to_owned(),
    };
    format!(
        "Generated on {} by compound-watch {} from {}{latest}.\n\n",
        f.generated,
        md_text(&f.version),
        plural(f.scenes.len(), "scene", "scenes")
    )
}

/// `summary.md`, and the source of both HTML pages.
pub(super) fn site_markdown(f: &SiteFigures) -> String {
    let t = &f.totals;
    let words = site_words(f);
    let mut out = format!(
        "# {}: new construction, {} to {}\n\n{}*compound-watch {} summary of the AOI {}. The same figures are in summary.csv and summary.json.*\n\n",
        md_text(&f.aoi_name),
        f.period.from,
        f.period.to,
        md_warning(&words),
        md_text(&f.version),
        md_code(&f.aoi_slug)
    );
    out += &md_generated(f);
    out += &md_key_figures(&[
        ("New construction".into(), format!("{} ha", ha(t.new_ha))),
        ("New polygons".into(), t.new_polygons.to_string()),
        (
            format!(
                "Built-up in {}",
                t.latest_clear.map_or("no clear month".into(), |m| m.to_string())
            ),
            t.latest_builtup_ha.map_or("n/a".into(), |v| format!("{} ha", ha(v))),
        ),
        (
            "Months not measured".into(),
            format!("{} of {}", t.gap_months.len(), t.months),
        ),
        ("Scenes used".into(), t.scenes.to_string()),
    ]);
    out += &md_words(&words);
    if let Some(map) = &f.location {
        out += "## Location\n\n";
        out += &md_figure(map);
    }
    out += "## Charts\n\n";
    for c in &f.charts {
        out += &md_figure(c);
    }
    if !f.quicklooks.is_empty() {
        out += "## Before and after\n\n";
        for q in &f.quicklooks {
            out += &md_figure(q);
        }
    }
    out += "## Month by month\n\nBuilt-up ha is measured over the month's clear pixels; months in italics are gaps, too cloudy to measure the site (\"too cloudy\") or without any scene (\"no scene\"). New ha counts the report's polygons by the month they were first seen. ";
    out += GAP_DATING;
    out += "\n\n";
    out += &md_table(&month_table(&f.months));
    if !f.polygons.is_empty() {
        out += &format!(
            "\n## Polygons\n\nThe largest {} of {}, by area; *Map* is its number on the location map.\n\n",
            f.polygons.len().min(POLYGONS_LISTED),
            f.polygons.len()
        );
        out += &md_table(&polygon_table(f));
    }
    out += &format!(
        "\n## Provenance\n\n- software: {} {}\n- source: {}\n- period: {} to {}\n\n<details><summary>{} used</summary>\n\n{}\n\n</details>\n\n<details><summary>Parameters</summary>\n\n```json\n{}\n```\n\n</details>\n",
        md_text(&f.software),
        md_text(&f.version),
        md_code(&f.source),
        f.period.from,
        f.period.to,
        plural(f.scenes.len(), "scene", "scenes"),
        f.scenes.iter().map(|s| md_text(s)).collect::<Vec<_>>().join(", "),
        serde_json::to_string_pretty(&f.parameters).unwrap_or_default()
    );
    out
}

/// `across.md`, and the source of `across.html`.
pub(super) fn across_markdown(a: &AcrossFigures) -> String {
    let words = across_words(a);
    let mut out = format!(
        "# New construction across {}\n\n{}*compound-watch {} summary. The same figures are in across.csv and across.json; each AOI's own summary is in its scan output.*\n\n",
        plural(a.sites.len(), "AOI", "AOIs"),
        md_warning(&words),
        md_text(&a.version)
    );
    out += &md_key_figures(&[
        ("New construction".into(), format!("{} ha", ha(a.new_ha))),
        ("New polygons".into(), a.new_polygons.to_string()),
        ("AOIs".into(), a.sites.len().to_string()),
    ]);
    out += &md_words(&words);
    out += "## Per AOI\n\n";
    out += &md_table(&across_table(a));
    out += "\n## Chart\n\n";
    for c in &a.charts {
        out += &md_figure(c);
    }
    out
}

// ---- HTML, rendered from the Markdown ----

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;color:#1d2730;background:#f4f5f7;margin:0;line-height:1.45}
main{max-width:1020px;margin:0 auto;padding:24px 28px 48px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.08)}
h1{font-size:1.7em;margin:.2em 0 .1em}
h1+p,h1+p+p,h1+blockquote+p,h1+blockquote+p+p{color:#5b6670;margin:0 0 .3em}
h2{font-size:1.2em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #1f4e79;color:#1f4e79}
blockquote{background:#fff1c2;border:2px solid #c98a00;padding:2px 14px;margin:1em 0}
code{background:#eef1f4;padding:0 3px;border-radius:3px;font-size:.92em}
ul{padding-left:1.3em}
li{margin:.25em 0}
p img{max-width:100%;border:1px solid #d5dbe1;display:block}
p img+br{display:none}
table{border-collapse:collapse;font-size:.85em;width:100%;margin:.5em 0}
th{background:#1f4e79;color:#fff;font-weight:normal;padding:5px 6px;text-align:left;vertical-align:bottom}
td{padding:3px 6px;border-bottom:1px solid #e3e7eb;white-space:nowrap}
tr:nth-child(even) td{background:#f6f8fa}
td[style*=right],th[style*=right]{font-variant-numeric:tabular-nums}
td em{color:#8a949c}
main>table:first-of-type td{font-size:1.4em;color:#c83e2d;font-weight:bold;background:#f8fafc}
pre{background:#f6f8fa;border:1px solid #e3e7eb;padding:8px;font-size:.8em;overflow:auto;max-height:30em}
pre code{background:none;padding:0}
summary{cursor:pointer;color:#1f4e79}
";

/// How a page's pictures are referenced: by their path beside it, or carried inside it.
pub(super) enum Pictures<'a> {
    /// `src` is the picture's relative path.
    Linked,
    /// `src` is a `data:` URI of the bytes this returns for the relative path.
    Embedded(&'a dyn Fn(&str) -> Option<Vec<u8>>),
}

/// The HTML page of `markdown`: rendered by pulldown-cmark (tables on), wrapped in a standalone
/// document with inline CSS; with [`Pictures::Embedded`] every image is a `data:` URI.
pub(super) fn html(title: &str, markdown: &str, pictures: &Pictures<'_>) -> String {
    use base64::Engine as _;
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match (event, pictures) {
        (
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }),
            Pictures::Embedded(bytes),
        ) => {
            let dest_url = match bytes(&dest_url) {
                Some(png) => CowStr::from(format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(png)
                )),
                None => dest_url,
            };
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            })
        }
        (event, _) => event,
    });
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, events);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        esc(title)
    )
}

/// The title of a site's page.
pub(super) fn site_title(f: &SiteFigures) -> String {
    format!("{}: new construction, {} to {}", f.aoi_name, f.period.from, f.period.to)
}

/// The title of an across-AOI page.
pub(super) fn across_title(a: &AcrossFigures) -> String {
    format!("New construction across {}", plural(a.sites.len(), "AOI", "AOIs"))
}

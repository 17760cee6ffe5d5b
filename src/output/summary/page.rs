//! The words and tables of a summary, as Markdown and as one standalone HTML page.
//!
//! Both formats say the same sentences, built once in [`Words`]. The HTML has its CSS inline and
//! loads nothing from the network: it must open the same way from a USB stick in a field office as
//! on a web server. Its pictures are files beside it, referenced by relative paths.

use super::{AcrossFigures, MonthFigures, SiteFigures, Totals, LARGEST_LISTED};
use crate::month::Month;

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

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
                f.aoi_name
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
            f.aoi_name
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
                p.id,
                ha(p.area_ha),
                latlon(p.lat, p.lon),
                p.first_detected,
                p.confidence
            ));
        }
        place.push("Every polygon's outline is in report.geojson; open it in QGIS over composite.tif.".to_owned());
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
        let mut obs: Vec<f64> = f.polygons.iter().map(|p| p.n_clear_obs).collect();
        obs.sort_by(f64::total_cmp);
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
                s.aoi_name,
                ha(t.new_ha),
                plural(t.new_polygons, "polygon", "polygons"),
                s.period.from,
                s.period.to
            ),
            None => format!(
                "{}: no new construction between {} and {}.",
                s.aoi_name, s.period.from, s.period.to
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
                s.aoi_name,
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
    /// Rows shown greyed (gap months).
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
        cols: [[Col::Label].as_slice(), &[Col::Number; 12]].concat(),
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
        "{} (gaps, shown grey in the charts, never as zero). Construction finished in a gap is dated to the next clear month.",
        parts.join("; ")
    )
}

fn polygon_table(f: &SiteFigures) -> Table {
    let shown = &f.polygons[..f.polygons.len().min(POLYGONS_LISTED)];
    Table {
        header: vec![
            "Polygon",
            "Area ha",
            "First seen",
            "Status",
            "Confidence",
            "Clear obs.",
            "Centre",
        ],
        cols: vec![
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
            .map(|p| {
                vec![
                    p.id.clone(),
                    ha(p.area_ha),
                    p.first_detected.to_string(),
                    if p.provisional { "provisional" } else { "confirmed" }.to_owned(),
                    format!("{:.2}", p.confidence),
                    format!("{}", p.n_clear_obs),
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

// ---- Markdown ----

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn md_table(t: &Table) -> String {
    let mut out = format!("| {} |\n|", t.header.join(" | "));
    for &c in &t.cols {
        out += if c == Col::Number { "---:|" } else { "---|" };
    }
    out.push('\n');
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

fn md_words(w: &Words) -> String {
    let mut out = String::new();
    if let Some(warning) = &w.warning {
        out += &format!("> **{warning}**\n\n");
    }
    for (heading, sentences) in &w.sections {
        out += &format!("## {heading}\n\n");
        for s in sentences {
            out += &format!("- {s}\n");
        }
        out.push('\n');
    }
    out
}

/// `summary.md`.
pub(super) fn site_markdown(f: &SiteFigures) -> String {
    let mut out = format!(
        "# {}: new construction, {} to {}\n\n*compound-watch {} summary of the AOI `{}`. The same figures are in summary.csv and summary.json.*\n\n",
        f.aoi_name, f.period.from, f.period.to, f.version, f.aoi_slug
    );
    out += &md_words(&site_words(f));
    out += "## Charts\n\n";
    for c in &f.charts {
        out += &format!("![{}]({})\n\n*{}*\n\n", c.caption, c.path, c.caption);
    }
    if !f.quicklooks.is_empty() {
        out += "## Before and after\n\n";
        for q in &f.quicklooks {
            out += &format!("![{}]({})\n\n*{}*\n\n", q.caption, q.path, q.caption);
        }
    }
    out += "## Month by month\n\nBuilt-up ha is measured over the month's clear pixels; *gap* means too cloudy to measure. New ha counts the report's polygons by the month they were first seen.\n\n";
    out += &md_table(&month_table(&f.months));
    if !f.polygons.is_empty() {
        out += &format!(
            "\n## Polygons\n\nThe largest {} of {}, by area.\n\n",
            f.polygons.len().min(POLYGONS_LISTED),
            f.polygons.len()
        );
        out += &md_table(&polygon_table(f));
    }
    out += &format!(
        "\n## Provenance\n\n- software: {} {}\n- source: {}\n- period: {} to {}\n- scenes used: {} ({})\n- parameters:\n\n```json\n{}\n```\n",
        f.software,
        f.version,
        f.source,
        f.period.from,
        f.period.to,
        f.scenes.len(),
        f.scenes.join(", "),
        serde_json::to_string_pretty(&f.parameters).unwrap_or_default()
    );
    out
}

/// `across.md`.
pub(super) fn across_markdown(a: &AcrossFigures) -> String {
    let mut out = format!(
        "# New construction across {}\n\n*compound-watch {} summary. The same figures are in across.csv and across.json; each AOI's own summary is in its scan output.*\n\n",
        plural(a.sites.len(), "AOI", "AOIs"),
        a.version
    );
    out += &md_words(&across_words(a));
    out += "## Per AOI\n\n";
    out += &md_table(&across_table(a));
    out += "\n## Chart\n\n";
    for c in &a.charts {
        out += &format!("![{}]({})\n\n*{}*\n", c.caption, c.path, c.caption);
    }
    out
}

// ---- HTML ----

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
h2{font-size:1.2em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #1f4e79;color:#1f4e79}
.sub{color:#5b6670;margin:0 0 1em}
.warning{background:#fff1c2;border:2px solid #c98a00;padding:10px 14px;font-weight:bold;margin:1em 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{flex:1 1 150px;border:1px solid #d5dbe1;border-radius:6px;padding:10px 14px;background:#f8fafc}
.card b{display:block;font-size:1.6em;color:#c83e2d}
.card span{color:#5b6670;font-size:.9em}
ul{padding-left:1.3em}
li{margin:.25em 0}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #d5dbe1}
figcaption{color:#5b6670;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;width:100%;margin:.5em 0}
th{background:#1f4e79;color:#fff;font-weight:normal;padding:5px 6px;text-align:left;vertical-align:bottom}
td{padding:3px 6px;border-bottom:1px solid #e3e7eb}
td.n,td.k{white-space:nowrap}
tr:nth-child(even) td{background:#f6f8fa}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.muted td{color:#8a949c;font-style:italic;background:#eceeef}
pre{background:#f6f8fa;border:1px solid #e3e7eb;padding:8px;font-size:.8em;overflow:auto}
details{margin:.5em 0}
.note{color:#5b6670;font-size:.9em}
";

fn html_table(t: &Table) -> String {
    let class = |i: usize| match t.cols.get(i) {
        Some(Col::Number) => " class=\"n\"",
        Some(Col::Label) => " class=\"k\"",
        _ => "",
    };
    let mut out = String::from("<table>\n<tr>");
    for (i, h) in t.header.iter().enumerate() {
        out += &format!("<th{}>{}</th>", class(i), esc(h));
    }
    out += "</tr>\n";
    for (row, muted) in t.rows.iter().zip(&t.muted) {
        out += if *muted { "<tr class=\"muted\">" } else { "<tr>" };
        for (i, c) in row.iter().enumerate() {
            out += &format!("<td{}>{}</td>", class(i), esc(c));
        }
        out += "</tr>\n";
    }
    out + "</table>\n"
}

fn html_words(w: &Words) -> String {
    let mut out = String::new();
    if let Some(warning) = &w.warning {
        out += &format!("<p class=\"warning\">{}</p>\n", esc(warning));
    }
    for (heading, sentences) in &w.sections {
        out += &format!("<h2>{}</h2>\n<ul>\n", esc(heading));
        for s in sentences {
            out += &format!("<li>{}</li>\n", esc(s));
        }
        out += "</ul>\n";
    }
    out
}

fn html_figure(p: &super::Picture) -> String {
    format!(
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
        esc(&p.path),
        esc(&p.caption),
        esc(&p.caption)
    )
}

fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        esc(title)
    )
}

fn card(value: &str, label: &str) -> String {
    format!(
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        esc(value),
        esc(label)
    )
}

/// `summary.html`.
pub(super) fn site_html(f: &SiteFigures) -> String {
    let t = &f.totals;
    let title = format!("{}: new construction, {} to {}", f.aoi_name, f.period.from, f.period.to);
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"sub\">compound-watch {} summary of the AOI <code>{}</code>. The same figures are in summary.csv and summary.json.</p>\n",
        esc(&title),
        esc(&f.version),
        esc(&f.aoi_slug)
    );
    body += "<div class=\"cards\">";
    body += &card(&format!("{} ha", ha(t.new_ha)), "new construction");
    body += &card(&t.new_polygons.to_string(), "new polygons");
    body += &card(
        &t.latest_builtup_ha.map_or("n/a".into(), |v| format!("{} ha", ha(v))),
        &format!(
            "built-up in {}",
            t.latest_clear.map_or("no clear month".into(), |m| m.to_string())
        ),
    );
    body += &card(&format!("{} of {}", t.gap_months.len(), t.months), "months too cloudy");
    body += &card(&t.scenes.to_string(), "scenes used");
    body += "</div>\n";
    body += &html_words(&site_words(f));
    body += "<h2>Charts</h2>\n";
    for c in &f.charts {
        body += &html_figure(c);
    }
    if !f.quicklooks.is_empty() {
        body += "<h2>Before and after</h2>\n";
        for q in &f.quicklooks {
            body += &html_figure(q);
        }
    }
    body += "<h2>Month by month</h2>\n<p class=\"note\">Built-up ha is measured over the month's clear pixels; <i>gap</i> means too cloudy to measure. New ha counts the report's polygons by the month they were first seen.</p>\n";
    body += &html_table(&month_table(&f.months));
    if !f.polygons.is_empty() {
        body += &format!(
            "<h2>Polygons</h2>\n<p class=\"note\">The largest {} of {}, by area.</p>\n",
            f.polygons.len().min(POLYGONS_LISTED),
            f.polygons.len()
        );
        body += &html_table(&polygon_table(f));
    }
    body += &format!(
        "<h2>Provenance</h2>\n<ul>\n<li>software: {} {}</li>\n<li>source: {}</li>\n<li>period: {} to {}</li>\n</ul>\n<details><summary>{} scenes used</summary><pre>{}</pre></details>\n<details><summary>parameters</summary><pre>{}</pre></details>\n",
        esc(&f.software),
        esc(&f.version),
        esc(&f.source),
        f.period.from,
        f.period.to,
        f.scenes.len(),
        esc(&f.scenes.join("\n")),
        esc(&serde_json::to_string_pretty(&f.parameters).unwrap_or_default())
    );
    html_page(&title, &body)
}

/// `across.html`.
pub(super) fn across_html(a: &AcrossFigures) -> String {
    let title = format!("New construction across {}", plural(a.sites.len(), "AOI", "AOIs"));
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"sub\">compound-watch {} summary. The same figures are in across.csv and across.json; each AOI's own summary is in its scan output.</p>\n",
        esc(&title),
        esc(&a.version)
    );
    body += "<div class=\"cards\">";
    body += &card(&format!("{} ha", ha(a.new_ha)), "new construction");
    body += &card(&a.new_polygons.to_string(), "new polygons");
    body += &card(&a.sites.len().to_string(), "AOIs");
    body += "</div>\n";
    body += &html_words(&across_words(a));
    body += "<h2>Per AOI</h2>\n";
    body += &html_table(&across_table(a));
    body += "<h2>Chart</h2>\n";
    for c in &a.charts {
        body += &html_figure(c);
    }
    html_page(&title, &body)
}

//! Summaries of tiny hand-built scans: every expected figure is worked out by hand from the inputs.

use approx::assert_relative_eq;
use serde_json::json;

use super::*;

fn month(s: &str) -> Month {
    s.parse().unwrap()
}

/// A square polygon of about 100 m near Myawaddy, shifted east by `k` squares.
fn feature(id: &str, area_ha: f64, first: &str, confidence: f64, k: f64) -> Value {
    let (x, y) = (98.5 + k * 0.002, 16.7);
    json!({
        "type": "Feature",
        "id": id,
        "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]]},
        "properties": {"id": id, "area_m2": area_ha * 1e4, "area_ha": area_ha, "first_detected": format!("{first}-01"),
            "status": "confirmed", "confidence": confidence, "aoi": "site", "n_clear_obs": 20, "scenes": []}
    })
}

fn report(features: Vec<Value>) -> geojson::FeatureCollection {
    serde_json::from_value(json!({
        "type": "FeatureCollection",
        "features": features,
        "compound_watch": provenance_member(),
    }))
    .unwrap()
}

/// A scan's provenance: version 9.9.9, three scenes used, one skipped.
fn provenance_member() -> Value {
    use crate::output::provenance::{self, AoiRecord, Parameters, Provenance, SceneRecord};
    let scene = |id: &str| SceneRecord {
        id: id.into(),
        collection: "sentinel-2-l2a".into(),
        datetime: "2022-01-05T03:50:00Z".into(),
        tile: None,
        cloud_cover: None,
        processing_baseline: None,
        offset: crate::detect::reflectance::OffsetDecision {
            subtract_dn: 1000,
            basis: "metadata".into(),
            provider_flag: None,
            flag_consistent: None,
            evidence: String::new(),
            haze_dn: [0; 3],
        },
    };
    Provenance {
        software: "compound-watch".into(),
        version: "9.9.9".into(),
        aoi: AoiRecord {
            name: "Test site, north".into(),
            slug: "site".into(),
            origin: "site.geojson".into(),
            bbox: [98.5, 16.7, 98.6, 16.8],
            area_m2: 1e6,
            properties: Default::default(),
        },
        period: provenance::Period {
            from: month("2022-01"),
            to: month("2022-12"),
        },
        grid: crate::grid::Grid::for_tests(1, 1),
        source: "catalog.json".into(),
        parameters: Parameters {
            detect: crate::detect::DetectParams::default(),
            max_cloud_cover: 80.0,
            cloud_buffer_px: 2,
            persistent_cloud_is_surface: true,
            min_clear_obs: 1,
            min_area_m2: 1000.0,
            composite: String::new(),
            score: String::new(),
            change: String::new(),
            normalization: crate::detect::Normalization {
                shift: Vec::new(),
                spread: None,
            },
        },
        scenes: ["S2A_1", "S2B_2", "S2A_3"].map(scene).to_vec(),
        skipped: vec![crate::io::source::Skipped {
            id: "S2B_4".into(),
            reason: "404".into(),
        }],
        superseded: Vec::new(),
        no_data: Vec::new(),
        cloudy: Vec::new(),
    }
    .to_value()
    .unwrap()
}

/// Months from `from`, one per value; `None` is a gap.
fn months(from: &str, builtup: &[Option<f64>]) -> Vec<MonthFigures> {
    builtup
        .iter()
        .enumerate()
        .map(|(i, b)| MonthFigures {
            month: month(from).plus(i as i32),
            scenes: 3,
            clear_fraction: if b.is_some() { 0.9 } else { 0.1 },
            clear_obs_median: if b.is_some() { 2.0 } else { 0.0 },
            gap: b.is_none(),
            builtup_ha: *b,
            builtup_uncertainty_ha: 0.0,
            builtup_measured_ha: *b,
            // Derived by the summary; what is given here is overwritten.
            builtup_change_ha: None,
            builtup_yoy_ha: None,
            new_ha: 0.0,
            new_polygons: 0,
            cumulative_new_ha: 0.0,
            demolished_ha: 0.0,
            provisional_ha: 0.0,
            provisional_polygons: 0,
            mean_confidence: None,
        })
        .collect()
}

fn site(builtup: &[Option<f64>], features: Vec<Value>) -> SiteSummary {
    let months = months("2022-01", builtup);
    SiteSummary {
        aoi_name: "Test site, north".into(),
        aoi_slug: "site".into(),
        period: Period {
            from: months[0].month,
            to: months[months.len() - 1].month,
        },
        months,
        report: report(features),
        quicklooks: Vec::new(),
        location: None,
        generated: chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
        synthetic: false,
    }
}

fn three_polygons() -> Vec<Value> {
    vec![
        feature("site-r1c1", 1.234, "2022-02", 0.8, 0.0),
        feature("site-r5c9", 0.5, "2022-02", 0.7, 1.0),
        feature("site-r9c2", 2.111, "2022-04", 0.9, 2.0),
    ]
}

#[test]
fn a_gap_is_unknown_never_zero() {
    // The scan handing a value with a gap must not leak it: a gap is unmeasured.
    let mut s = site(&[Some(10.0), None, Some(12.0)], Vec::new());
    s.months[1].builtup_measured_ha = Some(0.0);
    let f = figures(&s).unwrap();
    assert_eq!(f.months[1].builtup_measured_ha, None);
    assert_eq!(f.totals.gap_months, vec![month("2022-02")]);
    let csv = site_csv(&f);
    let gap_row = csv.lines().nth(2).unwrap();
    assert!(
        gap_row.starts_with("2022-02,") && gap_row.contains(",true,,"),
        "{gap_row}"
    );
    assert_eq!(f.totals.latest_builtup_ha, Some(12.0));
    assert_eq!(f.totals.first_builtup_ha, Some(10.0));
}

#[test]
fn month_on_month_change_is_none_across_a_gap() {
    let f = figures(&site(&[Some(10.0), None, Some(12.0), Some(13.5)], Vec::new())).unwrap();
    let changes: Vec<Option<f64>> = f.months.iter().map(|m| m.builtup_change_ha).collect();
    assert_eq!(changes, vec![None, None, None, Some(1.5)]);
}

#[test]
fn year_on_year_compares_the_same_month_a_year_before() {
    // 2022-01 .. 2023-03 with 2022-02 a gap: 2023-01 compares with 2022-01, 2023-02 cannot.
    let mut builtup: Vec<Option<f64>> = (0..15).map(|i| Some(10.0 + f64::from(i))).collect();
    builtup[1] = None;
    let f = figures(&site(&builtup, Vec::new())).unwrap();
    let yoy: Vec<Option<f64>> = f.months.iter().map(|m| m.builtup_yoy_ha).collect();
    assert!(yoy[..12].iter().all(Option::is_none));
    assert_eq!(yoy[12], Some(12.0));
    assert_eq!(yoy[13], None);
    assert_eq!(yoy[14], Some(12.0));
}

#[test]
fn totals_agree_with_the_report() {
    let f = figures(&site(&[Some(1.0); 5], three_polygons())).unwrap();
    let t = &f.totals;
    assert_relative_eq!(t.new_ha, 1.234 + 0.5 + 2.111, epsilon = 1e-9);
    assert_eq!(t.new_polygons, 3);
    assert_eq!(
        (t.first_new, t.last_new),
        (Some(month("2022-02")), Some(month("2022-04")))
    );
    assert_relative_eq!(t.mean_confidence.unwrap(), 0.8, epsilon = 1e-9);
    assert_eq!(t.min_confidence, Some(0.7));
    assert_eq!((t.scenes, t.skipped_scenes), (3, 1));
    let per_month: Vec<(f64, usize)> = f.months.iter().map(|m| (m.new_ha, m.new_polygons)).collect();
    assert_eq!(per_month, vec![(0.0, 0), (1.734, 2), (0.0, 0), (2.111, 1), (0.0, 0)]);
    assert_eq!(f.months[1].mean_confidence, Some(0.75));
    assert_eq!(f.months[0].mean_confidence, None);
    assert_relative_eq!(f.months[4].cumulative_new_ha, t.new_ha, epsilon = 1e-9);
    // Largest first, with the provenance carried over rather than retyped.
    let ids: Vec<&str> = f.polygons.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["site-r9c2", "site-r1c1", "site-r5c9"]);
    assert_relative_eq!(f.polygons[1].lon, 98.5005, epsilon = 1e-9);
    assert_relative_eq!(f.polygons[1].lat, 16.7005, epsilon = 1e-9);
    assert_eq!(f.version, "9.9.9");
    assert_eq!(f.scenes, ["S2A_1", "S2B_2", "S2A_3"]);
    assert_eq!(f.parameters["min_area_m2"], json!(1000.0));
    assert_eq!(
        f.parameters["detect"]["min_step"],
        json!(0.4),
        "written as given, not widened"
    );
}

#[test]
fn months_that_do_not_cover_the_period_or_polygons_outside_it_are_refused() {
    let mut s = site(&[Some(1.0); 3], Vec::new());
    s.months.remove(1);
    let e = figures(&s).unwrap_err().to_string();
    assert!(e.contains("2022-01 to 2022-03") && e.contains("got 2 entries"), "{e}");
    let s = site(&[Some(1.0); 3], vec![feature("site-r1c1", 1.0, "2021-12", 0.8, 0.0)]);
    let e = figures(&s).unwrap_err().to_string();
    assert!(e.contains("site-r1c1") && e.contains("2021-12"), "{e}");
    let mut s = site(&[Some(1.0); 3], Vec::new());
    s.period.to = month("2021-06");
    let e = figures(&s).unwrap_err().to_string();
    assert!(e.contains("ends (2021-06) before it starts (2022-01)"), "{e}");
    let mut s = site(&[Some(1.0); 3], Vec::new());
    s.report.foreign_members = None;
    let e = figures(&s).unwrap_err().to_string();
    assert!(e.contains("compound_watch") && e.contains("rerun the scan"), "{e}");
}

#[test]
fn provisional_polygons_are_counted_apart_from_confirmed_ones() {
    let mut polygons = three_polygons();
    polygons[2]["properties"]["status"] = json!("provisional");
    let f = figures(&site(&[Some(10.0); 5], polygons)).unwrap();
    assert_relative_eq!(f.totals.new_ha, 1.734);
    assert_eq!((f.totals.new_polygons, f.totals.provisional_polygons), (2, 1));
    assert_relative_eq!(f.totals.provisional_ha, 2.111);
    let april = &f.months[3];
    assert_eq!((april.new_polygons, april.provisional_polygons), (0, 1));
    assert_relative_eq!(april.provisional_ha, 2.111);
    assert_relative_eq!(f.months[4].cumulative_new_ha, 1.734);
    assert!(f.polygons.iter().any(|p| p.id == "site-r9c2" && p.provisional));
    // A report whose features carry no status is not one this version wrote.
    let mut unknown = three_polygons();
    unknown[0]["properties"]["status"] = json!("maybe");
    let e = figures(&site(&[Some(10.0); 5], unknown)).unwrap_err().to_string();
    assert!(e.contains("site-r1c1") && e.contains("status"), "{e}");
}

#[test]
fn csv_parses_back_with_the_same_numbers() {
    let f = figures(&site(
        &[Some(10.25), None, Some(11.0), Some(11.5), Some(12.0)],
        three_polygons(),
    ))
    .unwrap();
    let csv = site_csv(&f);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 17);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let number = |cell: &str| (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap());
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), f.months.len());
    for (row, m) in rows.iter().zip(&f.months) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("month")], m.month.to_string());
        assert_eq!(row[col("gap")].parse::<bool>().unwrap(), m.gap);
        assert_eq!(number(row[col("builtup_ha")]), m.builtup_ha);
        assert_eq!(number(row[col("builtup_change_ha")]), m.builtup_change_ha);
        assert_eq!(number(row[col("new_ha")]), Some(m.new_ha));
        assert_eq!(row[col("new_polygons")].parse::<usize>().unwrap(), m.new_polygons);
        assert_eq!(number(row[col("cumulative_new_ha")]), Some(m.cumulative_new_ha));
        assert_eq!(number(row[col("mean_confidence")]), m.mean_confidence);
        assert_eq!(number(row[col("builtup_measured_ha")]), m.builtup_measured_ha);
        assert_eq!(number(row[col("provisional_ha")]), Some(m.provisional_ha));
    }
    // Months with nothing new say 0, never "-0" (a sum of no floats is -0.0 in Rust).
    assert!(!csv.contains(",-0,") && rows[0][col("new_ha")] == "0", "{csv}");
    let total: f64 = rows.iter().map(|r| number(r[col("new_ha")]).unwrap()).sum();
    assert_relative_eq!(total, f.totals.new_ha, epsilon = 1e-9);
}

fn chip(colour: [u8; 3]) -> image::RgbImage {
    image::RgbImage::from_pixel(16, 12, image::Rgb(colour))
}

fn quicklook(id: &str) -> Quicklook {
    Quicklook {
        id: id.into(),
        area_ha: 2.111,
        first_detected: month("2022-04"),
        before_month: month("2022-03"),
        after_month: month("2022-05"),
        before: chip([40, 110, 40]),
        after: chip([150, 150, 160]),
        outline: vec![(4.0, 3.0), (12.0, 3.0), (12.0, 9.0), (4.0, 9.0)],
    }
}

#[test]
fn a_small_chip_is_enlarged_and_outlined_on_both_sides() {
    let img = quicklook::render(&quicklook("site-r9c2")).unwrap();
    let k = quicklook::scale(16, 12);
    assert_eq!(k, 16);
    assert!(img.width() >= 2 * quicklook::MIN_SIDE && img.height() >= 12 * k);
    // Find the panels by colour: the before chip's green and the after chip's grey.
    let find = |c: [u8; 3]| {
        img.enumerate_pixels()
            .find(|(_, _, p)| p.0 == c)
            .map(|(x, y, _)| (x, y))
    };
    let (bx, by) = find([40, 110, 40]).unwrap();
    let (ax, ay) = find([150, 150, 160]).unwrap();
    assert_eq!(by, ay);
    for (x0, y0) in [(bx, by), (ax, ay)] {
        // The outline's top edge runs along chip row 3, enlarged: yellow there, chip colour inside.
        let on_edge = img.get_pixel(x0 + 8 * k, y0 + 3 * k);
        assert!(
            on_edge.0[0] > 200 && on_edge.0[1] > 180 && on_edge.0[2] < 80,
            "{on_edge:?}"
        );
        let inside = img.get_pixel(x0 + 8 * k, y0 + 6 * k);
        assert_ne!(inside, on_edge);
    }
    let mut bad = quicklook("x");
    bad.after = image::RgbImage::new(8, 8);
    let e = quicklook::render(&bad).unwrap_err().to_string();
    assert!(e.contains("16x12") && e.contains("8x8"), "{e}");
}

/// Every `src="..."` of a page.
fn sources(html: &str) -> Vec<String> {
    html.split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_page_loads_nothing_from_the_network_and_its_pictures_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = site(
        &[Some(10.0), None, Some(12.0), Some(13.0), Some(14.0)],
        three_polygons(),
    );
    s.quicklooks = vec![quicklook("site-r9c2")];
    let written = write_site(dir.path(), &s).unwrap();
    for name in ["summary.md", "summary.html", "summary.csv", "summary.json"] {
        assert!(written.contains(&dir.path().join(name)), "{name} not reported written");
    }
    let html = std::fs::read_to_string(dir.path().join("summary.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("url("));
    assert!(!html.contains("<script") && !html.contains("<link"));
    let srcs = sources(&html);
    assert_eq!(srcs.len(), 3, "two charts and one quicklook: {srcs:?}");
    for src in &srcs {
        let bytes = std::fs::read(dir.path().join(src)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{src}");
    }
    // Markdown points at the same pictures.
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    for src in &srcs {
        assert!(md.contains(&format!("]({src})")), "{src}");
    }
    // The words a reader forwards carry the figures.
    let said = format!(
        "{:.2} ha of new construction appeared in 3 polygons",
        figures(&s).unwrap().totals.new_ha
    );
    for text in [&html, &md] {
        assert!(text.contains(&said), "{said}");
        assert!(text.contains("too cloudy to measure") && text.contains("2022-02"));
        assert!(text.contains("not counts of buildings"));
        assert!(!text.contains("SYNTHETIC DATA"));
    }
    assert!(html.contains("Test site, north"));
}

#[test]
fn synthetic_scans_say_so_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = site(&[Some(1.0); 2], Vec::new());
    s.synthetic = true;
    write_site(dir.path(), &s).unwrap();
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    // Right under the title.
    let body = md.split_once("\n\n").unwrap().1;
    assert!(body.starts_with("> **SYNTHETIC DATA"), "{md}");
    assert!(md.contains("no new construction was detected"));
}

#[test]
fn summary_json_reads_back_and_feeds_the_across_summary() {
    let dir = tempfile::tempdir().unwrap();
    let a = site(&[Some(1.0); 5], three_polygons());
    let mut b = site(
        &[Some(2.0), None, Some(2.5)],
        vec![feature("other-r1c1", 0.75, "2022-03", 0.6, 0.0)],
    );
    b.aoi_name = "Other \"B\"".into();
    b.aoi_slug = "other".into();
    write_site(&dir.path().join("a"), &a).unwrap();
    write_site(&dir.path().join("b"), &b).unwrap();
    let read = [
        read_site(&dir.path().join("a")).unwrap(),
        read_site(&dir.path().join("b")).unwrap(),
    ];
    assert_eq!(read[0], figures(&a).unwrap());
    let across = dir.path().join("across");
    let written = write_across(&across, &read).unwrap();
    assert_eq!(written.len(), 5);
    let figures: AcrossFigures =
        serde_json::from_str(&std::fs::read_to_string(across.join("across.json")).unwrap()).unwrap();
    assert_relative_eq!(figures.new_ha, 3.845 + 0.75, epsilon = 1e-9);
    assert_eq!(figures.new_polygons, 4);
    let csv = std::fs::read_to_string(across.join("across.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with("site,\"Test site, north\",2022-01,2022-05,false,3.845,3,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("other,\"Other \"\"B\"\"\",2022-01,2022-03,false,0.75,1,"),
        "{}",
        lines[2]
    );
    let html = std::fs::read_to_string(across.join("across.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    for src in sources(&html) {
        assert!(across.join(&src).is_file(), "{src}");
    }
    let e = read_site(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("summary.json") && e.contains("compound-watch scan --out"),
        "{e}"
    );
    assert!(write_across(&across, &[]).is_err());
}

#[test]
fn a_gap_is_drawn_as_a_grey_column_in_the_middle_of_the_chart() {
    // The x of every pixel column that is mostly gap grey (anti-aliased text can hit the colour).
    let grey_columns = |rows: &[MonthFigures]| {
        let png = chart::builtup(rows).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let c = chart::GAP_GREY;
        let xs: Vec<u32> = (0..img.width())
            .filter(|&x| {
                (0..img.height())
                    .filter(|&y| img.get_pixel(x, y).0 == [c.0, c.1, c.2])
                    .count()
                    > 150
            })
            .collect();
        (img.width(), xs)
    };
    let f = figures(&site(
        &[Some(10.0), Some(11.0), None, Some(12.0), Some(13.0)],
        Vec::new(),
    ))
    .unwrap();
    let (width, xs) = grey_columns(&f.months);
    // The third of five months: a band around the middle, a fifth of the plot wide.
    let (lo, hi) = (*xs.first().unwrap(), *xs.last().unwrap());
    assert!(
        lo > width * 2 / 5 && hi < width * 3 / 4 && hi - lo > width / 10,
        "{lo}..{hi} of {width}"
    );
    let f = figures(&site(&[Some(10.0), Some(11.0), Some(12.0)], Vec::new())).unwrap();
    assert!(grey_columns(&f.months).1.is_empty(), "no gap, no grey");
}

#[test]
fn the_built_up_axis_starts_at_zero() {
    let f = figures(&site(&[Some(57.2), Some(57.9), None, Some(58.4)], Vec::new())).unwrap();
    let y = chart::builtup_range(&f.months);
    assert_eq!(y.start, 0.0);
    assert!(y.end > 58.4 && y.end < 70.0, "{y:?}");
}

#[test]
fn html_is_the_markdown_rendered_so_no_markdown_syntax_shows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = site(&[Some(1.0), None, Some(1.5), Some(1.5), Some(1.5)], three_polygons());
    s.synthetic = true;
    s.aoi_name = "Site <b>*bold*</b> & co".into();
    write_site(dir.path(), &s).unwrap();
    let html = std::fs::read_to_string(dir.path().join("summary.html")).unwrap();
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    // The banner's command is code, not backticks; a name a user chose is text, never markup.
    assert!(md.contains("`compound-watch sample`"));
    assert!(html.contains("<blockquote>") && html.contains("<code>compound-watch sample</code>"));
    assert!(!html.contains('`'), "{html}");
    assert!(!html.contains("<b>") && html.contains("Site &lt;b&gt;*bold*&lt;/b&gt; &amp;"));
    // Tables are tables, with gap months in italics.
    assert!(html.contains("<table>") && !html.contains("|---"), "{md}");
    assert!(html.contains("<td><em>2022-02</em></td>"), "{html}");
}

#[test]
fn summary_json_writes_polygons_as_the_report_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut polygons = three_polygons();
    polygons[0]["geometry"]["coordinates"][0][1][0] = json!(98.501_234_567_891);
    write_site(dir.path(), &site(&[Some(1.0); 5], polygons)).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    let p = &json["polygons"][1];
    assert_eq!(p["id"], "site-r1c1");
    assert_eq!(p["first_detected"], "2022-02-01");
    assert_eq!(p["n_clear_obs"], json!(20));
    assert!(p["n_clear_obs"].is_u64());
    for c in [&p["lon"], &p["lat"]] {
        let decimals = c.to_string().split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 6, "{c}");
    }
    assert_eq!(json["generated"], "2026-11-29");
    // The three scenes share one time: the tie goes to the last id.
    assert_eq!(json["latest_scene"]["id"], "S2B_2");
    // And it reads back, as the across summary reads it.
    assert_eq!(
        read_site(dir.path()).unwrap().polygons[1].first_detected,
        month("2022-02")
    );
}

#[test]
fn construction_dated_in_a_gap_month_is_counted_there_and_the_words_say_why() {
    // A polygon whose own pixels were clear in a month too cloudy to measure the whole site: the
    // report dates it there, so the month counts it, and the page explains a gap can date it.
    let s = site(
        &[Some(10.0), None, Some(12.0)],
        vec![feature("site-r1c1", 0.56, "2022-02", 0.8, 0.0)],
    );
    let f = figures(&s).unwrap();
    assert!(f.months[1].gap);
    assert_eq!((f.months[1].new_ha, f.months[1].new_polygons), (0.56, 1));
    let md = page::site_markdown(&f);
    assert!(!md.contains("dated to the next clear month"), "{md}");
    assert!(md.contains("A month too cloudy to measure the whole site can still date construction whose pixels it saw"));
}

#[test]
fn the_mail_page_carries_its_pictures_and_the_location_map_numbers_polygons() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = site(
        &[Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(1.0)],
        three_polygons(),
    );
    s.quicklooks = vec![quicklook("site-r9c2")];
    s.location = Some(LocationMap {
        composite: image::RgbImage::from_pixel(40, 30, image::Rgb([40, 110, 40])),
        metres_per_pixel: 10.0,
        aoi: vec![vec![(1.0, 1.0), (39.0, 1.0), (39.0, 29.0), (1.0, 29.0)]],
        polygons: vec![(
            "site-r9c2".into(),
            vec![(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)],
        )],
    });
    let written = write_site(dir.path(), &s).unwrap();
    assert!(written.contains(&dir.path().join(MAIL_PAGE)));
    let html = std::fs::read_to_string(dir.path().join("summary.html")).unwrap();
    let mail = std::fs::read_to_string(dir.path().join(MAIL_PAGE)).unwrap();
    let (linked, inside) = (sources(&html), sources(&mail));
    assert_eq!(linked.len(), 4, "location, two charts, one quicklook: {linked:?}");
    assert_eq!(linked[0], "summary/location.png");
    assert_eq!(inside.len(), linked.len());
    use base64::Engine as _;
    for (path, src) in linked.iter().zip(&inside) {
        let data = src.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        assert_eq!(bytes, std::fs::read(dir.path().join(path)).unwrap(), "{path}");
    }
    // The map: enlarged 40 times to 1600 px, the polygon (the largest, number 1) outlined in
    // yellow along its top edge.
    let map = image::open(dir.path().join(&linked[0])).unwrap().to_rgb8();
    assert_eq!(map.dimensions(), (1600, 1200));
    let edge = map.get_pixel(600, 400);
    assert!(edge.0[0] > 200 && edge.0[1] > 180 && edge.0[2] < 80, "{edge:?}");
    assert_eq!(map.get_pixel(600, 600).0, [40, 110, 40]);
}

#[test]
fn enlarging_by_a_whole_factor_draws_what_the_nearest_filter_draws() {
    // Every pixel a different colour, on odd and even sides, so a shifted or dropped row shows.
    for (w, h) in [(1, 1), (3, 2), (7, 5), (16, 9)] {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 37 + y) as u8, (y * 53 + x) as u8, (x * y) as u8])
        });
        for k in 1..=6 {
            let ours = chart::enlarge(&img, k);
            let theirs = image::imageops::resize(&img, w * k, h * k, image::imageops::FilterType::Nearest);
            assert_eq!(ours.dimensions(), (w * k, h * k));
            assert!(
                ours == theirs,
                "{w}x{h} enlarged {k} times differs from the nearest filter"
            );
            assert_eq!(ours.get_pixel(w * k - 1, h * k - 1), img.get_pixel(w - 1, h - 1));
        }
    }
}

//! Alerts: after a run, one alert per added or grown polygon not alerted before, written to
//! `alerts.json` (machines) and `alerts.md` (mail-ready text), and POSTed to a webhook if the watch
//! list sets one.
//!
//! What was alerted is kept in the output root's `.compound-watch/alerts-state.json`: a polygon
//! (site and stable id) is alerted once, and once more only if it was alerted as provisional and is
//! now confirmed. Alerts a webhook did not take are kept there too and POSTed again with the next
//! run's, so a server that is down loses nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use geo::Centroid;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{SiteRecord, WatchList};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::http::{Http, RetryPolicy};
use crate::output::{plural, report};

/// One added or grown polygon, as `alerts.json` and the webhook carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The site's name in the watch list.
    pub site: String,
    /// The polygon's stable id (as in the site's report and diff).
    pub polygon: String,
    /// `added` or `grown`.
    pub change: String,
    /// `confirmed`, or `provisional` when the detector marks it so.
    pub status: String,
    /// Its area now, hectares.
    pub area_ha: f64,
    /// Area gained since the previous report, hectares (the whole area when added).
    pub gained_ha: f64,
    /// The month construction was first detected.
    pub first_detected: String,
    /// The detector's confidence, 0-1, when it reports one.
    pub confidence: Option<f64>,
    /// The period scanned, `YYYY-MM..YYYY-MM`.
    pub period: String,
    /// Longitude and latitude of its centre, degrees.
    pub centre: [f64; 2],
    /// The site's report (GeoJSON), relative to the output root.
    pub report: PathBuf,
    /// The diff that holds this polygon, relative to the output root.
    pub diff: PathBuf,
    /// The site's summary page with its quicklooks, relative to the output root.
    pub summary: PathBuf,
}

/// What became of the webhook POST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The webhook.
    pub url: String,
    /// Whether the server took the alerts (a 2xx answer).
    pub delivered: bool,
    /// Alerts in the POST (this run's and any an earlier run could not deliver).
    pub alerts: usize,
    /// Why it failed, after every retry (empty when delivered).
    pub reason: String,
}

impl Delivery {
    /// One line for people.
    pub fn summary(&self) -> String {
        if self.delivered {
            format!("{} alerts POSTed to {}", self.alerts, self.url)
        } else {
            format!(
                "{} alerts NOT delivered to {} ({}); they are POSTed again with the next run's",
                self.alerts, self.url, self.reason
            )
        }
    }
}

/// What was alerted, and what the webhook still owes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Per site, per polygon id: the status it was alerted with.
    alerted: BTreeMap<String, BTreeMap<String, String>>,
    /// Alerts the webhook did not take yet.
    undelivered: Vec<Alert>,
}

fn state_path(root: &Path) -> PathBuf {
    root.join(".compound-watch/alerts-state.json")
}

fn load_state(path: &Path) -> Result<State> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: format!(
                "is not an alert state written by compound-watch ({e}); delete it, and every polygon \
                 of the next run is alerted again"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// The alerts new in this run, from the diffs of the published sites; records them in the state,
/// and POSTs them (with any still owed) to the webhook if one is set.
pub(super) fn raise(list: &WatchList, published: &[&SiteRecord]) -> Result<(Vec<Alert>, Option<Delivery>)> {
    let root = &list.out;
    let path = state_path(root);
    let mut state = load_state(&path)?;
    let mut alerts = Vec::new();
    for site in published {
        let Some(diff) = &site.diff else { continue };
        let collection = report::read_geojson(&root.join(diff))?;
        let seen = state.alerted.entry(site.name.clone()).or_default();
        for feature in &collection.features {
            let Some(alert) = alert_of(site, feature) else { continue };
            let again = match seen.get(&alert.polygon) {
                None => true,
                Some(before) => before == "provisional" && alert.status == "confirmed",
            };
            if again {
                seen.insert(alert.polygon.clone(), alert.status.clone());
                alerts.push(alert);
            }
        }
    }
    let delivery = list.alerts.webhook.as_ref().and_then(|url| {
        let owed: Vec<Alert> = state.undelivered.drain(..).chain(alerts.iter().cloned()).collect();
        if owed.is_empty() {
            return None;
        }
        let delivery = post(url, &owed, list);
        if !delivery.delivered {
            state.undelivered = owed;
        }
        Some(delivery)
    });
    atomic::write_json(&path, &state)?;
    Ok((alerts, delivery))
}

/// The alert of a diff feature that was added or grew.
fn alert_of(site: &SiteRecord, feature: &geojson::Feature) -> Option<Alert> {
    let text = |key: &str| feature.property(key).and_then(Value::as_str);
    let number = |key: &str| feature.property(key).and_then(Value::as_f64);
    let change = text("change")?;
    if change != "added" && change != "grown" {
        return None;
    }
    let area = number("area_m2").unwrap_or(0.0);
    let gained = if change == "added" {
        area
    } else {
        number("area_delta_m2").unwrap_or(0.0)
    };
    let centre = report::multipolygon_of(feature)
        .centroid()
        .map(|c| [round(c.x(), 5), round(c.y(), 5)])
        .unwrap_or_default();
    Some(Alert {
        site: site.name.clone(),
        polygon: text("id")?.to_owned(),
        change: change.to_owned(),
        status: text("status").unwrap_or("confirmed").to_owned(),
        area_ha: round(area / 1e4, 2),
        gained_ha: round(gained / 1e4, 2),
        first_detected: text("first_detected").unwrap_or_default().to_owned(),
        confidence: number("confidence").map(|c| round(c, 2)),
        period: format!("{}..{}", site.from, site.to),
        centre,
        report: site.report.clone().unwrap_or_default(),
        diff: site.diff.clone().unwrap_or_default(),
        summary: site.summary.clone().unwrap_or_default(),
    })
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// POSTs `alerts` to the webhook, with the list's timeout and retries.
fn post(url: &str, alerts: &[Alert], list: &WatchList) -> Delivery {
    let settings = &list.alerts;
    let retry = RetryPolicy {
        max_retries: settings.retries,
        base_delay: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    let http = Http::new(Duration::from_secs(settings.timeout_secs), retry);
    let body = json!({
        "software": "compound-watch",
        "watchlist": list.path,
        "alerts": alerts,
    });
    let outcome = http.post(url, &body);
    Delivery {
        url: url.to_owned(),
        delivered: outcome.is_ok(),
        alerts: alerts.len(),
        reason: outcome.err().map(|e| e.to_string()).unwrap_or_default(),
    }
}

/// Writes `alerts.json` and `alerts.md` (both, even when empty: a run that found nothing says so).
pub(super) fn write(root: &Path, alerts: &[Alert]) -> Result<Vec<PathBuf>> {
    let (json_path, md_path) = (root.join("alerts.json"), root.join("alerts.md"));
    atomic::write_json(&json_path, &json!({ "software": "compound-watch", "alerts": alerts }))?;
    atomic::write(&md_path, markdown(root, alerts).as_bytes())?;
    Ok(vec![json_path, md_path])
}

/// `alerts.md`: plain text a mail can carry as it is.
fn markdown(root: &Path, alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "compound-watch: nothing new in this run.\n".into();
    }
    let mut by_site: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        by_site.entry(&a.site).or_default().push(a);
    }
    let mut md = format!(
        "compound-watch: {} of construction in {}.\nPaths are relative to {}.\n",
        plural(alerts.len(), "new or grown polygon", "new or grown polygons"),
        plural(by_site.len(), "site", "sites"),
        root.display()
    );
    for (site, list) in by_site {
        let ha: f64 = list.iter().map(|a| a.gained_ha).sum();
        let _ = write!(
            md,
            "\n## {site}: {}, {ha:.2} ha new\n\n",
            plural(list.len(), "polygon", "polygons")
        );
        for a in &list {
            let confidence = a.confidence.map(|c| format!(", confidence {c:.2}")).unwrap_or_default();
            let _ = writeln!(
                md,
                "- {} {} ({}): {:.2} ha now, {:.2} ha new, first detected {}{confidence}, at {:.5} E {:.5} N (scanned {})",
                a.polygon, a.change, a.status, a.area_ha, a.gained_ha, a.first_detected, a.centre[0], a.centre[1], a.period
            );
        }
        let first = list[0];
        let _ = writeln!(
            md,
            "\n  GeoJSON: {}  diff: {}  quicklooks: {}",
            first.report.display(),
            first.diff.display(),
            first.summary.display()
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(change: &str, status: Option<&str>) -> geojson::Feature {
        let mut props = json!({"id": "p1", "change": change, "area_m2": 25_000.0, "area_delta_m2": 5_000.0,
            "first_detected": "2022-10", "confidence": 0.876});
        if let Some(s) = status {
            props["status"] = json!(s);
        }
        serde_json::from_value(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[98.0, 16.0], [98.002, 16.0], [98.002, 16.002], [98.0, 16.0]]]},
            "properties": props,
        }))
        .unwrap()
    }

    fn site() -> SiteRecord {
        SiteRecord {
            name: "s".into(),
            status: super::super::Status::Published,
            exit_code: 0,
            reason: String::new(),
            from: "2021-07".parse().unwrap(),
            to: "2022-12".parse().unwrap(),
            scenes_found: 1,
            scenes_used: 1,
            scenes_skipped: 0,
            detections: 1,
            polygons: Default::default(),
            started: String::new(),
            duration_s: 0.0,
            out: "s".into(),
            report: Some("s/report.geojson".into()),
            diff: Some("s/diff.geojson".into()),
            summary: Some("s/summary.md".into()),
            tiles: 0,
        }
    }

    #[test]
    fn added_and_grown_polygons_alert_the_others_do_not() {
        let added = alert_of(&site(), &feature("added", None)).unwrap();
        assert_eq!((added.area_ha, added.gained_ha), (2.5, 2.5));
        assert_eq!(added.status, "confirmed", "no status from the detector means confirmed");
        assert_eq!(added.confidence, Some(0.88));
        let grown = alert_of(&site(), &feature("grown", Some("provisional"))).unwrap();
        assert_eq!((grown.gained_ha, grown.status.as_str()), (0.5, "provisional"));
        for change in ["shrunk", "unchanged", "removed"] {
            assert!(alert_of(&site(), &feature(change, None)).is_none(), "{change}");
        }
    }

    #[test]
    fn the_mail_names_site_hectares_date_confidence_and_files() {
        let a = alert_of(&site(), &feature("added", None)).unwrap();
        let md = markdown(Path::new("out/border"), &[a]);
        for needle in [
            "1 new or grown polygon",
            "## s: 1 polygon, 2.50 ha new",
            "first detected 2022-10",
            "confidence 0.88",
            "s/report.geojson",
            "s/summary.md",
            "relative to out/border",
        ] {
            assert!(md.contains(needle), "{needle} not in\n{md}");
        }
        assert_eq!(
            markdown(Path::new("o"), &[]),
            "compound-watch: nothing new in this run.\n"
        );
    }
}

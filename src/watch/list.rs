//! The watch list: a TOML file naming the sites to scan, with defaults every site may override.
//!
//! Parsing only: a key that is wrong or missing becomes [`Error::WatchList`] naming the file, the
//! key and the fix. Paths in the file are relative to the file's own folder, so a cron job or a
//! cluster node finds the same files whatever its working directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use crate::detect::RoofModel;
use crate::error::{Error, Result};
use crate::month::Month;

/// A checked watch list: every site with its period, source and folder resolved.
#[derive(Debug, Clone)]
pub struct WatchList {
    /// The file it was read from.
    pub path: PathBuf,
    /// The output root: each site writes to `<out>/<name>/`; `run.json`, `run.md`, the
    /// across-sites summary and the alerts go to the root itself.
    pub out: PathBuf,
    /// The window cache shared by every site, if the list names one (else the binary's default).
    pub cache: Option<PathBuf>,
    /// Sites scanned at once, at most.
    pub parallel: usize,
    /// Memory the sites scanned at once may take together, MB (`memory_mb`; None: no budget).
    pub memory_mb: Option<u64>,
    /// The sites, in the order of the file.
    pub sites: Vec<Site>,
    /// What to do when something new is found.
    pub alerts: AlertSettings,
}

/// One site of a watch list, resolved.
#[derive(Debug, Clone)]
pub struct Site {
    /// Its name: the folder under the output root and the name in every summary.
    pub name: String,
    /// Where its outline comes from.
    pub area: Area,
    /// Any `--source` value; a static catalog's path is resolved against the watch list's folder.
    pub source: String,
    /// The STAC collection, when not the source's default.
    pub collection: Option<String>,
    /// First month, included.
    pub from: Month,
    /// Last month, included.
    pub to: Month,
    /// Largest scene cloud cover accepted, percent (the scan's default when `None`).
    pub max_cloud_cover: Option<f64>,
    /// Minimum mapping unit, m² (the scan's default when `None`).
    pub min_area_m2: Option<f64>,
    /// Which surfaces count as roofs, as `scan --roofs` (the scan's default when `None`).
    pub roofs: Option<RoofModel>,
    /// Subtract each scene's haze, as `scan --haze-correction` (off when `None`).
    pub haze_correction: Option<bool>,
    /// A site whose grid covers more than this many km² is scanned in tiles (see
    /// [`crate::watch::tile`]; [`crate::watch::tile::DEFAULT_TILE_KM2`] when `None`).
    pub tile_km2: Option<f64>,
}

/// A site's outline: an AOI file or a box.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// A GeoJSON file (resolved against the watch list's folder).
    File(PathBuf),
    /// `[west, south, east, north]`, degrees.
    Bbox([f64; 4]),
}

/// The `[alerts]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// A URL the alerts are POSTed to as JSON, if any.
    pub webhook: Option<String>,
    /// Seconds before one webhook request is given up.
    pub timeout_secs: u64,
    /// Retries of a failed webhook request (5xx, 429, timeouts, resets), with backoff.
    pub retries: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook: None,
            timeout_secs: 10,
            retries: 3,
        }
    }
}

/// The names `--source` knows; anything else that is not a URL is a path.
const NAMED_SOURCES: [&str; 3] = ["earth-search", "planetary-computer", "cdse"];

/// The period rule for `to`: the last month that has ended.
const LAST_COMPLETE_MONTH: &str = "last-complete-month";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    source: Option<String>,
    collection: Option<String>,
    from: Option<String>,
    to: Option<String>,
    out: Option<PathBuf>,
    cache: Option<PathBuf>,
    parallel: Option<usize>,
    memory_mb: Option<u64>,
    max_cloud_cover: Option<f64>,
    min_area: Option<f64>,
    roofs: Option<String>,
    haze_correction: Option<bool>,
    tile_km2: Option<f64>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    webhook: Option<String>,
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    aoi: Option<PathBuf>,
    bbox: Option<[f64; 4]>,
    source: Option<String>,
    collection: Option<String>,
    from: Option<String>,
    to: Option<String>,
    max_cloud_cover: Option<f64>,
    min_area: Option<f64>,
    roofs: Option<String>,
    haze_correction: Option<bool>,
    tile_km2: Option<f64>,
}

/// Reads and checks a watch list; `today` resolves `to = "last-complete-month"`.
pub fn load(path: &Path, today: NaiveDate) -> Result<WatchList> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::WatchList {
        path: path.to_path_buf(),
        key: "(file)".into(),
        reason: format!("cannot be read ({source}); give the path of a watch list TOML file"),
    })?;
    parse(&text, path, today)
}

/// Checks a watch list's text; `path` names it in errors and is the base of its relative paths.
pub fn parse(text: &str, path: &Path, today: NaiveDate) -> Result<WatchList> {
    let fail = |key: &str, reason: String| Error::WatchList {
        path: path.to_path_buf(),
        key: key.into(),
        reason,
    };
    let raw: RawList = toml::from_str(text).map_err(|e| {
        let reason = e.message().to_owned();
        let at = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
            .unwrap_or_default();
        fail("(syntax)", format!("{reason}{at}; see watch/border.toml for every key"))
    })?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let out = raw.out.as_ref().ok_or_else(|| {
        fail(
            "out",
            "missing: add `out = \"out/NAME\"`, the folder each site's outputs go under".into(),
        )
    })?;
    if raw.site.is_empty() {
        return Err(fail(
            "site",
            "no site: add at least one [[site]] table with `name` and `aoi` or `bbox`".into(),
        ));
    }
    let parallel = raw.parallel.unwrap_or(1);
    if parallel == 0 {
        return Err(fail(
            "parallel",
            "must be at least 1 (the sites scanned at once)".into(),
        ));
    }
    if raw.memory_mb == Some(0) {
        return Err(fail(
            "memory_mb",
            "must be at least 1 (MB the sites scanned at once may take together); leave it out for no budget".into(),
        ));
    }
    let mut names = BTreeSet::new();
    let sites = raw
        .site
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let resolved = resolve_site(site, &raw, &base, today)
                .map_err(|(key, reason)| fail(&format!("site[{i}] ({}).{key}", site.name), reason))?;
            if !names.insert(resolved.name.clone()) {
                return Err(fail(
                    &format!("site[{i}].name"),
                    format!(
                        "{:?} names two sites; each site needs its own name (its output folder)",
                        site.name
                    ),
                ));
            }
            Ok(resolved)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WatchList {
        path: path.to_path_buf(),
        out: base.join(out),
        cache: raw.cache.as_ref().map(|c| base.join(c)),
        parallel,
        memory_mb: raw.memory_mb,
        sites,
        alerts: alert_settings(&raw.alerts).map_err(|(key, reason)| fail(&format!("alerts.{key}"), reason))?,
    })
}

impl WatchList {
    /// Every site's source replaced by `source` (a command-line value: a path is relative to the
    /// working directory; `{name}` is each site's name).
    pub fn set_source(&mut self, source: &str) {
        for site in &mut self.sites {
            site.source = resolve_source(&source.replace("{name}", &site.name), Path::new(""));
        }
    }

    /// Every site's first and/or last month replaced; a period that would end before it starts is
    /// refused, naming the site.
    pub fn set_period(&mut self, from: Option<Month>, to: Option<Month>) -> Result<()> {
        for site in &mut self.sites {
            site.from = from.unwrap_or(site.from);
            site.to = to.unwrap_or(site.to);
            if site.to < site.from {
                return Err(Error::Config {
                    field: "--from/--to".into(),
                    reason: format!(
                        "site {} would run from {} to {}, which ends before it starts; give both --from and --to",
                        site.name, site.from, site.to
                    ),
                });
            }
        }
        Ok(())
    }
}

type KeyError = (String, String);

fn alert_settings(raw: &RawAlerts) -> std::result::Result<AlertSettings, KeyError> {
    let default = AlertSettings::default();
    if let Some(url) = &raw.webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err((
                "webhook".into(),
                format!("{url:?} is not an http:// or https:// URL; give the URL alerts are POSTed to"),
            ));
        }
    }
    if raw.timeout_seconds == Some(0) {
        return Err(("timeout_seconds".into(), "must be at least 1".into()));
    }
    Ok(AlertSettings {
        webhook: raw.webhook.clone(),
        timeout_secs: raw.timeout_seconds.unwrap_or(default.timeout_secs),
        retries: raw.retries.unwrap_or(default.retries),
    })
}

fn resolve_site(site: &RawSite, list: &RawList, base: &Path, today: NaiveDate) -> std::result::Result<Site, KeyError> {
    let key_error = |key: &str, reason: String| (key.to_owned(), reason);
    let name_ok = !site.name.is_empty()
        && site
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !site.name.starts_with(['-', '.']);
    if !name_ok {
        return Err(key_error(
            "name",
            format!(
                "{:?} cannot be a folder name; use letters, digits, '_' and '-' (e.g. \"kk_park\")",
                site.name
            ),
        ));
    }
    let area = match (&site.aoi, site.bbox) {
        (Some(aoi), None) => Area::File(base.join(aoi)),
        (None, Some(bbox)) => Area::Bbox(bbox),
        (Some(_), Some(_)) => {
            return Err(key_error(
                "aoi",
                "and `bbox` both given; keep one: `aoi` (a GeoJSON file) or `bbox` ([W, S, E, N])".into(),
            ))
        }
        (None, None) => {
            return Err(key_error(
                "aoi",
                "missing: give `aoi = \"aoi/NAME.geojson\"` (relative to the watch list) or \
                 `bbox = [W, S, E, N]`"
                    .into(),
            ))
        }
    };
    let source = site.source.as_ref().or(list.source.as_ref()).ok_or_else(|| {
        key_error(
            "source",
            "missing: set `source` at the top of the watch list (the default of every site) or in \
                 the site; any --source value, e.g. \"earth-search\""
                .into(),
        )
    })?;
    let from_text = site.from.as_ref().or(list.from.as_ref()).ok_or_else(|| {
        key_error(
            "from",
            "missing: set `from = \"YYYY-MM\"` at the top of the watch list or in the site".into(),
        )
    })?;
    let to_text = site.to.as_ref().or(list.to.as_ref()).ok_or_else(|| {
        key_error(
            "to",
            format!("missing: set `to = \"YYYY-MM\"` or `to = \"{LAST_COMPLETE_MONTH}\"`"),
        )
    })?;
    let from: Month = from_text
        .parse()
        .map_err(|e: String| key_error("from", format!("{e}; write the first month as \"YYYY-MM\"")))?;
    let to = period_end(to_text, today).map_err(|reason| key_error("to", reason))?;
    if to < from {
        return Err(key_error(
            "to",
            format!("{to} is before `from` {from}; the period runs from `from` to `to`"),
        ));
    }
    let (roofs, tile_km2) = roofs_and_tiles(site, list)?;
    Ok(Site {
        name: site.name.clone(),
        area,
        source: resolve_source(&source.replace("{name}", &site.name), base),
        collection: site.collection.clone().or_else(|| list.collection.clone()),
        from,
        to,
        max_cloud_cover: site.max_cloud_cover.or(list.max_cloud_cover),
        min_area_m2: site.min_area.or(list.min_area),
        roofs,
        haze_correction: site.haze_correction.or(list.haze_correction),
        tile_km2,
    })
}

/// A site's `roofs` and `tile_km2`, or the list's.
fn roofs_and_tiles(site: &RawSite, list: &RawList) -> std::result::Result<(Option<RoofModel>, Option<f64>), KeyError> {
    let roofs = match site.roofs.as_ref().or(list.roofs.as_ref()) {
        Some(text) => Some(text.parse::<RoofModel>().map_err(|e| ("roofs".to_owned(), e))?),
        None => None,
    };
    let tile_km2 = site.tile_km2.or(list.tile_km2);
    if tile_km2.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
        return Err((
            "tile_km2".into(),
            "must be a positive area in km² (the largest grid scanned as one tile)".into(),
        ));
    }
    Ok((roofs, tile_km2))
}

/// `YYYY-MM`, or `last-complete-month`: the month before `today`'s.
fn period_end(text: &str, today: NaiveDate) -> std::result::Result<Month, String> {
    if text == LAST_COMPLETE_MONTH {
        return Ok(Month::of(today).plus(-1));
    }
    text.parse()
        .map_err(|e: String| format!("{e}; write \"YYYY-MM\" or \"{LAST_COMPLETE_MONTH}\""))
}

/// A named source or URL as it is; a path joined to the watch list's folder.
fn resolve_source(source: &str, base: &Path) -> String {
    if NAMED_SOURCES.contains(&source) || source.starts_with("http://") || source.starts_with("https://") {
        source.to_owned()
    } else {
        base.join(source).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 15).unwrap()
    }

    fn parse_str(text: &str) -> Result<WatchList> {
        parse(text, Path::new("lists/w.toml"), today())
    }

    const ISSUE_EXAMPLE: &str = r#"
        source = "earth-search"
        from = "2021-07"
        to = "2023-12"
        out = "out/border"
        [[site]]
        name = "kk_park"
        aoi = "aoi/kk_park.geojson"
        [[site]]
        name = "test_site"
        bbox = [98.5, 16.6, 98.6, 16.7]
        source = "samples/x/catalog.json"
        to = "last-complete-month"
    "#;

    #[test]
    fn the_issue_example_resolves_paths_against_the_list_folder_and_sites_override_defaults() {
        let list = parse_str(ISSUE_EXAMPLE).unwrap();
        assert_eq!(list.out, Path::new("lists/out/border"));
        assert_eq!(list.parallel, 1);
        let [kk, test] = &list.sites[..] else {
            panic!("two sites")
        };
        assert_eq!(kk.area, Area::File("lists/aoi/kk_park.geojson".into()));
        assert_eq!(kk.source, "earth-search");
        assert_eq!(
            (kk.from.to_string(), kk.to.to_string()),
            ("2021-07".into(), "2023-12".into())
        );
        assert_eq!(test.area, Area::Bbox([98.5, 16.6, 98.6, 16.7]));
        assert_eq!(test.source, "lists/samples/x/catalog.json");
        assert_eq!(test.to.to_string(), "2024-02", "last-complete-month before 2024-03-15");
    }

    #[test]
    fn a_source_may_name_the_site() {
        let list = parse_str(
            "source = \"samples/{name}/catalog.json\"\nfrom = \"2021-07\"\nto = \"2022-01\"\nout = \"o\"\n\
             [[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n",
        )
        .unwrap();
        assert_eq!(list.sites[0].source, "lists/samples/a/catalog.json");
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_name_the_file_the_key_and_the_fix() {
        let head = "source = \"earth-search\"\nfrom = \"2021-07\"\nto = \"2022-01\"\nout = \"o\"\n";
        let cases = [
            (
                format!("{head}[[site]]\nname = \"a\"\n"),
                "site[0] (a).aoi",
                "bbox = [W, S, E, N]",
            ),
            (
                format!("{head}[[site]]\nname = \"a b\"\nbbox = [0, 0, 1, 1]\n"),
                "site[0] (a b).name",
                "letters, digits",
            ),
            (
                format!(
                    "{head}[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n"
                ),
                "site[1].name",
                "its own name",
            ),
            (
                format!("{head}[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\nto = \"2020-01\"\n"),
                "site[0] (a).to",
                "before `from`",
            ),
            (
                format!("{head}[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\nfrom = \"July\"\n"),
                ".from",
                "YYYY-MM",
            ),
            (
                format!("{head}[[site]]\nname = \"a\"\nbox = [0, 0, 1, 1]\n"),
                "(syntax)",
                "unknown field `box`",
            ),
            (
                format!("{head}parallel = 0\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n"),
                "parallel",
                "at least 1",
            ),
            (
                format!("{head}[alerts]\nwebhook = \"hooks.example\"\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n"),
                "alerts.webhook",
                "http://",
            ),
            (
                "from = \"2021-07\"\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n".into(),
                "out",
                "missing",
            ),
            (head.into(), "site", "at least one [[site]]"),
            (
                format!("{head}roofs = \"red\"\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n"),
                "site[0] (a).roofs",
                "bright-flat or any-material",
            ),
            (
                format!("{head}[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\ntile_km2 = 0\n"),
                "site[0] (a).tile_km2",
                "positive area",
            ),
            (
                format!("{head}memory_mb = 0\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n"),
                "memory_mb",
                "at least 1",
            ),
        ];
        for (text, key, fix) in cases {
            let e = error_of(&text);
            assert!(e.starts_with("watch list lists/w.toml, "), "{e}");
            assert!(e.contains(key), "{key} not in {e}");
            assert!(e.contains(fix), "{fix} not in {e}");
        }
    }

    #[test]
    fn roofs_haze_and_tile_size_are_global_defaults_a_site_may_override() {
        let list = parse_str(
            "source = \"s\"\nfrom = \"2021-07\"\nto = \"2022-01\"\nout = \"o\"\nroofs = \"any-material\"\n\
             haze_correction = true\ntile_km2 = 100\nmemory_mb = 4000\n[[site]]\nname = \"a\"\nbbox = [0, 0, 1, 1]\n\
             [[site]]\nname = \"b\"\nbbox = [0, 0, 1, 1]\nroofs = \"bright-flat\"\nhaze_correction = false\n\
             tile_km2 = 50\n",
        )
        .unwrap();
        assert_eq!(list.memory_mb, Some(4000));
        let [a, b] = &list.sites[..] else { panic!("two sites") };
        assert_eq!((a.roofs, a.tile_km2), (Some(RoofModel::AnyMaterial), Some(100.0)));
        assert_eq!((b.roofs, b.tile_km2), (Some(RoofModel::BrightFlat), Some(50.0)));
        assert_eq!((a.haze_correction, b.haze_correction), (Some(true), Some(false)));
    }

    #[test]
    fn a_syntax_error_says_its_line() {
        let e = error_of("out = \"o\"\nfrom = 2021-07-\n");
        assert!(e.contains("line 2"), "{e}");
    }
}

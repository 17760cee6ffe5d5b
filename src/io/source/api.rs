//! STAC APIs over HTTP: item search by AOI geometry, months and cloud cover, following `next`
//! links (GET, or POST with a body as Earth Search does), with provider specifics:
//! Planetary Computer hrefs are signed with a SAS token (cached until it expires), Copernicus Data
//! Space assets are JP2 files in SAFE products read through GDAL's `/vsis3/`.
//!
//! The landing page's `conformsTo` decides how the cloud-cover limit is sent: a CQL2 `filter`, the
//! `query` extension, or not at all (a server that ignores what it does not know may answer an
//! unknown filter with nothing). Items are filtered here in every case.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{matches, scene_from_item, Found, SceneSearch, SearchQuery, Skipped};
use crate::error::{Error, Result};
use crate::io::http::Http;

/// Element 84 Earth Search v1.
pub(super) const EARTH_SEARCH: &str = "https://earth-search.aws.element84.com/v1";
/// Microsoft Planetary Computer STAC API.
pub(super) const PLANETARY_COMPUTER: &str = "https://planetarycomputer.microsoft.com/api/stac/v1";
/// Planetary Computer SAS token service.
pub(super) const PLANETARY_COMPUTER_SAS: &str = "https://planetarycomputer.microsoft.com/api/sas/v1";
/// Copernicus Data Space Ecosystem STAC API.
pub(super) const CDSE: &str = "https://stac.dataspace.copernicus.eu/v1";

/// What the API needs beyond plain STAC.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// Hrefs are public (https or s3://) and used as they are.
    Plain,
    /// Hrefs must be signed with a token from `{sas_url}/token/{collection}`.
    PlanetaryComputer {
        /// Base URL of the SAS service.
        sas_url: String,
    },
}

/// How the cloud-cover limit reaches the server, chosen from its conformance classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloudFilter {
    /// A CQL2 `filter` in cql2-json (the filter extension).
    Cql2,
    /// `"query": {"eo:cloud_cover": {"lte": ..}}` (the query extension).
    Query,
    /// Not sent: every item of the area and months comes back and is filtered here.
    ClientSide,
}

impl CloudFilter {
    /// The mode for a server declaring `conforms_to`, or `None` when it declares no item search.
    fn for_classes(conforms_to: &[String]) -> Option<CloudFilter> {
        let stac = |class: &str| conforms_to.iter().any(|c| stac_api_class(c) == Some(class));
        let cql2 = |class: &str| {
            conforms_to
                .iter()
                .any(|c| c.trim_end_matches('/') == format!("http://www.opengis.net/spec/cql2/1.0/conf/{class}"))
        };
        if !stac("item-search") {
            return None;
        }
        // The filter is sent as JSON: a server naming only the text encoding could not read it.
        let reads_cql2_json = cql2("cql2-json") || !cql2("cql2-text");
        let filters = stac("item-search#filter") || cql2("basic-cql2") || cql2("cql2-json");
        Some(if filters && reads_cql2_json {
            CloudFilter::Cql2
        } else if stac("item-search#query") {
            CloudFilter::Query
        } else {
            CloudFilter::ClientSide
        })
    }

    fn describe(self) -> &'static str {
        match self {
            CloudFilter::Cql2 => "cloud cover filtered by the server (CQL2 filter)",
            CloudFilter::Query => "cloud cover filtered by the server (query extension)",
            CloudFilter::ClientSide => "cloud cover filtered here (the server declares no filter or query extension)",
        }
    }
}

/// The part of a STAC API conformance URI after its version, e.g. `item-search#filter` for
/// `https://api.stacspec.org/v1.0.0-rc.2/item-search#filter`; any 1.x version.
fn stac_api_class(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("https://api.stacspec.org/")
        .or_else(|| uri.strip_prefix("http://api.stacspec.org/"))?;
    let (version, class) = rest.split_once('/')?;
    version.starts_with("v1.").then_some(class)
}

/// What to tell someone whose `--source` URL is not a STAC API with item search.
const NOT_AN_API_HINT: &str = "the source must be the landing page of a STAC API with item search \
    (e.g. https://earth-search.aws.element84.com/v1, without /search); a static catalog is read from disk: \
    download it with its items and assets and pass the path of its catalog.json";

/// A STAC API.
#[derive(Debug)]
pub struct StacApi {
    url: String,
    collection: String,
    provider: Provider,
    http: Http,
    page_size: usize,
    token: Mutex<Option<(String, Instant)>>,
    /// Read from the landing page by the first search.
    cloud_filter: OnceLock<CloudFilter>,
    token_margin: Duration,
}

impl StacApi {
    /// A STAC API at `url` (the landing page, without `/search`) searched in `collection`.
    pub fn new(url: &str, collection: &str, provider: Provider, http: Http) -> StacApi {
        StacApi {
            url: url.trim_end_matches('/').to_owned(),
            collection: collection.to_owned(),
            provider,
            http,
            page_size: 100,
            token: Mutex::new(None),
            cloud_filter: OnceLock::new(),
            token_margin: Duration::from_secs(60),
        }
    }

    /// How long before its `msft:expiry` a Planetary Computer token is renewed (default 60 s).
    pub fn with_token_margin(mut self, margin: Duration) -> StacApi {
        self.token_margin = margin;
        self
    }

    /// Items per page asked of the server.
    pub fn with_page_size(mut self, n: usize) -> StacApi {
        self.page_size = n.max(1);
        self
    }

    /// A signed href (Planetary Computer) or the href as it is.
    fn sign(&self, href: &str) -> Result<String> {
        let Provider::PlanetaryComputer { sas_url } = &self.provider else {
            return Ok(href.to_owned());
        };
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = cached
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone());
        let token = match fresh {
            Some(t) => t,
            None => {
                let url = format!("{}/token/{}", sas_url.trim_end_matches('/'), self.collection);
                let doc = self.http.get_json(&url)?;
                let token = doc["token"].as_str().ok_or_else(|| Error::Remote {
                    url: url.clone(),
                    reason: "the token answer has no `token`".into(),
                })?;
                // Renew `token_margin` early; without an expiry, keep the token for 10 minutes.
                let lifetime = doc["msft:expiry"]
                    .as_str()
                    .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                    .map(|e| {
                        let left = e.with_timezone(&chrono::Utc) - chrono::Utc::now();
                        Duration::from_millis(left.num_milliseconds().max(0) as u64)
                    })
                    .unwrap_or(Duration::from_secs(600));
                let until = Instant::now() + lifetime.saturating_sub(self.token_margin);
                *cached = Some((token.to_owned(), until));
                token.to_owned()
            }
        };
        let sep = if href.contains('?') { '&' } else { '?' };
        Ok(format!("{href}{sep}{token}"))
    }

    /// Reads one page of search results (an ItemCollection) answered at `url` to `request` (the POST
    /// body, `None` for a GET): each matching item becomes a scene in `found` or a reason in its
    /// `rejected`, once per id in `ids` (the ids of earlier pages). Returns the next page to ask for.
    /// An error when the page holds no `features` array.
    pub fn read_page(
        &self,
        url: &str,
        request: Option<&Value>,
        doc: &Value,
        q: &SearchQuery,
        ids: &mut HashSet<String>,
        found: &mut Found,
    ) -> Result<Option<(String, Option<Value>)>> {
        let features = doc["features"].as_array().ok_or_else(|| Error::Remote {
            url: url.to_owned(),
            reason: "answered without a `features` array: not a STAC item search".into(),
        })?;
        for feature in features {
            let item: stac::Item = match serde_json::from_value(feature.clone()) {
                Ok(i) => i,
                Err(e) => {
                    let id = feature["id"].as_str().unwrap_or("an item").to_owned();
                    found.rejected.push(Skipped {
                        id,
                        reason: format!("is not a STAC item ({e})"),
                    });
                    continue;
                }
            };
            // Pages from an API asked for one collection hold only it; anything else is ignored.
            if item.collection.as_deref().is_some_and(|c| c != self.collection)
                || !matches(&item, q)
                || !ids.insert(item.id.clone())
            {
                continue;
            }
            found.items.push(feature.clone());
            let mut signing_error = None;
            let scene = scene_from_item(&item, &self.collection, |href| {
                self.sign(href).unwrap_or_else(|e| {
                    signing_error = Some(e.to_string());
                    href.to_owned()
                })
            });
            match (scene, signing_error) {
                (Ok(scene), None) => found.scenes.push(scene),
                (_, Some(reason)) | (Err(reason), None) => found.rejected.push(Skipped {
                    id: item.id.clone(),
                    reason,
                }),
            }
        }
        Ok(next_link(doc, request))
    }
    /// How this server takes the cloud-cover limit, from its landing page's `conformsTo` (or its
    /// `conformance` page), read once.
    fn cloud_filter(&self) -> Result<CloudFilter> {
        if let Some(mode) = self.cloud_filter.get() {
            return Ok(*mode);
        }
        let landing = format!("{}/", self.url);
        let with_hint = |e: Error| match e {
            Error::Remote { url, reason } => Error::Remote {
                url,
                reason: format!("{reason} (reading the landing page of the STAC API; {NOT_AN_API_HINT})"),
            },
            other => other,
        };
        let doc = self.http.get_json(&landing).map_err(with_hint)?;
        let conforms_to = match doc.get("conformsTo") {
            Some(classes) => classes.clone(),
            None => match link_href(&doc, "conformance") {
                Some(href) => self.http.get_json(&href).map_err(with_hint)?["conformsTo"].clone(),
                None => Value::Null,
            },
        };
        let conforms_to: Vec<String> = serde_json::from_value(conforms_to).unwrap_or_default();
        let mode = CloudFilter::for_classes(&conforms_to).ok_or_else(|| {
            let what = match doc["type"].as_str() {
                Some(t @ ("Catalog" | "Collection")) if conforms_to.is_empty() => {
                    format!("is a static STAC {}, not a STAC API", t.to_lowercase())
                }
                _ => format!(
                    "declares no STAC item search among its conformance classes ({})",
                    if conforms_to.is_empty() {
                        "none".to_owned()
                    } else {
                        conforms_to.join(", ")
                    }
                ),
            };
            Error::Remote {
                url: landing.clone(),
                reason: format!("{what}; {NOT_AN_API_HINT}"),
            }
        })?;
        Ok(*self.cloud_filter.get_or_init(|| mode))
    }

    fn first_request(&self, q: &SearchQuery, cloud_filter: CloudFilter) -> Value {
        let mut body = json!({
            "collections": [self.collection],
            "datetime": format!(
                "{}T00:00:00Z/{}T23:59:59Z",
                q.from.first_day(),
                q.to.plus(1).first_day().pred_opt().expect("a month has a last day")
            ),
            "limit": self.page_size,
        });
        match cloud_filter {
            CloudFilter::Cql2 => {
                body["filter-lang"] = json!("cql2-json");
                body["filter"] = json!({"op": "<=", "args": [{"property": "eo:cloud_cover"}, q.max_cloud_cover]});
            }
            CloudFilter::Query => body["query"] = json!({"eo:cloud_cover": {"lte": q.max_cloud_cover}}),
            CloudFilter::ClientSide => {}
        }
        match &q.geometry {
            Some(g) => {
                body["intersects"] = serde_json::to_value(geojson::Geometry::from(g)).expect("geometry serializes")
            }
            None => body["bbox"] = json!(q.bbox),
        }
        body
    }
}

impl SceneSearch for StacApi {
    fn search(&self, q: &SearchQuery) -> Result<Found> {
        let cloud_filter = self.cloud_filter()?;
        let mut found = Found::default();
        let mut next: Option<(String, Option<Value>)> = Some((
            format!("{}/search", self.url),
            Some(self.first_request(q, cloud_filter)),
        ));
        let mut seen = HashSet::new();
        let mut ids = HashSet::new();
        let mut page = 0;
        while let Some((url, body)) = next.take() {
            page += 1;
            let key = format!("{url} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
            if !seen.insert(key) {
                found.rejected.push(Skipped {
                    id: format!("search page {page}"),
                    reason: format!("the `next` link of page {} leads back to a page already read ({url}); stopped there, later items may be missing", page - 1),
                });
                break;
            }
            let doc = match &body {
                Some(b) => self.http.post_json(&url, b),
                None => self.http.get_json(&url),
            };
            let doc = match doc {
                Ok(d) => d,
                Err(e) if page > 1 => {
                    found.rejected.push(Skipped {
                        id: format!("search page {page}"),
                        reason: format!("{e}; stopped there, later items may be missing"),
                    });
                    break;
                }
                Err(e) => return Err(e),
            };
            next = self.read_page(&url, body.as_ref(), &doc, q, &mut ids, &mut found)?;
        }
        found
            .scenes
            .sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
        Ok(found)
    }

    fn describe(&self) -> String {
        match self.cloud_filter.get() {
            Some(mode) => format!(
                "STAC API {} collection {}, {}",
                self.url,
                self.collection,
                mode.describe()
            ),
            None => format!("STAC API {} collection {}", self.url, self.collection),
        }
    }
}

/// The href of the first link with relation `rel`.
fn link_href(doc: &Value, rel: &str) -> Option<String> {
    doc["links"].as_array()?.iter().find(|l| l["rel"] == rel)?["href"]
        .as_str()
        .map(str::to_owned)
}

/// The next page to ask for: a `rel: next` link, with its POST body (merged into the previous one
/// when the link says `merge: true`), or a plain GET.
fn next_link(doc: &Value, previous: Option<&Value>) -> Option<(String, Option<Value>)> {
    let link = doc["links"].as_array()?.iter().find(|l| l["rel"] == "next")?;
    let href = link["href"].as_str()?.to_owned();
    let method = link["method"].as_str().unwrap_or("GET").to_ascii_uppercase();
    if method != "POST" {
        return Some((href, None));
    }
    let mut body = link.get("body").cloned().unwrap_or_else(|| json!({}));
    if link["merge"].as_bool() == Some(true) {
        if let (Some(prev), Some(obj)) = (previous.and_then(Value::as_object), body.as_object()) {
            let mut merged = prev.clone();
            merged.extend(obj.clone());
            body = Value::Object(merged);
        }
    }
    Some((href, Some(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|u| u.to_string()).collect()
    }

    const CORE: &str = "https://api.stacspec.org/v1.0.0/core";
    const ITEM_SEARCH: &str = "https://api.stacspec.org/v1.0.0/item-search";

    #[test]
    fn the_cloud_filter_follows_the_declared_extensions() {
        let mode = |uris: &[&str]| CloudFilter::for_classes(&classes(uris));
        assert_eq!(mode(&[CORE, ITEM_SEARCH]), Some(CloudFilter::ClientSide));
        assert_eq!(
            mode(&[
                CORE,
                ITEM_SEARCH,
                "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter"
            ]),
            Some(CloudFilter::Cql2)
        );
        assert_eq!(
            mode(&[ITEM_SEARCH, "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json"]),
            Some(CloudFilter::Cql2)
        );
        assert_eq!(
            mode(&[ITEM_SEARCH, "https://api.stacspec.org/v1.0.0/item-search#query"]),
            Some(CloudFilter::Query)
        );
        // Both: CQL2 is the standard one.
        assert_eq!(
            mode(&[
                ITEM_SEARCH,
                "https://api.stacspec.org/v1.0.0/item-search#query",
                "https://api.stacspec.org/v1.0.0/item-search#filter"
            ]),
            Some(CloudFilter::Cql2)
        );
        // A filter readable only as CQL2 text cannot take the JSON filter sent here.
        assert_eq!(
            mode(&[
                ITEM_SEARCH,
                "https://api.stacspec.org/v1.0.0/item-search#filter",
                "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
                "https://api.stacspec.org/v1.0.0/item-search#query"
            ]),
            Some(CloudFilter::Query)
        );
    }

    #[test]
    fn no_item_search_no_mode() {
        let mode = |uris: &[&str]| CloudFilter::for_classes(&classes(uris));
        assert_eq!(mode(&[]), None);
        assert_eq!(mode(&[CORE, "https://api.stacspec.org/v1.0.0/collections"]), None);
        // A filter on collections' items without item search is still no item search.
        assert_eq!(
            mode(&[CORE, "https://api.stacspec.org/v1.0.0/ogcapi-features#filter"]),
            None
        );
        assert_eq!(mode(&["https://api.stacspec.org/v0.9.0/item-search"]), None);
    }

    #[test]
    fn earth_search_next_links_post_their_own_body() {
        let doc = json!({"links": [{"rel": "next", "method": "POST", "href": "https://x/v1/search", "merge": false, "body": {"next": "abc"}}]});
        let prev = json!({"collections": ["sentinel-2-l2a"], "limit": 10});
        assert_eq!(
            next_link(&doc, Some(&prev)),
            Some(("https://x/v1/search".into(), Some(json!({"next": "abc"}))))
        );
    }

    #[test]
    fn merged_next_links_keep_the_query() {
        let doc = json!({"links": [{"rel": "next", "method": "POST", "href": "https://x/search", "merge": true, "body": {"token": "t2"}}]});
        let prev = json!({"collections": ["c"], "token": "t1"});
        let (_, body) = next_link(&doc, Some(&prev)).unwrap();
        assert_eq!(body.unwrap(), json!({"collections": ["c"], "token": "t2"}));
    }

    #[test]
    fn get_next_links_and_the_last_page() {
        let doc = json!({"links": [{"rel": "next", "href": "https://x/search?page=2"}]});
        assert_eq!(next_link(&doc, None), Some(("https://x/search?page=2".into(), None)));
        assert_eq!(next_link(&json!({"links": []}), None), None);
    }
}

//! A static STAC catalog on disk: `catalog.json` -> (collections ->) items -> COG assets.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{matches, scene_from_item, Found, Scene, SceneSearch, SearchQuery, Skipped};
use crate::error::{Error, Result};

/// A static STAC catalog on disk: `catalog.json` -> (collections ->) items -> COG assets.
#[derive(Debug, Clone)]
pub struct StaticCatalog {
    root: PathBuf,
}

/// A link of a catalog document that a search follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// An item file.
    Item(PathBuf),
    /// A child catalog or collection.
    Child(PathBuf),
}

impl StaticCatalog {
    /// A catalog rooted at `path` (a `catalog.json` or `collection.json`).
    pub fn new(path: impl Into<PathBuf>) -> StaticCatalog {
        StaticCatalog { root: path.into() }
    }

    fn read_json(path: &Path) -> Result<Value> {
        // A FIFO or a device would block the read forever; a catalog is a file.
        if path.exists() && !path.is_file() {
            return Err(Error::Catalog {
                path: path.display().to_string(),
                reason: "is not a regular file (a folder, FIFO or device); give the catalog.json file".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::Catalog {
            path: path.display().to_string(),
            reason: format!("cannot be read ({e})"),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Catalog {
            path: path.display().to_string(),
            reason: format!("is not JSON ({e})"),
        })
    }

    /// Walks child and item links depth-first, collecting item files; `seen` stops link cycles.
    fn walk(&self, path: &Path, items: &mut Vec<PathBuf>, seen: &mut Vec<PathBuf>) -> Result<()> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if seen.contains(&canonical) {
            return Ok(());
        }
        seen.push(canonical);
        for link in Self::links(&Self::read_json(path)?, path)? {
            match link {
                Linked::Item(file) => items.push(file),
                Linked::Child(child) => self.walk(&child, items, seen)?,
            }
        }
        Ok(())
    }

    /// The item files and child catalogs a catalog document at `path` links to, in its order,
    /// resolved against its directory.
    pub fn links(doc: &Value, path: &Path) -> Result<Vec<Linked>> {
        let base = path.parent().unwrap_or(Path::new("."));
        let links: Vec<stac::Link> = doc
            .get("links")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::Catalog {
                path: path.display().to_string(),
                reason: format!("bad links ({e})"),
            })?
            .unwrap_or_default();
        Ok(links
            .into_iter()
            .filter_map(|link| {
                let target = base.join(&link.href);
                if link.is_item() {
                    Some(Linked::Item(target))
                } else if link.is_child() {
                    Some(Linked::Child(target))
                } else {
                    None
                }
            })
            .collect())
    }

    /// What the item document read from `file` gives a search for `query`: `None` when it falls
    /// outside the query, else its scene (hrefs resolved against `file`'s directory, `collection`
    /// when it names none) or why it cannot be one. An error when it is not a STAC item at all.
    pub fn read_item(
        doc: Value,
        file: &Path,
        collection: &str,
        query: &SearchQuery,
    ) -> Result<Option<std::result::Result<Scene, Skipped>>> {
        let item: stac::Item = serde_json::from_value(doc).map_err(|e| Error::Catalog {
            path: file.display().to_string(),
            reason: format!("is not a STAC item ({e})"),
        })?;
        if !matches(&item, query) {
            return Ok(None);
        }
        let base = file.parent().unwrap_or(Path::new("."));
        Ok(Some(
            scene_from_item(&item, collection, |href| resolve(base, href)).map_err(|reason| Skipped {
                id: item.id.clone(),
                reason,
            }),
        ))
    }
}

impl SceneSearch for StaticCatalog {
    fn search(&self, query: &SearchQuery) -> Result<Found> {
        let mut files = Vec::new();
        self.walk(&self.root, &mut files, &mut Vec::new())?;
        let collection_default = Self::read_json(&self.root)?
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("catalog")
            .to_owned();
        let mut found = Found::default();
        for file in files {
            let doc = Self::read_json(&file)?;
            let read = Self::read_item(doc.clone(), &file, &collection_default, query)?;
            if read.is_some() {
                found.items.push(with_self_link(doc, &file));
            }
            match read {
                Some(Ok(scene)) => found.scenes.push(scene),
                Some(Err(skipped)) => found.rejected.push(skipped),
                None => {}
            }
        }
        found
            .scenes
            .sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
        Ok(found)
    }

    fn describe(&self) -> String {
        format!("static STAC catalog {}", self.root.display())
    }
}

/// The item document with a `self` link naming the file it was read from, when it has none (items
/// of static catalogs seldom do), so that the record of a scan's items says where each came from.
fn with_self_link(mut doc: Value, file: &Path) -> Value {
    let has_self = doc["links"]
        .as_array()
        .is_some_and(|links| links.iter().any(|l| l["rel"] == "self"));
    if !has_self {
        let href = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        let link =
            serde_json::json!({"rel": "self", "href": href.display().to_string(), "type": "application/geo+json"});
        match doc["links"].as_array_mut() {
            Some(links) => links.push(link),
            None => doc["links"] = Value::Array(vec![link]),
        }
    }
    doc
}

/// A relative href resolved against the item's directory; URLs and absolute paths stay as they are.
fn resolve(base: &Path, href: &str) -> String {
    if href.contains("://") || Path::new(href).is_absolute() {
        href.to_owned()
    } else {
        base.join(href).display().to_string()
    }
}

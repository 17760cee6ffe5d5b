//! A static STAC catalog on disk: `catalog.json` -> (collections ->) items -> COG assets.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{matches, scene_from_item, Found, SceneSearch, SearchQuery, Skipped};
use crate::error::{Error, Result};

/// A static STAC catalog on disk: `catalog.json` -> (collections ->) items -> COG assets.
#[derive(Debug, Clone)]
pub struct StaticCatalog {
    root: PathBuf,
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
        let doc = Self::read_json(path)?;
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
        for link in links {
            let target = base.join(&link.href);
            if link.is_item() {
                items.push(target);
            } else if link.is_child() {
                self.walk(&target, items, seen)?;
            }
        }
        Ok(())
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
            let item: stac::Item = serde_json::from_value(doc).map_err(|e| Error::Catalog {
                path: file.display().to_string(),
                reason: format!("is not a STAC item ({e})"),
            })?;
            if !matches(&item, query) {
                continue;
            }
            let base = file.parent().unwrap_or(Path::new("."));
            match scene_from_item(&item, &collection_default, |href| resolve(base, href)) {
                Ok(scene) => found.scenes.push(scene),
                Err(reason) => found.rejected.push(Skipped {
                    id: item.id.clone(),
                    reason,
                }),
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

/// A relative href resolved against the item's directory; URLs and absolute paths stay as they are.
fn resolve(base: &Path, href: &str) -> String {
    if href.contains("://") || Path::new(href).is_absolute() {
        href.to_owned()
    } else {
        base.join(href).display().to_string()
    }
}

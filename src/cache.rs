//! The window cache: each scene band, once warped onto an analysis grid, is kept on disk so that no
//! later scan of the same grid reads that scene again.
//!
//! Entries are keyed by collection, item id, grid and band, written as deflate-compressed 16-bit
//! TIFF strips by the pure-Rust `tiff` crate (GDAL is for foreign rasters; these are our own), and
//! published atomically: a temp file in the same directory, then a rename, so a scan killed at any
//! moment never leaves a half entry that a later scan would trust.

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::ops::Range;
use std::path::{Path, PathBuf};

use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{colortype, compression::DeflateLevel, Compression, TiffEncoder};

use crate::atomic;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::source::{Band, Scene};

/// Rows per TIFF strip: small enough that a block of rows reads little more than it needs.
const ROWS_PER_STRIP: u32 = 16;

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Turns an id from a server into one safe path component: no separators, no `..`, no surprises.
fn component(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        "_".to_owned()
    } else {
        clean.to_owned()
    }
}

impl Cache {
    /// A cache rooted at `root` (created when first written).
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a scene band on a grid is (or would be) cached. Always inside the root.
    pub fn entry(&self, scene: &Scene, band: Band, grid: &Grid) -> PathBuf {
        self.root
            .join(component(&scene.collection))
            .join(component(&scene.id))
            .join(component(&grid.key()))
            .join(format!("{}.tif", band.asset_key()))
    }

    /// Stores a window atomically.
    pub fn store(&self, path: &Path, grid: &Grid, data: &[u16]) -> Result<()> {
        if data.len() != grid.len() {
            return Err(Error::Cache {
                path: path.to_path_buf(),
                reason: format!("window has {} pixels, the grid {}", data.len(), grid.len()),
            });
        }
        let encode = |e: tiff::TiffError| Error::Cache {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut bytes = Vec::new();
        {
            let mut encoder = TiffEncoder::new(Cursor::new(&mut bytes))
                .map_err(encode)?
                .with_compression(Compression::Deflate(DeflateLevel::Fast));
            let mut image = encoder
                .new_image::<colortype::Gray16>(grid.width as u32, grid.height as u32)
                .map_err(encode)?;
            image.rows_per_strip(ROWS_PER_STRIP).map_err(encode)?;
            image.write_data(data).map_err(encode)?;
        }
        atomic::write(path, &bytes)?;
        Ok(())
    }

    /// Files and bytes in the cache.
    pub fn usage(&self) -> Result<Usage> {
        let mut usage = Usage::default();
        walk(&self.root, &mut |path, meta| {
            usage.files += 1;
            usage.bytes += meta.len();
            if path.extension().is_some_and(|e| e == "tif") {
                usage.windows += 1;
            }
        })?;
        Ok(usage)
    }

    /// Deletes entries not modified for `older_than` (all with zero), and any leftover temp files
    /// of interrupted writes; returns what was removed. Empty directories are removed too.
    pub fn prune(&self, older_than: std::time::Duration) -> Result<Usage> {
        let now = std::time::SystemTime::now();
        let mut removed = Usage::default();
        let mut victims = Vec::new();
        walk(&self.root, &mut |path, meta| {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            let temp = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"));
            if temp || age >= older_than {
                victims.push((path.to_path_buf(), meta.len()));
            }
        })?;
        for (path, len) in victims {
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
            removed.files += 1;
            removed.bytes += len;
            if path.extension().is_some_and(|e| e == "tif") {
                removed.windows += 1;
            }
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != self.root) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(removed)
    }

    /// Reads rows `rows` of a cached window (row-major, `grid.width` values a row).
    pub fn read_rows(path: &Path, grid: &Grid, rows: Range<usize>) -> Result<Vec<u16>> {
        let bad = |reason: String| Error::Cache {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(Error::io(path))?;
        let mut decoder = Decoder::new(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        let (w, h) = decoder.dimensions().map_err(|e| bad(e.to_string()))?;
        if (w as usize, h as usize) != (grid.width, grid.height) {
            return Err(bad(format!(
                "is {w}x{h}, the grid {}x{}; delete it to refetch",
                grid.width, grid.height
            )));
        }
        let strip_rows = decoder.chunk_dimensions().1 as usize;
        let mut out = Vec::with_capacity(rows.len() * grid.width);
        let first = rows.start / strip_rows;
        let last = rows.end.div_ceil(strip_rows);
        for strip in first..last {
            let chunk = match decoder.read_chunk(strip as u32).map_err(|e| bad(e.to_string()))? {
                DecodingResult::U16(v) => v,
                _ => return Err(bad("is not a 16-bit image".into())),
            };
            let strip_start = strip * strip_rows;
            let lo = rows.start.max(strip_start) - strip_start;
            let hi = rows.end.min(strip_start + strip_rows) - strip_start;
            out.extend_from_slice(&chunk[lo * grid.width..hi * grid.width]);
        }
        Ok(out)
    }
}

/// How much a cache holds (or a prune removed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Files.
    pub files: u64,
    /// Of those, cached windows.
    pub windows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(Error::io(&path))?;
        if meta.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path, &meta);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(width: usize, height: usize) -> Grid {
        Grid {
            epsg: 32647,
            x0: 0.0,
            y0: 0.0,
            width,
            height,
            res: 10.0,
        }
    }

    #[test]
    fn rows_read_back_exactly_across_strip_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let g = grid(7, 40);
        let data: Vec<u16> = (0..g.len() as u16).collect();
        let path = dir.path().join("a/b.tif");
        Cache::new(dir.path()).store(&path, &g, &data).unwrap();
        assert_eq!(Cache::read_rows(&path, &g, 0..40).unwrap(), data);
        assert_eq!(Cache::read_rows(&path, &g, 15..33).unwrap(), data[15 * 7..33 * 7]);
    }

    #[test]
    fn prune_removes_old_entries_and_temp_files_and_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = grid(4, 4);
        cache.store(&dir.path().join("c/item/g/red.tif"), &g, &[1; 16]).unwrap();
        std::fs::write(dir.path().join("c/item/g/.tmpXYZ"), b"half").unwrap();
        assert_eq!(cache.usage().unwrap().windows, 1);
        let removed = cache.prune(std::time::Duration::from_secs(3600)).unwrap();
        assert_eq!((removed.files, removed.windows), (1, 0));
        let removed = cache.prune(std::time::Duration::ZERO).unwrap();
        assert_eq!(removed.windows, 1);
        assert_eq!(cache.usage().unwrap(), Usage::default());
    }

    #[test]
    fn ids_from_a_server_never_escape_the_cache() {
        assert_eq!(component("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(component(".."), "_");
        assert_eq!(component("S2A_47QNU_20220301_0_L2A"), "S2A_47QNU_20220301_0_L2A");
    }
}

//! The window cache: each scene band, once warped onto an analysis grid, is kept on disk so that no
//! later scan of the same grid reads that scene again.
//!
//! Entries are keyed by what was read: the asset's href (without its query string, which on
//! Planetary Computer is a signature that changes with every token), the item's acquisition time,
//! the band and the grid. The key's hash names the file, so two scenes never share an entry however
//! their ids are spelled, and a catalog whose hrefs point elsewhere never reuses another source's
//! windows. Each entry is an uncompressed 16-bit TIFF of one strip written by the pure-Rust `tiff`
//! crate (GDAL and QGIS open it; GDAL is for foreign rasters, these are our own), followed by a
//! trailer holding the full key, a CRC-32 of the TIFF bytes and where the pixels start: rows are
//! read with one positioned read and no decoding, at the speed of the page cache (a scan reads
//! each window several times: the offset decision, the blocks and the quicklooks). Uncompressed
//! entries take about twice the disk of the deflate ones the cache held before; entries of that
//! older format are converted in place the first time a scan finds them, without a refetch. An
//! entry copied from another scene, truncated or damaged on disk fails [`Cache::holds`], is
//! deleted and is read again from the source. Entries are published
//! atomically (a temp file in the same directory, then a rename), so a scan killed at any moment
//! never leaves a half entry. Scans hold a shared lock on the cache and `prune` an exclusive one, so
//! a prune never deletes what a running scan is writing or about to read.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{colortype, Compression, TiffEncoder};
use tiff::tags::Tag;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::atomic;
use crate::io::source::{Band, Scene};

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
        let key = EntryKey::of(scene, band, grid);
        self.root
            .join(component(&scene.collection))
            .join(component(&scene.id))
            .join(component(&grid.key()))
            .join(format!("{}-{}.tif", band.asset_key(), &key.hash()[..16]))
    }

    /// Takes the cache for a scan: a shared lock (many scans at once, no prune meanwhile), released
    /// when the guard is dropped. Fails, naming the folder, when the cache cannot be created.
    pub fn share(&self) -> Result<CacheLock> {
        self.lock(false).map(|l| l.expect("a shared lock is waited for"))
    }

    fn lock(&self, exclusive: bool) -> Result<Option<CacheLock>> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::Cache {
            path: self.root.clone(),
            reason: format!("cannot be created as a folder ({e}); pass --cache with a writable folder"),
        })?;
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        if !exclusive {
            file.lock_shared().map_err(Error::io(&path))?;
            return Ok(Some(CacheLock { _file: file }));
        }
        match file.try_lock() {
            Ok(()) => Ok(Some(CacheLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(&path)(e)),
        }
    }

    /// Whether `path` holds a sound entry for this scene band and grid: its trailer names the same
    /// key and its bytes match their checksum. An entry that exists but fails (corrupt, truncated,
    /// another scene's) is deleted, so that the scan reads the window again.
    pub fn holds(&self, path: &Path, scene: &Scene, band: Band, grid: &Grid) -> bool {
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        let key = EntryKey::of(scene, band, grid);
        let sound = match split_trailer(&bytes) {
            Some((tiff, trailer)) => trailer.key == key && crc32fast::hash(tiff) == trailer.crc32,
            // An entry of the older deflate format is converted rather than read again.
            None => legacy_pixels(&bytes, &key).is_some_and(|data| self.store(path, scene, band, grid, &data).is_ok()),
        };
        if !sound {
            let _ = std::fs::remove_file(path);
        }
        sound
    }

    /// Stores a window atomically, with its key and checksum.
    pub fn store(&self, path: &Path, scene: &Scene, band: Band, grid: &Grid, data: &[u16]) -> Result<()> {
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
                .with_compression(Compression::Uncompressed);
            let mut image = encoder
                .new_image::<colortype::Gray16>(grid.width as u32, grid.height as u32)
                .map_err(encode)?;
            image.rows_per_strip(grid.height as u32).map_err(encode)?;
            image.write_data(data).map_err(encode)?;
        }
        let data_offset = strip_offset(&bytes).map_err(encode)?;
        let trailer = Trailer {
            key: EntryKey::of(scene, band, grid),
            crc32: crc32fast::hash(&bytes),
            tiff_len: bytes.len() as u64,
            data_offset,
        };
        let json = serde_json::to_vec(&trailer).expect("a trailer serializes");
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data_offset.to_le_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        atomic::write(path, &bytes).map_err(|e| Error::Cache {
            path: path.to_path_buf(),
            reason: format!("cannot be written ({e}); free disk space or pass --cache with another folder"),
        })
    }

    /// Files and bytes in the cache.
    pub fn usage(&self) -> Result<Usage> {
        let mut usage = Usage::default();
        walk(&self.root, &mut |path, meta| {
            if path.file_name().is_some_and(|n| n == ".lock") {
                return;
            }
            usage.files += 1;
            usage.bytes += meta.len();
            if path.extension().is_some_and(|e| e == "tif") {
                usage.windows += 1;
            }
        })?;
        Ok(usage)
    }

    /// Deletes entries not modified for `older_than` (all with zero), and any leftover temp files
    /// of interrupted writes; returns what was removed. Empty directories are removed too. Refused
    /// while a scan uses the cache.
    pub fn prune(&self, older_than: std::time::Duration) -> Result<Usage> {
        if !self.root.exists() {
            return Ok(Usage::default());
        }
        let Some(_lock) = self.lock(true)? else {
            return Err(Error::Cache {
                path: self.root.clone(),
                reason: "is in use by a running scan; prune it when no scan runs".into(),
            });
        };
        let now = std::time::SystemTime::now();
        let mut removed = Usage::default();
        let mut victims = Vec::new();
        walk(&self.root, &mut |path, meta| {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == ".lock" {
                return;
            }
            if name.starts_with(".tmp") || age >= older_than {
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

    /// Reads rows `rows` of a cached window (row-major, `grid.width` values a row): one positioned
    /// read of the entry's pixels, no decoding. The entry's soundness is [`Cache::holds`]'s check.
    pub fn read_rows(path: &Path, grid: &Grid, rows: Range<usize>) -> Result<Vec<u16>> {
        let bad = |reason: String| Error::Cache {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        let mut tail = [0u8; TAIL];
        if len < TAIL as u64 {
            return Err(bad("is truncated; delete it to refetch".into()));
        }
        file.seek(SeekFrom::End(-(TAIL as i64)))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(Error::io(path))?;
        if &tail[12..] != TRAILER_MAGIC {
            return Err(bad(
                "is not a compound-watch cache entry of this version; delete it to refetch".into(),
            ));
        }
        let data_offset = u64::from_le_bytes(tail[4..12].try_into().expect("8 bytes"));
        let row_bytes = (grid.width * 2) as u64;
        if rows.end > grid.height || data_offset + grid.height as u64 * row_bytes > len {
            return Err(bad(format!(
                "holds fewer rows than the grid's {} x {}; delete it to refetch",
                grid.width, grid.height
            )));
        }
        let mut values = vec![0u16; rows.len() * grid.width];
        file.seek(SeekFrom::Start(data_offset + rows.start as u64 * row_bytes))
            .and_then(|_| file.read_exact(bytemuck::cast_slice_mut(&mut values)))
            .map_err(Error::io(path))?;
        // The pixels are little-endian, as written; nothing to do on the machines that wrote them.
        if cfg!(target_endian = "big") {
            values.iter_mut().for_each(|v| *v = u16::from_le(*v));
        }
        Ok(values)
    }
}

/// A lock on the cache, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// What a cache entry holds: the identity of the read that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EntryKey {
    href: String,
    datetime: String,
    band: String,
    grid: String,
}

impl EntryKey {
    fn of(scene: &Scene, band: Band, grid: &Grid) -> EntryKey {
        let href = scene.hrefs.get(&band).map(String::as_str).unwrap_or_default();
        EntryKey {
            href: href.split('?').next().unwrap_or_default().to_owned(),
            datetime: scene.datetime.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            band: band.asset_key().to_owned(),
            grid: grid.key(),
        }
    }

    fn hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.href, &self.datetime, &self.band, &self.grid] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Written after the TIFF bytes of an entry (TIFF readers ignore what follows the image), then
/// its length (u32), where the pixels start (u64, little-endian like the TIFF) and the magic.
#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    key: EntryKey,
    crc32: u32,
    tiff_len: u64,
    data_offset: u64,
}

const TRAILER_MAGIC: &[u8; 4] = b"CWC2";
/// Bytes after the trailer's JSON: its length, the pixels' offset and the magic.
const TAIL: usize = 16;

/// The TIFF bytes and the trailer of an entry, or None when it has no sound trailer.
fn split_trailer(bytes: &[u8]) -> Option<(&[u8], Trailer)> {
    let n = bytes.len();
    if n < TAIL || &bytes[n - 4..] != TRAILER_MAGIC {
        return None;
    }
    let json_len = u32::from_le_bytes(bytes[n - TAIL..n - 12].try_into().ok()?) as usize;
    let data_offset = u64::from_le_bytes(bytes[n - 12..n - 4].try_into().ok()?);
    let json_start = (n - TAIL).checked_sub(json_len)?;
    let trailer: Trailer = serde_json::from_slice(&bytes[json_start..n - TAIL]).ok()?;
    (trailer.tiff_len == json_start as u64 && trailer.data_offset == data_offset)
        .then_some((&bytes[..json_start], trailer))
}

/// Where the one strip of an uncompressed little-endian TIFF starts.
fn strip_offset(tiff: &[u8]) -> tiff::TiffResult<u64> {
    if !tiff.starts_with(b"II") {
        return Err(tiff::TiffError::FormatError(
            tiff::TiffFormatError::TiffSignatureInvalid,
        ));
    }
    Decoder::new(Cursor::new(tiff))?.get_tag_unsigned(Tag::StripOffsets)
}

/// The pixels of an entry of the first format (a deflate TIFF of strips, then its key's JSON, its
/// length and `CWC1`), when it is sound and holds `key`.
fn legacy_pixels(bytes: &[u8], key: &EntryKey) -> Option<Vec<u16>> {
    #[derive(Deserialize)]
    struct Legacy {
        key: EntryKey,
        crc32: u32,
        tiff_len: u64,
    }
    let n = bytes.len();
    if n < 8 || &bytes[n - 4..] != b"CWC1" {
        return None;
    }
    let json_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().ok()?) as usize;
    let json_start = (n - 8).checked_sub(json_len)?;
    let trailer: Legacy = serde_json::from_slice(&bytes[json_start..n - 8]).ok()?;
    let tiff = &bytes[..json_start];
    if trailer.tiff_len != json_start as u64 || crc32fast::hash(tiff) != trailer.crc32 || &trailer.key != key {
        return None;
    }
    match Decoder::new(Cursor::new(tiff)).ok()?.read_image().ok()? {
        DecodingResult::U16(v) => Some(v),
        _ => None,
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

    fn scene(id: &str, href: &str, date: &str) -> Scene {
        Scene {
            epsg: Some(32647),
            hrefs: [(Band::Red, href.to_owned())].into_iter().collect(),
            ..Scene::for_tests(id, date)
        }
    }

    #[test]
    fn rows_read_back_exactly_across_strip_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = Grid::for_tests(7, 40);
        let s = scene("S2A_X", "https://x/red.tif", "2022-03-01");
        let data: Vec<u16> = (0..g.len() as u16).collect();
        let path = cache.entry(&s, Band::Red, &g);
        cache.store(&path, &s, Band::Red, &g, &data).unwrap();
        assert!(cache.holds(&path, &s, Band::Red, &g));
        assert_eq!(Cache::read_rows(&path, &g, 0..40).unwrap(), data);
        assert_eq!(Cache::read_rows(&path, &g, 15..33).unwrap(), data[15 * 7..33 * 7]);
    }

    #[test]
    fn entries_are_keyed_by_what_was_read_not_by_cleaned_ids() {
        let cache = Cache::new("/c");
        let g = Grid::for_tests(4, 4);
        let slash = scene("S2A/X", "https://x/a/red.tif", "2022-03-01");
        let underscore = scene("S2A_X", "https://x/b/red.tif", "2022-03-01");
        let later = scene("S2A_X", "https://x/b/red.tif", "2022-03-06");
        let signed_again = scene("S2A_X", "https://x/b/red.tif?sig=new", "2022-03-01");
        let e = |s: &Scene| cache.entry(s, Band::Red, &g);
        assert_ne!(e(&slash), e(&underscore));
        assert_ne!(e(&underscore), e(&later), "one id on two dates");
        assert_eq!(e(&underscore), e(&signed_again), "a new signature is the same file");
    }

    #[test]
    fn an_entry_copied_from_another_scene_or_damaged_is_dropped_for_a_refetch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = Grid::for_tests(4, 4);
        let (a, b) = (
            scene("A", "https://x/a/red.tif", "2022-03-01"),
            scene("B", "https://x/b/red.tif", "2022-03-01"),
        );
        let (pa, pb) = (cache.entry(&a, Band::Red, &g), cache.entry(&b, Band::Red, &g));
        cache.store(&pa, &a, Band::Red, &g, &[7; 16]).unwrap();
        std::fs::create_dir_all(pb.parent().unwrap()).unwrap();
        std::fs::copy(&pa, &pb).unwrap();
        assert!(!cache.holds(&pb, &b, Band::Red, &g), "another scene's window");
        assert!(!pb.exists(), "dropped");
        let mut bytes = std::fs::read(&pa).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&pa, &bytes).unwrap();
        assert!(!cache.holds(&pa, &a, Band::Red, &g), "one flipped bit");
        assert!(!pa.exists());
    }

    #[test]
    fn an_entry_of_the_older_deflate_format_is_converted_without_a_refetch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = Grid::for_tests(7, 40);
        let s = scene("S2A_X", "https://x/red.tif", "2022-03-01");
        let data: Vec<u16> = (0..g.len() as u16).map(|v| v * 3).collect();
        // The first format: a deflate TIFF of 16-row strips, its key as JSON, the length, CWC1.
        let mut bytes = Vec::new();
        {
            let mut encoder = TiffEncoder::new(Cursor::new(&mut bytes))
                .unwrap()
                .with_compression(Compression::Deflate(tiff::encoder::compression::DeflateLevel::Fast));
            let mut image = encoder.new_image::<colortype::Gray16>(7, 40).unwrap();
            image.rows_per_strip(16).unwrap();
            image.write_data(&data).unwrap();
        }
        let key = EntryKey::of(&s, Band::Red, &g);
        let json = serde_json::json!({"key": key, "crc32": crc32fast::hash(&bytes), "tiff_len": bytes.len()});
        let json = serde_json::to_vec(&json).unwrap();
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"CWC1");
        let path = cache.entry(&s, Band::Red, &g);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            Cache::read_rows(&path, &g, 0..1).is_err(),
            "not readable before conversion"
        );
        assert!(cache.holds(&path, &s, Band::Red, &g));
        assert_eq!(Cache::read_rows(&path, &g, 3..40).unwrap(), data[3 * 7..]);
        let other = scene("S2A_Y", "https://x/other.tif", "2022-03-01");
        std::fs::write(&path, &bytes).unwrap();
        assert!(!cache.holds(&path, &other, Band::Red, &g), "another scene's old entry");
    }

    #[test]
    fn entries_open_as_plain_tiffs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = Grid::for_tests(5, 9);
        let s = scene("S2A_X", "https://x/red.tif", "2022-03-01");
        let data: Vec<u16> = (0..g.len() as u16).collect();
        let path = cache.entry(&s, Band::Red, &g);
        cache.store(&path, &s, Band::Red, &g, &data).unwrap();
        let mut decoder = Decoder::new(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(decoder.dimensions().unwrap(), (5, 9));
        assert!(matches!(decoder.read_image().unwrap(), DecodingResult::U16(v) if v == data));
    }

    #[test]
    fn prune_removes_old_entries_and_temp_files_and_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let g = Grid::for_tests(4, 4);
        let s = scene("A", "https://x/a/red.tif", "2022-03-01");
        let path = cache.entry(&s, Band::Red, &g);
        cache.store(&path, &s, Band::Red, &g, &[1; 16]).unwrap();
        std::fs::write(path.with_file_name(".tmpXYZ"), b"half").unwrap();
        assert_eq!(cache.usage().unwrap().windows, 1);
        let removed = cache.prune(std::time::Duration::from_secs(3600)).unwrap();
        assert_eq!((removed.files, removed.windows), (1, 0));
        let removed = cache.prune(std::time::Duration::ZERO).unwrap();
        assert_eq!(removed.windows, 1);
        assert_eq!(cache.usage().unwrap(), Usage::default());
    }

    #[test]
    fn prune_is_refused_while_a_scan_uses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let scan = cache.share().unwrap();
        let err = cache.prune(std::time::Duration::ZERO).unwrap_err().to_string();
        assert!(err.contains("in use by a running scan"), "{err}");
        drop(scan);
        assert!(cache.prune(std::time::Duration::ZERO).is_ok());
    }

    #[test]
    fn ids_from_a_server_never_escape_the_cache() {
        assert_eq!(component("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(component(".."), "_");
        assert_eq!(component("S2A_47QNU_20220301_0_L2A"), "S2A_47QNU_20220301_0_L2A");
    }
}

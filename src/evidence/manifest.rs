//! The bundle's manifest, `MANIFEST.sha256`: one line per file, `<sha256 hex>  <relative path>`, the
//! format `sha256sum -c` reads, so that anyone can check a bundle without this tool.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The manifest's file name, at the root of the bundle.
pub const FILE: &str = "MANIFEST.sha256";

/// The SHA-256 of a file, lowercase hex, read in chunks (windows can be large).
pub(crate) fn sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every file under `root`, as paths relative to it with `/` separators, sorted; the manifest
/// itself left out.
pub(crate) fn files(root: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let path = entry.map_err(Error::io(dir))?.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else {
                let rel = path.strip_prefix(root).expect("walked from root");
                let rel: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
                out.push(rel.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.retain(|f| f != FILE);
    out.sort();
    Ok(out)
}

/// Writes the manifest of every file under `root`; returns how many it lists.
pub(crate) fn write(root: &Path) -> Result<usize> {
    let mut text = String::new();
    let files = files(root)?;
    for rel in &files {
        text.push_str(&format!("{}  {rel}\n", sha256(&root.join(rel))?));
    }
    crate::io::atomic::write(&root.join(FILE), text.as_bytes())?;
    Ok(files.len())
}

/// A file whose bytes are not those the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its checksum differs from the manifest's.
    Changed {
        /// Path relative to the bundle.
        file: String,
        /// The manifest's checksum.
        expected: String,
        /// The file's checksum now.
        actual: String,
    },
    /// Listed in the manifest, absent from the bundle.
    Missing {
        /// Path relative to the bundle.
        file: String,
    },
    /// In the bundle, not in the manifest.
    Unlisted {
        /// Path relative to the bundle.
        file: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Changed { file, expected, actual } => write!(
                f,
                "{file}: checksum differs from the manifest (sha256 {actual}, the manifest says {expected}): the file was changed after the bundle was written"
            ),
            Problem::Missing { file } => write!(f, "{file}: listed in the manifest but absent from the bundle"),
            Problem::Unlisted { file } => {
                write!(f, "{file}: in the bundle but not in the manifest: it was added after the bundle was written")
            }
        }
    }
}

/// Checks every file of the bundle at `root` against its manifest: what differs, in manifest
/// order (empty when every file is as listed). An error when the manifest itself cannot be read.
pub(crate) fn check(root: &Path) -> Result<Vec<Problem>> {
    let path = root.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Evidence {
        path: path.clone(),
        reason: format!("cannot be read ({e}); give the folder `compound-watch evidence` wrote"),
    })?;
    let mut listed = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let (hex, file) = line.split_once("  ").ok_or_else(|| Error::Evidence {
            path: path.clone(),
            reason: format!("line {} is not `<sha256>  <path>`", i + 1),
        })?;
        let safe = !file.starts_with('/') && !file.split('/').any(|c| c == ".." || c.is_empty());
        if hex.len() != 64 || !safe {
            return Err(Error::Evidence {
                path: path.clone(),
                reason: format!("line {} is not `<sha256>  <relative path>` inside the bundle", i + 1),
            });
        }
        listed.insert(file.to_owned(), hex.to_ascii_lowercase());
    }
    let mut problems = Vec::new();
    for (file, expected) in &listed {
        let p: PathBuf = root.join(file);
        if !p.is_file() {
            problems.push(Problem::Missing { file: file.clone() });
            continue;
        }
        let actual = sha256(&p)?;
        if &actual != expected {
            problems.push(Problem::Changed {
                file: file.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    for file in files(root)? {
        if !listed.contains_key(&file) {
            problems.push(Problem::Unlisted { file });
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_an_absent_file_and_an_added_one_are_each_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("inputs/a")).unwrap();
        std::fs::write(root.join("inputs/a/w.tif"), b"window").unwrap();
        std::fs::write(root.join("report.geojson"), b"{}").unwrap();
        std::fs::write(root.join("gone"), b"x").unwrap();
        assert_eq!(write(root).unwrap(), 3);
        let text = std::fs::read_to_string(root.join(FILE)).unwrap();
        // The sha256sum format: hex, two spaces, the relative path.
        assert!(
            text.contains("  inputs/a/w.tif\n") && text.lines().all(|l| l.len() > 66),
            "{text}"
        );
        assert_eq!(check(root).unwrap(), []);
        std::fs::write(root.join("inputs/a/w.tif"), b"windoW").unwrap();
        std::fs::remove_file(root.join("gone")).unwrap();
        std::fs::write(root.join("extra"), b"x").unwrap();
        let problems = check(root).unwrap();
        let names: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{names:?}");
        assert!(names[0].starts_with("gone: listed"), "{names:?}");
        assert!(names[1].starts_with("inputs/a/w.tif: checksum differs"), "{names:?}");
        assert!(names[2].starts_with("extra: in the bundle but not"), "{names:?}");
    }

    #[test]
    fn the_sha256_of_a_known_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc"), b"abc").unwrap();
        assert_eq!(
            sha256(&dir.path().join("abc")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

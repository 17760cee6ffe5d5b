//! Atomic output: every file the tool writes appears whole or not at all.
//!
//! Content goes to a temp file in the destination's directory, is flushed to disk, then renamed
//! over the destination. A scan killed half-way leaves the previous report intact.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically, creating the directory if needed.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut tmp = builder().tempfile_in(dir).map_err(Error::io(dir))?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::io(path)(e.error))?;
    Ok(())
}

/// Writes `value` as pretty-printed JSON with a final newline, atomically. The one JSON writer.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// A fresh temp path beside `path` for writers that insist on creating the file themselves (GDAL);
/// publish it with [`publish`].
pub(crate) fn temp_path_beside(path: &Path) -> Result<tempfile::TempPath> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let tmp = builder()
        .prefix(".tmp-")
        .suffix(&format!(
            "-{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ))
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    Ok(tmp.into_temp_path())
}

/// Renames a finished temp file over `path`.
pub(crate) fn publish(tmp: tempfile::TempPath, path: &Path) -> Result<()> {
    tmp.persist(path).map_err(|e| Error::io(path)(e.error))
}

/// Temp files as readable as any file this process creates: mode 0666 less the umask, like
/// `File::create` (tempfile's default 0600 would hide the outputs from a web server or a group).
fn builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    b
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_old_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.geojson");
        super::write(&path, b"old").unwrap();
        super::write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn outputs_follow_the_umask_not_a_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.geojson");
        super::write(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // Whatever the umask, the group or others can read unless it forbids it: never 0600 by
        // itself. The usual umask 022 gives 0644.
        let reference = {
            let p = dir.path().join("plain");
            std::fs::write(&p, b"x").unwrap();
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, reference, "{mode:o} vs File::create's {reference:o}");
    }
}

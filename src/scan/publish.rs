//! Publishing a scan's outputs as one set: a reader of `--out` sees the previous set or the new one,
//! and a scan killed at any moment never leaves a mix behind for long.
//!
//! Every output is first written into a staging folder inside `--out`
//! (`.compound-watch/staging/`, same file system, so a rename is atomic), each file synced. Then a
//! journal (`.compound-watch/publish.json`) lists the files to move and the stale ones to delete,
//! and is itself written atomically: from that moment the new set *is* the result. The files are
//! renamed into place one by one, stale ones deleted, and the journal removed last. A scan that
//! dies before the journal leaves the previous set untouched (its staging folder is deleted by the
//! next run, or at once by a run that fails with an error); one that dies after it is completed by the next run on the same output, before that
//! run does anything else ([`recover`]). The output's lock (held by the scan) keeps two runs apart.
//!
//! This module moves files; it knows nothing of what they contain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::scan::progress::{Event, Progress};

/// The output's private folder, beside the outputs.
const STATE_DIR: &str = ".compound-watch";
/// Folders of `--out` whose whole content a scan owns: files there that the new set does not hold
/// are stale (e.g. the quicklook of a polygon that is gone) and are deleted when it is published.
const OWNED_DIRS: [&str; 2] = ["summary", crate::output::months::DIR];
/// Files of `--out` written only on request (`--format`, `export`): when the new set lacks one it is
/// stale (it would show the previous report) and is deleted when the set is published.
const OWNED_FILES: [&str; 8] = [
    "report.gpkg",
    "report.fgb",
    "report.kml",
    "report.csv",
    "diff.gpkg",
    "diff.fgb",
    "diff.kml",
    "diff.csv",
];

/// What a publish must do, written before it starts so that a later run can finish it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Journal {
    /// Paths relative to `--out`, moved from the staging folder to the same place in `--out`.
    files: Vec<String>,
    /// Paths relative to `--out` deleted once every file is in place.
    remove: Vec<String>,
}

/// A set of outputs being written, not yet visible in `--out`.
#[derive(Debug)]
pub(crate) struct Staging {
    out: PathBuf,
    root: PathBuf,
}

fn staging_dir(out: &Path) -> PathBuf {
    out.join(STATE_DIR).join("staging")
}

fn journal_path(out: &Path) -> PathBuf {
    out.join(STATE_DIR).join("publish.json")
}

impl Staging {
    /// A fresh, empty staging folder for `out`. The caller holds the output's lock, so anything
    /// already there is the leftover of a run that died before publishing, and is deleted.
    pub(crate) fn begin(out: &Path) -> Result<Staging> {
        let root = staging_dir(out);
        if journal_path(out).is_file() {
            // A pending publish owns the staging folder: finish it first.
            recover(out)?;
        }
        remove_dir_if_present(&root)?;
        std::fs::create_dir_all(&root).map_err(Error::io(&root))?;
        Ok(Staging {
            out: out.to_path_buf(),
            root,
        })
    }

    /// Where the output `relative` (a path relative to `--out`) is written before it is published.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Makes the staged set the output: syncs every staged file, writes the journal, moves the
    /// files into place, deletes stale files, removes the journal, reporting each file moved as
    /// progress of a "publish" stage. Returns the published paths.
    pub(crate) fn publish(self, progress: &dyn Progress) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        list_files(&self.root, &self.root, &mut files)?;
        files.sort();
        progress.event(Event::Stage {
            name: "publish",
            total: files.len() as u64,
        });
        for f in &files {
            sync_file(&self.root.join(f))?;
        }
        sync_dirs_under(&self.root)?;
        let new: BTreeSet<&String> = files.iter().collect();
        let mut remove = Vec::new();
        for dir in OWNED_DIRS {
            let mut existing = Vec::new();
            list_files(&self.out, &self.out.join(dir), &mut existing)?;
            remove.extend(existing.into_iter().filter(|f| !new.contains(f)));
        }
        remove.extend(
            OWNED_FILES
                .iter()
                .map(|f| f.to_string())
                .filter(|f| !new.contains(f) && self.out.join(f).is_file()),
        );
        remove.sort();
        let journal = Journal { files, remove };
        atomic::write_json(&journal_path(&self.out), &journal)?;
        complete(&self.out, &journal, &|| progress.event(Event::Advance(1)))?;
        Ok(journal.files.iter().map(|f| self.out.join(f)).collect())
    }
}

impl Drop for Staging {
    /// A set that was not published (the scan failed before writing the journal) is deleted at
    /// once rather than by the next run: on a full disk it holds the space that run will need.
    /// Once the journal exists the staged files are the result, and only [`recover`] may touch them.
    fn drop(&mut self) {
        if !journal_path(&self.out).exists() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Finishes a publish that a killed run left half done, and deletes what interrupted writes left
/// behind (a staging folder never published, temp files). Call it with the output's lock held.
/// Returns whether a publish was completed.
pub(crate) fn recover(out: &Path) -> Result<bool> {
    let journal_file = journal_path(out);
    let completed = if journal_file.is_file() {
        let text = std::fs::read_to_string(&journal_file).map_err(Error::io(&journal_file))?;
        let journal: Journal = serde_json::from_str(&text).map_err(|e| Error::State {
            path: journal_file.clone(),
            reason: format!(
                "cannot be read ({e}); it lists the files of an interrupted publish: delete it and \
                 {} and rerun the scan",
                staging_dir(out).display()
            ),
        })?;
        complete(out, &journal, &|| ())?;
        true
    } else {
        false
    };
    remove_dir_if_present(&staging_dir(out))?;
    for dir in [out.to_path_buf(), out.join(STATE_DIR), out.join("summary")] {
        remove_temp_files(&dir)?;
    }
    Ok(completed)
}

/// Moves the journal's files into place (those already moved are skipped), deletes the stale
/// ones, syncs the folders, then removes the journal and the staging folder. Idempotent.
fn complete(out: &Path, journal: &Journal, moved: &dyn Fn()) -> Result<()> {
    let staging = staging_dir(out);
    let mut dirs = BTreeSet::new();
    for f in &journal.files {
        let (from, to) = (staging.join(f), out.join(f));
        if from.is_file() {
            let parent = to.parent().unwrap_or(out);
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
            std::fs::rename(&from, &to).map_err(Error::io(&to))?;
            dirs.insert(parent.to_path_buf());
        }
        moved();
    }
    for f in &journal.remove {
        let path = out.join(f);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                dirs.insert(path.parent().unwrap_or(out).to_path_buf());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path)(e)),
        }
    }
    for d in &dirs {
        sync_dir(d)?;
    }
    let journal_file = journal_path(out);
    std::fs::remove_file(&journal_file).map_err(Error::io(&journal_file))?;
    sync_dir(&out.join(STATE_DIR))?;
    remove_dir_if_present(&staging)
}

/// Relative paths (with `/`) of the files under `dir`, relative to `base`; none if `dir` is absent.
fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(Error::io(dir))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(Error::io(&path))?;
        if meta.is_dir() {
            list_files(base, &path, out)?;
        } else if meta.is_file() {
            let relative = path.strip_prefix(base).expect("listed under its base");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(path))
}

/// Syncs a directory, so the renames and creations in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir) {
        Ok(f) => f.sync_all().map_err(Error::io(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir)(e)),
    }
}

fn sync_dirs_under(dir: &Path) -> Result<()> {
    sync_dir(dir)?;
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        if path.is_dir() {
            sync_dirs_under(&path)?;
        }
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir)(e)),
    }
}

/// Deletes the temp files of interrupted atomic writes (`.tmp*`) directly in `dir`.
fn remove_temp_files(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let is_temp = entry.file_name().to_string_lossy().starts_with(".tmp");
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// Counts the files reported moved.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);
    impl Progress for Count {
        fn event(&self, event: Event<'_>) {
            if let Event::Advance(n) = event {
                self.0.fetch_add(n as usize, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn a_published_set_replaces_the_old_one_and_removes_its_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join("summary")).unwrap();
        std::fs::write(out.join("report.geojson"), "old").unwrap();
        std::fs::write(out.join("summary/quicklook-gone.png"), "old").unwrap();
        std::fs::write(out.join("notes.txt"), "the user's").unwrap();
        let staging = Staging::begin(out).unwrap();
        atomic::write(&staging.path("report.geojson"), b"new").unwrap();
        atomic::write(&staging.path("summary/quicklook-new.png"), b"new").unwrap();
        let count = Count::default();
        let published = staging.publish(&count).unwrap();
        assert_eq!(published.len(), 2);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(read(&out.join("report.geojson")), "new");
        assert_eq!(read(&out.join("summary/quicklook-new.png")), "new");
        assert!(!out.join("summary/quicklook-gone.png").exists());
        assert_eq!(
            read(&out.join("notes.txt")),
            "the user's",
            "files the scan does not own stay"
        );
        assert!(!journal_path(out).exists() && !staging_dir(out).exists());
    }

    #[test]
    fn a_publish_killed_after_its_journal_is_completed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("a.txt"), "old a").unwrap();
        std::fs::write(out.join("b.txt"), "old b").unwrap();
        let staging = Staging::begin(out).unwrap();
        atomic::write(&staging.path("a.txt"), b"new a").unwrap();
        atomic::write(&staging.path("b.txt"), b"new b").unwrap();
        // As if killed after the journal and the first rename.
        let journal = Journal {
            files: vec!["a.txt".into(), "b.txt".into()],
            remove: vec![],
        };
        atomic::write_json(&journal_path(out), &journal).unwrap();
        std::fs::rename(staging.path("a.txt"), out.join("a.txt")).unwrap();
        std::fs::write(out.join(".tmp-XYZ-report.geojson"), "half").unwrap();
        assert!(recover(out).unwrap());
        assert_eq!(
            (read(&out.join("a.txt")), read(&out.join("b.txt"))),
            ("new a".into(), "new b".into())
        );
        assert!(!out.join(".tmp-XYZ-report.geojson").exists());
        assert!(!recover(out).unwrap(), "nothing left to complete");
    }

    #[test]
    fn a_run_killed_before_its_journal_leaves_the_old_set_and_its_staging_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("a.txt"), "old a").unwrap();
        let staging = Staging::begin(out).unwrap();
        atomic::write(&staging.path("a.txt"), b"new a").unwrap();
        std::mem::forget(staging); // killed: no destructor runs
        assert!(staging_dir(out).join("a.txt").exists());
        assert!(!recover(out).unwrap());
        assert_eq!(read(&out.join("a.txt")), "old a");
        assert!(!staging_dir(out).exists());
    }

    #[test]
    fn a_run_that_fails_before_its_journal_deletes_its_staging_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("a.txt"), "old a").unwrap();
        let staging = Staging::begin(out).unwrap();
        atomic::write(&staging.path("a.txt"), b"new a").unwrap();
        drop(staging); // the scan returned an error
        assert!(!staging_dir(out).exists());
        assert_eq!(read(&out.join("a.txt")), "old a");
    }

    #[test]
    fn a_run_that_fails_after_its_journal_keeps_its_staging_for_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let staging = Staging::begin(out).unwrap();
        atomic::write(&staging.path("a.txt"), b"new a").unwrap();
        let journal = Journal {
            files: vec!["a.txt".into()],
            remove: vec![],
        };
        atomic::write_json(&journal_path(out), &journal).unwrap();
        drop(staging);
        assert!(staging_dir(out).join("a.txt").exists());
        assert!(recover(out).unwrap());
        assert_eq!(read(&out.join("a.txt")), "new a");
    }
}

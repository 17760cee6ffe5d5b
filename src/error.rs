//! The library's one error type. Each variant says what failed and where, in words a user can act on.

use std::path::PathBuf;

/// Everything that can go wrong in a scan, named by stage and place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An area-of-interest file (or `--bbox`) that cannot be used, with the fix in `reason`.
    #[error("AOI {path}: {reason}")]
    Aoi {
        /// The file (or `--bbox` text) that was given.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A STAC catalog or item that cannot be read or does not follow the expected conventions.
    #[error("catalog {path}: {reason}")]
    Catalog {
        /// File or URL of the catalog, collection or item.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// One scene (STAC item) could not be used.
    #[error("scene {id}: {reason}")]
    Scene {
        /// STAC item id.
        id: String,
        /// What failed.
        reason: String,
    },
    /// GDAL reported an error.
    #[error("GDAL, while {context}: {source}")]
    Gdal {
        /// What the program was doing.
        context: String,
        /// GDAL's own message.
        #[source]
        source: gdal::errors::GdalError,
    },
    /// A server could not be reached or answered with an error.
    #[error("{url}: {reason}")]
    Remote {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The window cache, or one of its entries, that cannot be used.
    #[error("cache {path}: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A scan's own state in its output folder (`.compound-watch/`) that cannot be read.
    #[error("scan state {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A scan that found or could use too few scenes, and so left the previous outputs untouched.
    #[error("{out}: nothing was published: {reason}")]
    Refused {
        /// The output folder, untouched.
        out: PathBuf,
        /// Why, in one sentence.
        reason: String,
        /// Scenes found but left out, with their reasons.
        skipped: Vec<crate::scene::Skipped>,
    },
    /// A summary that cannot be made or read back, because its input lacks what it needs.
    #[error("summary, {what}: {reason}")]
    Summary {
        /// The file, report feature or input field concerned.
        what: String,
        /// What is missing or wrong, and how to fix it.
        reason: String,
    },
    /// A GeoJSON report that cannot be read or compared (a previous report, an input of `diff`).
    #[error("report {path}: {reason}")]
    Report {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A watch list (`compound-watch run`) that cannot be used, naming the key and the fix.
    #[error("watch list {path}, {key}: {reason}")]
    WatchList {
        /// The watch list file.
        path: PathBuf,
        /// The key concerned, e.g. `site[2] (kk_park).aoi`.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An evidence bundle that cannot be written or checked, naming the file and the fix.
    #[error("evidence bundle {path}: {reason}")]
    Evidence {
        /// The bundle folder, or the file in it concerned.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A configuration value that makes no sense, named by its flag or field.
    #[error("{field}: {reason}")]
    Config {
        /// The flag or field, e.g. `--from`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a GDAL error with what the program was doing.
    pub(crate) fn gdal(context: impl Into<String>) -> impl FnOnce(gdal::errors::GdalError) -> Error {
        let context = context.into();
        move |source| Error::Gdal { context, source }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

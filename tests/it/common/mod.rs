//! Shared fixtures: the generated sample (once per machine), a read-counting reader, and the demo
//! scan (once per test run).

pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use compound_watch::aoi::{self, AoiLimits};
use compound_watch::sample::{self, SampleSpec};
use compound_watch::scan::{self, ScanConfig, ScanSummary, Silent};
use compound_watch::source::{Band, StaticCatalog};
use compound_watch::window::{GdalReader, Window, WindowReader};
use compound_watch::Grid;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test cannot run because something it needs is missing. Under CI (the environment variable CI
/// set) that fails the test with `reason`; elsewhere the test is skipped: it says why on stderr and
/// leaves a file in target/test-skips/ that `make test` counts at the end, since cargo hides the
/// stderr of a test that passes. Callers return right after.
pub fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("CI is set and a prerequisite is missing: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => reason.to_owned(),
    };
    let name: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .take(200)
        .collect();
    let dir = root().join("target/test-skips");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), format!("{reason}\n")).unwrap();
}

/// The shared data and tools: $COMPOUND_WATCH_SHARED (set by `make test` from its SHARED), else
/// ../shared beside the project. When neither exists the calling test is skipped, or fails under CI.
pub fn shared() -> Option<PathBuf> {
    let p = match std::env::var_os("COMPOUND_WATCH_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("../shared"),
    };
    if p.is_dir() {
        Some(p)
    } else {
        skip_or_fail(&format!(
            "the shared data directory {} is absent (make test SHARED=/path/to/shared)",
            p.display()
        ));
        None
    }
}

/// The bundled sample, generated once into target/ (atomically: a half-written sample is never used).
pub fn sample_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let spec = SampleSpec::default();
        let dir = root().join(format!(
            "target/test-sample/seed-{}-v{}",
            spec.seed,
            sample::GENERATOR_VERSION
        ));
        if !dir.join("truth.geojson").is_file() {
            std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
            let tmp = tempfile::tempdir_in(dir.parent().unwrap()).unwrap();
            sample::generate(tmp.path(), &spec).unwrap();
            let tmp = tmp.keep();
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another test process won the race; its sample is identical.
                std::fs::remove_dir_all(&tmp).unwrap();
            }
        }
        dir
    })
}

/// A reader that counts what it reads, to prove a rerun reads nothing.
#[derive(Default)]
pub struct CountingReader {
    pub reads: AtomicUsize,
}

impl WindowReader for CountingReader {
    fn read(&self, href: &str, band: Band, grid: &Grid) -> compound_watch::Result<Window> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        GdalReader::default().read(href, band, grid)
    }
}

pub fn demo_config(out: &Path, cache: &Path) -> ScanConfig {
    let aoi = aoi::load(&root().join("aoi/myawaddy.geojson"), &AoiLimits::default()).unwrap();
    ScanConfig::new(
        aoi,
        "2021-07".parse().unwrap(),
        "2023-06".parse().unwrap(),
        out.to_path_buf(),
        cache.to_path_buf(),
    )
}

pub struct DemoScan {
    pub dir: PathBuf,
    pub summary: ScanSummary,
    pub reads: usize,
}

impl DemoScan {
    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }
}

/// The demo scan of the sample, run once per test binary.
pub fn demo_scan() -> &'static DemoScan {
    static SCAN: OnceLock<DemoScan> = OnceLock::new();
    SCAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let reader = CountingReader::default();
        // The demo scan writes every output there is, the monthly composites (`--months`) too.
        let config = ScanConfig {
            monthly_composites: true,
            ..demo_config(&dir.join("out"), &dir.join("cache"))
        };
        let source = StaticCatalog::new(sample_dir().join("catalog.json"));
        let summary = scan::run(&config, &source, &reader, &Silent).unwrap();
        DemoScan {
            dir,
            summary,
            reads: reader.reads.load(Ordering::SeqCst),
        }
    })
}

/// Every file a scan wrote into `out`, by relative path, except the lock (it holds the pid) and
/// the attempt log (one timestamped line per run).
pub fn output_files(out: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, files: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, files);
            } else {
                let name = path.strip_prefix(base).unwrap().display().to_string();
                if name != ".compound-watch/lock" && name != ".compound-watch/attempts.jsonl" {
                    files.insert(name, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    let mut files = std::collections::BTreeMap::new();
    walk(out, out, &mut files);
    files
}

/// Copies a folder and everything in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Conformance classes of a STAC API with item search and the CQL2 filter extension.
pub const ITEM_SEARCH_WITH_FILTER: [&str; 3] = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
];

/// Serves a STAC API landing page declaring `conforms_to` at `{prefix}/`. Register it after the
/// routes under `prefix` (the first matching prefix answers).
pub fn serve_landing_page(server: &server::Server, prefix: &str, conforms_to: &[&str]) {
    let landing = serde_json::json!({
        "type": "Catalog", "id": "loopback", "description": "a loopback STAC API", "stac_version": "1.0.0",
        "conformsTo": conforms_to, "links": [],
    });
    server.route(prefix, move |_, rest| match rest {
        "" | "/" => server::Reply::json(&landing),
        _ => server::Reply::NotFound,
    });
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs python3 with a shared tool if this machine has the shared directory and the tool's
/// dependencies; otherwise skips (or fails under CI, see [`skip_or_fail`]) and returns None.
pub fn python_tool(tool: &str, args: &[&str], needs: &str) -> Option<std::process::Output> {
    let shared = shared()?;
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {needs}")])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip_or_fail(&format!(
            "python3 cannot import {needs} (python3 -m pip install {needs}), so {tool} cannot run"
        ));
        return None;
    }
    Some(
        std::process::Command::new("python3")
            .arg(shared.join(tool))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Runs a headless QGIS tool from the shared tools/qgis with Debian's /usr/bin/python3 (the only
/// python that can import qgis); otherwise skips (or fails under CI) and returns None.
pub fn qgis_tool(tool: &str, args: &[&Path]) -> Option<std::process::Output> {
    let shared = shared()?;
    qgis_python(&shared.join("tools/qgis").join(tool), args)
}

/// Runs a PyQGIS `script` with Debian's python3, headless; None (the test skipped, or failed
/// under CI) when QGIS cannot be imported.
pub fn qgis_python<S: AsRef<std::ffi::OsStr>>(script: &Path, args: &[S]) -> Option<std::process::Output> {
    let python = "/usr/bin/python3";
    let probe = std::process::Command::new(python)
        .args(["-c", "import qgis.core"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip_or_fail(&format!(
            "{python} cannot import qgis (make qgis installs it), so {} cannot run",
            script.display()
        ));
        return None;
    }
    // Qt wants a private runtime directory (mode 0700).
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    Some(
        std::process::Command::new(python)
            .arg(script)
            .args(args)
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
            .unwrap(),
    )
}

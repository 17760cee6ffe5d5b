//! Shared fixtures: the generated sample (once per machine), a read-counting reader, and the demo
//! scan (once per test run).

pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use compound_watch::aoi::{self, AoiLimits};
use compound_watch::grid::Grid;
use compound_watch::sample::{self, SampleSpec};
use compound_watch::scan::{self, ScanConfig, ScanSummary, Silent};
use compound_watch::source::{Band, StaticCatalog};
use compound_watch::window::{GdalReader, WindowReader};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared data directory beside the project, if this machine has it.
pub fn shared() -> Option<PathBuf> {
    let p = root().join("../shared");
    p.is_dir().then_some(p)
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
    fn read(&self, href: &str, band: Band, grid: &Grid) -> compound_watch::Result<Vec<u16>> {
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
        let config = demo_config(&dir.join("out"), &dir.join("cache"));
        let source = StaticCatalog::new(sample_dir().join("catalog.json"));
        let summary = scan::run(&config, &source, &reader, &Silent).unwrap();
        DemoScan {
            dir,
            summary,
            reads: reader.reads.load(Ordering::SeqCst),
        }
    })
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

/// Runs python3 with a shared tool if this machine has ../shared and the tool's dependencies;
/// otherwise says why it was skipped and returns None.
pub fn python_tool(tool: &str, args: &[&str], needs: &str) -> Option<std::process::Output> {
    let Some(shared) = shared() else {
        eprintln!("SKIPPED: ../shared is absent, so {tool} cannot run");
        return None;
    };
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {needs}")])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: python3 cannot import {needs} (pip install {needs}), so {tool} cannot run");
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

/// Runs a headless QGIS tool from ../shared/tools/qgis with Debian's /usr/bin/python3 (the only
/// python that can import qgis); otherwise says why it was skipped and returns None.
pub fn qgis_tool(tool: &str, args: &[&Path]) -> Option<std::process::Output> {
    let Some(shared) = shared() else {
        eprintln!("SKIPPED: ../shared is absent, so {tool} cannot run");
        return None;
    };
    let python = "/usr/bin/python3";
    let probe = std::process::Command::new(python)
        .args(["-c", "import qgis.core"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: {python} cannot import qgis (bash ../shared/tools/qgis/install.sh), so {tool} cannot run");
        return None;
    }
    // Qt wants a private runtime directory (mode 0700).
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    Some(
        std::process::Command::new(python)
            .arg(shared.join("tools/qgis").join(tool))
            .args(args)
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
            .unwrap(),
    )
}

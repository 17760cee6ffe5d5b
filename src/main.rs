//! The `compound-watch` command: parses arguments into a checked configuration, calls the library,
//! prints what happened and maps the outcome to an exit code. No pipeline logic lives here.
// No function over 80 lines (clippy.toml), as in the library.
#![warn(clippy::too_many_lines)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use compound_watch::aoi::{self, AoiLimits};
use compound_watch::month::Month;
use compound_watch::sample::{self, SampleSpec, Scenario};
use compound_watch::scan::{self, Event, Progress, ScanConfig, ScanSummary};
use compound_watch::source::{self, Skipped};
use compound_watch::summary;
use compound_watch::watch::{self, RunEvent, RunOptions, RunProgress, Shard, Status};
use compound_watch::window::GdalReader;
use compound_watch::{plural, Cache};
use compound_watch::{Http, RetryPolicy};
use std::time::Duration;

/// Prints to stdout, ignoring a closed pipe (`compound-watch scan ... | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// As `say!`, without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

const EXIT_CODES: &str = "\
Exit codes:
  0  finished; every scene found was used
  1  failed: nothing new was written (the message says what and where)
  2  the command line is wrong (see --help)
  3  finished and wrote the report, but some scenes were skipped (listed on stderr and in the
     report's compound_watch.skipped)
  4  refused: the source had no scene, or too few could be used (--min-scenes, --min-used-share);
     the previous outputs are untouched and the attempt is logged in .compound-watch/attempts.jsonl
  5  with --exit-code: finished, and the diff has added or grown polygons";

/// Watch scam compounds grow from space: Sentinel-2 L2A change detection of new built-up area.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Say more: `scan` and `run` print how long each stage took and the scenes that hold no
    /// data, `run` each site's stages too (as `--json` lines with --json); `diff` prints a line per
    /// polygon, `summary` each folder read, `sample` what it generates, `cache` the cut-off.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Say less: `scan` and `run` print no progress, only the final summary and errors; the other
    /// commands print only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// How much the commands say (-q, -v).
#[derive(Clone, Copy)]
struct Talk {
    quiet: bool,
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Scan an AOI over a period: write report.geojson, diff.geojson and demolition.geojson (each
    /// with a QGIS .qml style), composite.tif, project.qgs and the monthly summary.*.
    #[command(after_help = EXIT_CODES)]
    Scan(Box<ScanArgs>),
    /// Write the bundled SYNTHETIC sample (a static STAC catalog of COGs and truth.geojson).
    Sample(SampleArgs),
    /// Show the window cache's size, or prune it.
    Cache(CacheArgs),
    /// Measure the change detector on labelled data.
    Eval(EvalArgs),
    /// Write one summary across the AOIs of a run (across.md, .html, .csv, .json) from each scan
    /// output's summary.json.
    Summary(SummaryArgs),
    /// Compare two reports of the same site: write what was added, grew, shrank, stayed or went.
    #[command(after_help = DIFF_EXIT_CODES)]
    Diff(DiffArgs),
    /// Scan every site of a watch list (TOML, see watch/border.toml), each into OUT/<name>/, then
    /// write OUT/run.json, run.md, the across-sites summary (across.*) and the alerts (alerts.json,
    /// alerts.md, and the webhook if set).
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// Bundle a scan's outputs with everything they were computed from: OUT's outputs, the STAC
    /// items of the scenes used, the input windows as cached (DIR/inputs/), the tool version and
    /// parameters (params.json) and a SHA-256 manifest (MANIFEST.sha256, `sha256sum -c` reads it).
    #[command(after_help = EVIDENCE_EXIT_CODES)]
    Evidence(EvidenceArgs),
    /// Check an evidence bundle: every file against its manifest, then the scan run again from the
    /// bundle alone, offline, and its report, diff and demolition compared byte for byte.
    #[command(after_help = VERIFY_EXIT_CODES)]
    Verify(VerifyArgs),
    /// Write a scan's report and diff in other vector formats, beside them in OUT (as `scan
    /// --format` does).
    Export(ExportArgs),
}

const EVIDENCE_EXIT_CODES: &str = "\
Exit codes:
  0  the bundle is written (and packed with --zip)
  1  failed: OUT is not a finished scan, a window is no longer in the cache, or DIR is not empty
     (the message says which file and the fix)
  2  the command line is wrong (see --help)";

const VERIFY_EXIT_CODES: &str = "\
Exit codes:
  0  confirmed: every file matches the manifest, and the scan run again from the bundle wrote the
     same report, diff and demolition, byte for byte
  1  the bundle cannot be checked: no manifest, a record missing, or an input window missing
     (verify never reads from the network; the message names the file)
  2  the command line is wrong (see --help)
  3  files differ from the manifest (each is named): the bundle was changed after it was written
  4  the re-run wrote a different report, diff or demolition (the first difference is named:
     file, feature and property)";

#[derive(Args)]
struct EvidenceArgs {
    /// The output folder of a finished scan (`scan --out`).
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// The bundle folder to write (absent or empty).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    dir: PathBuf,
    /// The window cache the scan used [default: as for `scan --cache`].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Also pack the bundle into DIR.zip.
    #[arg(long)]
    zip: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The bundle folder (`evidence -o DIR`; unzip DIR.zip first).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    /// The output folder of a finished scan.
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// Formats, comma-separated: gpkg, fgb, kml, csv.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    format: Vec<compound_watch::vector::Format>,
}

const RUN_EXIT_CODES: &str = "\
Exit codes:
  0  every site was scanned and published; every scene found was used
  1  failed: the watch list or the output root cannot be used (the message says which key or file)
  2  the command line is wrong (see --help)
  3  every site was published, but some scenes were skipped (run.json says where)
  4  at least one site failed or was refused; the others were published (run.json says which and why)
  5  with --exit-code: something new was found (alerts.md) and no site failed";

#[derive(Args)]
struct RunArgs {
    /// The watch list: a TOML file naming the sites, the source, the period and the output root.
    #[arg(value_name = "WATCHLIST")]
    watchlist: PathBuf,
    /// Output root instead of the watch list's `out`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Window cache shared by every site [default: the watch list's `cache`, else as for `scan --cache`].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Source of every site instead of the watch list's (any `scan --source` value; `{name}` is the
    /// site's name, e.g. `samples/{name}/catalog.json`).
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// First month of every site instead of the watch list's, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM")]
    from: Option<Month>,
    /// Last month of every site instead of the watch list's, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM")]
    to: Option<Month>,
    /// Sites scanned at once [default: the watch list's `parallel`, else 1].
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Scan only shard I of N (I from 0 to N-1) and record it in OUT/.compound-watch/shards/; the
    /// units shared out are whole sites and the tiles of tiled sites, balanced by area x months.
    /// `--gather` then writes what a whole run writes.
    #[arg(long, value_name = "I/N", conflicts_with = "gather")]
    shard: Option<Shard>,
    /// Merge the records of the shards (every I of the latest N) into run.json, run.md, the
    /// across-sites summary and the alerts, as a whole run writes them: each tiled site's tiles are
    /// merged into its report (scanning again, whole, polygons cut by the tiles' margins).
    #[arg(long)]
    gather: bool,
    /// Only measure the region statistics of every site scanned in tiles (kept in
    /// OUT/<site>/.compound-watch/region.json, reused while still valid), so that the shards
    /// scanning its tiles read the region's imagery once; run it before the shards
    /// (deploy/slurm/submit.sh does). Without it, the first shard that needs them measures them.
    #[arg(long, conflicts_with_all = ["shard", "gather"])]
    plan: bool,
    /// Exit with 5 when something new was found (added or grown polygons not alerted before), like
    /// `git diff --exit-code`.
    #[arg(long)]
    exit_code: bool,
    /// Seconds before an HTTP request is given up (and retried).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// Memory the sites scanned at once may take together, MB [default: the watch list's
    /// `memory_mb`, else no budget]. Each site's need is estimated from its grid's pixels x months
    /// (README, "Watching many sites"); a site larger than the budget is scanned alone.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    memory: Option<u64>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Machine-readable output for schedulers: one JSON object per line on stdout as each site
    /// starts and ends (`{"event":"site",...}`, the ending one with its run.json record), then the
    /// run's (`{"event":"run",...}`, run.json's content).
    #[arg(long)]
    json: bool,
}

const DIFF_EXIT_CODES: &str = "\
Exit codes:
  0  the diff was written
  1  failed: a report is missing or is not a GeoJSON FeatureCollection of polygons with ids
  2  the command line is wrong (see --help)";

#[derive(Args)]
struct SummaryArgs {
    /// Scan output directories (each scan's --out), one per AOI; each must hold summary.json.
    #[arg(required = true, value_name = "OUT_DIR")]
    dirs: Vec<PathBuf>,
    /// Where across.md, across.html, across.csv, across.json and across/ go.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args)]
struct DiffArgs {
    /// The earlier report.geojson.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The later report.geojson.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Where the diff goes (a GeoJSON file; its QGIS style is written beside it as .qml).
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[command(subcommand)]
    dataset: EvalDataset,
}

#[derive(Subcommand)]
enum EvalDataset {
    /// Onera Satellite Change Detection layout: <data>/<city>/imgs_1, imgs_2, cm/<city>-cm.tif.
    Oscd {
        /// Directory holding one directory per city.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Where change maps (<city>-cm.tif), eval.md and eval.json go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Minimum mapping unit, pixels.
        #[arg(long, default_value_t = 10, value_name = "N")]
        min_pixels: usize,
    },
}

#[derive(Args)]
struct CacheArgs {
    #[command(subcommand)]
    action: CacheAction,
    /// The cache [default: as for `scan --cache`].
    #[arg(long, value_name = "DIR", global = true)]
    cache: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Print the number of cached windows and their size.
    Info,
    /// Delete cached windows not used for a while (and leftovers of interrupted writes).
    Prune {
        /// Delete entries older than this many days; 0 empties the cache.
        #[arg(long, value_name = "DAYS", default_value_t = 90)]
        older_than_days: u64,
    },
}

#[derive(Args)]
struct ScanArgs {
    /// Site outline: a GeoJSON file with a Polygon or MultiPolygon in lon/lat (see aoi/).
    #[arg(long, value_name = "FILE", required_unless_present = "bbox", conflicts_with = "bbox")]
    aoi: Option<PathBuf>,
    /// Site box instead of a file: west,south,east,north in degrees.
    #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true, value_parser = aoi::parse_bbox)]
    bbox: Option<[f64; 4]>,
    /// Where scenes come from: `earth-search` (Element 84 Earth Search v1, public COGs),
    /// `planetary-computer` (Microsoft; hrefs signed with a SAS token), `cdse` (Copernicus Data
    /// Space; needs S3 keys in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_S3_ENDPOINT; its
    /// assets are JP2 files that GDAL reads whole, not window by window, so scans are slow and
    /// heavy), the landing page URL of any STAC API with item search, or the path of a static
    /// catalog.json on disk.
    #[arg(long, value_name = "SOURCE")]
    source: String,
    /// STAC collection [default: sentinel-2-l2a; e.g. sentinel-2-c1-l2a on Earth Search].
    #[arg(long, value_name = "ID")]
    collection: Option<String>,
    /// Use only the cache and this output's previous scene list: no network, no source reads.
    #[arg(long)]
    offline: bool,
    /// Scenes read at once.
    #[arg(long, value_name = "N")]
    fetch_jobs: Option<usize>,
    /// Seconds before an HTTP request is given up (and retried).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// Retries of a failed request (5xx, 429, timeouts, resets), with exponential backoff.
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// First month to scan, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM")]
    from: Month,
    /// Last month to scan, YYYY-MM (included).
    #[arg(long, value_name = "YYYY-MM")]
    to: Month,
    /// Output directory (created if needed); report.geojson, diff.geojson (against the report already
    /// here), composite.tif, QGIS styles and project.qgs go here.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Cache of warped scene windows, shared between scans
    /// [default: $COMPOUND_WATCH_CACHE, else $XDG_CACHE_HOME/compound-watch, else ~/.cache/compound-watch].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Skip scenes whose eo:cloud_cover is above this percentage.
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    max_cloud_cover: Option<f64>,
    /// Minimum mapping unit: smaller change regions are dropped, in m².
    #[arg(long, value_name = "M2", value_parser = non_negative, allow_negative_numbers = true)]
    min_area: Option<f64>,
    /// Which surfaces count as roofs: any-material (concrete, metal of any colour, white
    /// membranes, red and dark tiles; needs the haze correction) or bright-flat (concrete, metal,
    /// white and blue roofs only; see the README's Accuracy section).
    #[arg(long, value_name = "MODEL", default_value = "any-material")]
    roofs: compound_watch::detect::RoofModel,
    /// Subtract each scene's haze, measured from its darkest clear pixels against the site's
    /// clearest scenes, before scoring (recorded per scene in the report) [default: true with
    /// any-material, false with bright-flat].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    haze_correction: Option<bool>,
    /// Refuse AOIs (and AOI bounding boxes) larger than this, in km².
    #[arg(long, value_name = "KM2", value_parser = positive)]
    max_aoi_km2: Option<f64>,
    /// Publish nothing (exit 4, previous outputs untouched) when fewer scenes than this can be used.
    #[arg(long, value_name = "N")]
    min_scenes: Option<usize>,
    /// Publish nothing (exit 4) when less than this share of the scenes found can be used.
    #[arg(long, value_name = "SHARE", value_parser = share)]
    min_used_share: Option<f64>,
    /// Pixels around SCL clouds and shadows that are not trusted either.
    #[arg(long, value_name = "PIXELS")]
    cloud_buffer: Option<usize>,
    /// Clear observations a pixel needs in a month; fewer make that month a gap.
    #[arg(long, value_name = "N")]
    min_clear_obs: Option<u16>,
    /// Worker threads [default: all cores].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Exit with 5 when the diff against the previous report has added or grown polygons, like
    /// `git diff --exit-code`.
    #[arg(long)]
    exit_code: bool,
    /// Machine-readable output for schedulers: one JSON object per line on stdout, one per stage
    /// (`{"event":"stage",...}`) and the final summary (`{"event":"summary",...}`).
    #[arg(long)]
    json: bool,
    /// Also write the report and the diff in these formats, comma-separated: gpkg (GeoPackage),
    /// fgb (FlatGeobuf), kml, csv (WKT geometry). GeoJSON is always written. List properties
    /// (`scenes`) are joined with ";" where the format has no list field.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    format: Vec<compound_watch::vector::Format>,
    /// Also write month-by-month imagery: months/YYYY-MM.tif, one COG per month (RGB + NIR and the
    /// clear observations), and their layers in project.qgs. Costs more time and disk than every
    /// other output together; a later scan without it deletes them.
    #[arg(long)]
    months: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// Directory to write the sample into.
    #[arg(long, value_name = "DIR", default_value = "samples/myawaddy")]
    out: PathBuf,
    /// Seed of the generator (the default is the bundled sample).
    #[arg(long, default_value_t = SampleSpec::default().seed)]
    seed: u64,
    /// What happens in the series: the demo, or one of the hard cases a detector must pass.
    #[arg(long, value_parser = scenario_parser(), default_value_t = Scenario::Demo)]
    scenario: Scenario,
    /// Box the scenes must cover, W,S,E,N degrees [default: the aoi/myawaddy.geojson box].
    #[arg(long, value_name = "W,S,E,N", value_parser = aoi::parse_bbox)]
    bbox: Option<[f64; 4]>,
    /// First acquisition date, YYYY-MM-DD [default: 2021-07-02].
    #[arg(long, value_name = "DATE")]
    first: Option<chrono::NaiveDate>,
    /// Last acquisition date, YYYY-MM-DD [default: 2023-06-30].
    #[arg(long, value_name = "DATE")]
    last: Option<chrono::NaiveDate>,
    /// Days between acquisitions [default: 5, Sentinel-2A and -2B together]; benchmarks of large
    /// AOIs use more to keep the sample small.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(i64).range(1..=366))]
    revisit_days: Option<i64>,
}

/// `--scenario`: the scenarios' names, each with its line of help, parsed by `Scenario`'s `FromStr`.
fn scenario_parser() -> impl TypedValueParser<Value = Scenario> {
    PossibleValuesParser::new(Scenario::ALL.map(|s| PossibleValue::new(s.name()).help(s.about())))
        .try_map(|name| name.parse::<Scenario>())
}

/// The flags of `scan` whose defaults are the library's: (argument id, default as shown). The
/// values come from `ScanConfig::new`, `AoiLimits::default()` and `RetryPolicy::default()`, so the
/// help cannot drift from what a scan without the flag uses.
fn scan_flag_defaults() -> [(&'static str, String); 9] {
    let config = scan_defaults();
    [
        ("fetch_jobs", config.fetch_jobs.to_string()),
        ("retries", RetryPolicy::default().max_retries.to_string()),
        ("max_cloud_cover", config.max_cloud_cover.to_string()),
        ("min_area", config.min_area_m2.to_string()),
        ("max_aoi_km2", AoiLimits::default().max_area_km2.to_string()),
        ("min_scenes", config.min_scenes.to_string()),
        ("min_used_share", config.min_used_share.to_string()),
        ("cloud_buffer", config.cloud_buffer.to_string()),
        ("min_clear_obs", config.min_clear_obs.to_string()),
    ]
}

/// `ScanConfig::new`'s defaults; the AOI, period and folders are placeholders no default depends on.
fn scan_defaults() -> ScanConfig {
    let anywhere = aoi::from_bbox([0.0, 0.0, 0.01, 0.01], &AoiLimits::default()).expect("a valid box");
    let month: Month = scan::FIRST_MONTH.parse().expect("a valid month");
    ScanConfig::new(anywhere, month, month, PathBuf::new(), PathBuf::new())
}

/// The command line: `Cli` with the library's defaults added to the help of the `scan` flags that
/// have them (clap shows `[default: ...]` only for defaults it fills in itself).
fn cli_command() -> clap::Command {
    Cli::command().mut_subcommand("scan", |scan| {
        scan_flag_defaults().into_iter().fold(scan, |scan, (id, value)| {
            scan.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            })
        })
    })
}

/// A progress bar on a terminal, plain log lines otherwise, nothing with --quiet.
struct CliProgress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    terminal: bool,
    quiet: bool,
    verbose: bool,
    json: bool,
    abort_at: Option<AbortAt>,
    /// The stage under way and when it started (for -v).
    stage: Mutex<Option<(String, std::time::Instant)>>,
}

/// TEST-ONLY hook, a `kill -9` at a chosen moment: with `COMPOUND_WATCH_ABORT_AT=STAGE` the process
/// aborts (`std::process::abort`: no destructors, no flushing, no cleanup, like SIGKILL) as the
/// scan's stage of that name starts; with `STAGE:N`, as soon as N units of that stage are done.
/// Tests use it to prove that a scan killed at each stage boundary and rerun writes exactly what
/// an uninterrupted scan writes. It knows no stage names: any stage the library announces works.
struct AbortAt {
    stage: String,
    after: u64,
    /// Units done in the current stage, when it is the chosen one.
    done: Mutex<Option<u64>>,
}

impl AbortAt {
    const VAR: &'static str = "COMPOUND_WATCH_ABORT_AT";

    fn from_env() -> Result<Option<AbortAt>, compound_watch::Error> {
        let Some(spec) = std::env::var_os(Self::VAR) else {
            return Ok(None);
        };
        let spec = spec.to_string_lossy();
        let (stage, after) = match spec.split_once(':') {
            Some((stage, n)) => (stage, n.parse().ok()),
            None => (&*spec, Some(0)),
        };
        match after {
            Some(after) if !stage.is_empty() => Ok(Some(AbortAt {
                stage: stage.to_owned(),
                after,
                done: Mutex::new(None),
            })),
            _ => Err(compound_watch::Error::Config {
                field: Self::VAR.into(),
                reason: format!("{spec:?} is not STAGE or STAGE:N (a test hook; unset it)"),
            }),
        }
    }

    fn event(&self, event: Event<'_>) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Stage { name, .. } => *done = (name == self.stage).then_some(0),
            Event::Advance(n) => {
                if let Some(d) = done.as_mut() {
                    *d += n;
                }
            }
        }
        if done.is_some_and(|d| d >= self.after) {
            std::process::abort();
        }
    }
}

impl Progress for CliProgress {
    fn event(&self, event: Event<'_>) {
        self.show(event);
        // After the stage's line is out, so a test sees where the scan stopped.
        if let Some(abort_at) = &self.abort_at {
            abort_at.event(event);
        }
    }
}

impl CliProgress {
    fn show(&self, event: Event<'_>) {
        if let Event::Stage { name, .. } = event {
            self.stage_ended(Some(name));
        }
        if self.json {
            if let Event::Stage { name, total } = event {
                json_line(&serde_json::json!({"event": "stage", "time": now(), "name": name, "total": total}));
            }
            return;
        }
        if self.quiet {
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Stage { name, total } => {
                if let Some(b) = bar.take() {
                    b.finish();
                }
                if self.terminal {
                    let b = indicatif::ProgressBar::new(total);
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {elapsed}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    b.set_prefix(name.to_owned());
                    *bar = Some(b);
                } else {
                    eprintln!("compound-watch: {} {name} ({total})", stamp());
                }
            }
            Event::Advance(n) => {
                if let Some(b) = bar.as_ref() {
                    b.inc(n);
                }
            }
        }
    }
}

impl CliProgress {
    fn new(talk: Talk, json: bool, abort_at: Option<AbortAt>) -> CliProgress {
        CliProgress {
            bar: Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
            quiet: talk.quiet,
            verbose: talk.verbose,
            json,
            abort_at,
            stage: Mutex::new(None),
        }
    }

    /// With -v: says how long the stage under way took, and starts timing `next`.
    fn stage_ended(&self, next: Option<&str>) {
        if !self.verbose {
            return;
        }
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, started)) = stage.take() {
            let seconds = started.elapsed().as_secs_f64();
            if self.json {
                json_line(&serde_json::json!({"event": "stage_done", "time": now(), "name": name, "seconds": seconds}));
            } else {
                if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    b.finish();
                }
                eprintln!("compound-watch: {} {name} done in {seconds:.2} s", stamp());
            }
        }
        *stage = next.map(|n| (n.to_owned(), std::time::Instant::now()));
    }
}

impl Drop for CliProgress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            b.finish();
        }
        self.stage_ended(None);
    }
}

/// The time now, UTC, RFC 3339 to the second: the stamp on progress lines.
fn stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("COMPOUND_WATCH_CACHE") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("compound-watch");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/compound-watch"),
        None => PathBuf::from(".compound-watch-cache"),
    }
}

/// One JSON object on one line of stdout (`--json`).
fn json_line(value: &serde_json::Value) {
    say!("{value}");
}

/// The time now, UTC, as `--json` lines carry it.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A usage error found after parsing (clap's own format and exit code 2).
fn usage_error(message: String) -> ! {
    cli_command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn run_scan(args: ScanArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let config = scan_config(&args)?;
    if let Some(jobs) = args.jobs {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build_global();
    }
    let retry = RetryPolicy {
        max_retries: args.retries.unwrap_or(RetryPolicy::default().max_retries),
        ..RetryPolicy::default()
    };
    let source = source::open(
        &args.source,
        args.collection.as_deref(),
        Http::new(Duration::from_secs(args.timeout), retry),
    )?;
    let reader = GdalReader::new(retry, args.timeout)?;
    let progress = CliProgress::new(talk, args.json, AbortAt::from_env()?);
    let outcome = scan::run(&config, source.as_ref(), &reader, &progress);
    // The bar is finished before anything else is printed.
    drop(progress);
    match outcome {
        Err(compound_watch::Error::Refused { out, reason, skipped }) => {
            eprintln!(
                "compound-watch: refused: {reason}; nothing in {} was changed",
                out.display()
            );
            print_skipped(&skipped);
            Ok(ExitCode::from(4))
        }
        Err(e) => Err(e),
        Ok(summary) => {
            if args.json {
                json_line(&serde_json::json!({"event": "summary", "time": now(), "summary": summary}));
            } else {
                print_scan(&summary, &config);
            }
            print_skipped(&summary.skipped);
            if talk.verbose {
                for id in &summary.no_data {
                    eprintln!("no data {id}: no pixel over the AOI (not used, not an error)");
                }
            }
            let new = summary.changes.added + summary.changes.grown > 0;
            Ok(ExitCode::from(if args.exit_code && new {
                watch::exit::NEW_FOUND
            } else {
                watch::scan_exit_code(Ok(&summary))
            }))
        }
    }
}

/// The scan's configuration: `ScanConfig::new`'s defaults with the values the user gave on top,
/// checked. A value the configuration refuses is a usage error naming its flag.
fn scan_config(args: &ScanArgs) -> Result<ScanConfig, compound_watch::Error> {
    if args.to < args.from {
        usage_error(format!(
            "--to {} is before --from {}; the period runs from --from to --to",
            args.to, args.from
        ));
    }
    let default_limits = AoiLimits::default();
    let limits = AoiLimits {
        max_area_km2: args.max_aoi_km2.unwrap_or(default_limits.max_area_km2),
        ..default_limits
    };
    let aoi = match (&args.aoi, &args.bbox) {
        (Some(path), _) => aoi::load(path, &limits)?,
        (None, Some(bbox)) => aoi::from_bbox(*bbox, &limits)?,
        (None, None) => unreachable!("clap requires --aoi or --bbox"),
    };
    let cache = args.cache.clone().unwrap_or_else(default_cache);
    let mut config = ScanConfig::new(aoi, args.from, args.to, args.out.clone(), cache);
    config.max_cloud_cover = args.max_cloud_cover.unwrap_or(config.max_cloud_cover);
    config.min_area_m2 = args.min_area.unwrap_or(config.min_area_m2);
    config.detect.roofs = args.roofs;
    config.detect.haze_correction = args.haze_correction.unwrap_or(args.roofs.wants_haze_correction());
    config.cloud_buffer = args.cloud_buffer.unwrap_or(config.cloud_buffer);
    config.min_clear_obs = args.min_clear_obs.unwrap_or(config.min_clear_obs);
    config.fetch_jobs = args.fetch_jobs.unwrap_or(config.fetch_jobs);
    config.offline = args.offline;
    config.min_scenes = args.min_scenes.unwrap_or(config.min_scenes);
    config.min_used_share = args.min_used_share.unwrap_or(config.min_used_share);
    config.max_grid_km2 = args.max_aoi_km2.unwrap_or(config.max_grid_km2);
    config.formats = args.format.clone();
    config.monthly_composites = args.months;
    if let Err(compound_watch::Error::Config { field, reason }) = config.check() {
        usage_error(format!("{field}: {reason}"));
    }
    Ok(config)
}

/// What a finished scan wrote and read, on stdout.
fn print_scan(summary: &ScanSummary, config: &ScanConfig) {
    say!(
        "report:    {} ({} of new construction)",
        summary.report.display(),
        plural(summary.detections, "polygon", "polygons")
    );
    say!(
        "demolition: {} ({}, reported apart: never counted as construction)",
        summary.demolition.display(),
        plural(summary.demolitions, "polygon", "polygons")
    );
    say!("composite: {}", summary.composite.display());
    say!("diff:      {} ({})", summary.diff.display(), summary.changes);
    say!("project:   {} (open in QGIS)", summary.project.display());
    say!(
        "summary:   {} (monthly figures in plain words)",
        summary.summary_page.display()
    );
    say!(
        "scenes:    {} found ({} new since the last scan of this output), {} used, {} skipped; {} of {} had scenes",
        summary.scenes_found,
        summary.scenes_new,
        summary.scenes_used,
        summary.skipped.len(),
        summary.months_with_scenes,
        plural((config.from.until(config.to) + 1) as usize, "month", "months")
    );
    if !summary.no_data.is_empty() {
        say!(
            "no data:   {} no pixel over the AOI (not used, not an error)",
            match summary.no_data.len() {
                1 => "1 scene holds".to_owned(),
                n => format!("{n} scenes hold"),
            }
        );
    }
    if !summary.cloudy.is_empty() {
        say!(
            "cloudy:    {} scenes show nothing clear over the AOI in their classification band (not used, \
             their other bands not read)",
            summary.cloudy.len()
        );
    }
    say!(
        "windows:   {} read from the source, {} from the cache ({}), {} left unread (cloudy or no data)",
        summary.windows_fetched,
        summary.windows_cached,
        config.cache_dir.display(),
        summary.windows_scouted
    );
}

/// The scenes a scan skipped, on stderr.
fn print_skipped(skipped: &[Skipped]) {
    for s in skipped {
        eprintln!("skipped {}: {}", s.id, s.reason);
    }
}

fn run_cache(args: CacheArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let cache = Cache::new(args.cache.unwrap_or_else(default_cache));
    if talk.quiet {
        // Nothing is printed; prune still prunes.
        if let CacheAction::Prune { older_than_days } = args.action {
            cache.prune(Duration::from_secs(older_than_days * 86_400))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.action {
        CacheAction::Info => {
            let u = cache.usage()?;
            say!("cache:     {}", cache.root().display());
            say!(
                "windows:   {} ({:.1} MB in {})",
                u.windows,
                u.bytes as f64 / 1e6,
                plural(u.files as usize, "file", "files")
            );
        }
        CacheAction::Prune { older_than_days } => {
            if talk.verbose {
                let cut = chrono::Utc::now() - chrono::Duration::days(older_than_days as i64);
                say!(
                    "cut-off:   windows last used before {}",
                    cut.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            let u = cache.prune(Duration::from_secs(older_than_days * 86_400))?;
            say!(
                "pruned:    {} ({:.1} MB in {}) from {}",
                plural(u.windows as usize, "window", "windows"),
                u.bytes as f64 / 1e6,
                plural(u.files as usize, "file", "files"),
                cache.root().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_eval(args: EvalArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let EvalDataset::Oscd { data, out, min_pixels } = args.dataset;
    if talk.verbose {
        eprintln!(
            "compound-watch: {} eval: cities in {}, change maps to {}",
            stamp(),
            data.display(),
            out.display()
        );
    }
    let evaluation = compound_watch::eval::oscd(&data, &out, &Default::default(), min_pixels)?;
    if talk.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    say_raw!("{}", compound_watch::eval::markdown(&evaluation));
    say!(
        "written:   {} and {}",
        out.join("eval.md").display(),
        out.join("eval.json").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_summary(args: SummaryArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let sites = args
        .dirs
        .iter()
        .map(|dir| {
            if talk.verbose {
                eprintln!(
                    "compound-watch: {} reading {}",
                    stamp(),
                    dir.join("summary.json").display()
                );
            }
            summary::read_site(dir)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let written = summary::write_across(&args.out, &sites)?;
    if talk.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let totals = summary::across_figures(&sites);
    say!(
        "summary:   {}, {:.2} ha of new construction in {}",
        plural(sites.len(), "AOI", "AOIs"),
        totals.new_ha,
        plural(totals.new_polygons, "polygon", "polygons")
    );
    for path in written {
        say!("written:   {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_diff(args: DiffArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let diff = compound_watch::diff::diff_files(&args.old, &args.new, &args.out)?;
    if talk.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if talk.verbose {
        for f in &diff.collection.features {
            let text = |k: &str| {
                f.property(k)
                    .map(|v| v.to_string().trim_matches('"').to_owned())
                    .unwrap_or_default()
            };
            say!(
                "polygon:   {} {} ({} m²)",
                text("id"),
                text("change"),
                text("area_delta_m2")
            );
        }
    }
    say!("diff:      {} ({})", args.out.display(), diff.counts);
    Ok(ExitCode::SUCCESS)
}

/// A line per site on stderr as it starts and ends, nothing with --quiet.
struct SiteLines {
    talk: Talk,
    json: bool,
    /// Per site, the stage under way and when it started (for -v).
    stages: Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

impl RunProgress for SiteLines {
    fn event(&self, event: RunEvent<'_>) {
        if self.talk.verbose {
            self.stage_lines(event);
        }
        if matches!(event, RunEvent::Stage { .. }) {
            return;
        }
        if self.json {
            json_line(&match event {
                RunEvent::Started { site } => {
                    serde_json::json!({"event": "site", "time": now(), "site": site, "state": "started"})
                }
                RunEvent::Finished(s) => {
                    serde_json::json!({"event": "site", "time": now(), "site": s.name, "state": "finished", "record": s})
                }
                RunEvent::Stage { .. } => return,
            });
            return;
        }
        if self.talk.quiet {
            return;
        }
        let time = stamp();
        match event {
            RunEvent::Started { site } => eprintln!("compound-watch: {time} {site}: scanning"),
            RunEvent::Finished(s) if s.status == Status::Published => eprintln!(
                "compound-watch: {time} {}: published in {} s (exit {}): {}; {} added, {} grown, {} removed",
                s.name,
                s.duration_s,
                s.exit_code,
                plural(s.detections, "polygon", "polygons"),
                s.polygons.added,
                s.polygons.grown,
                s.polygons.removed
            ),
            RunEvent::Finished(s) => eprintln!(
                "compound-watch: {time} {}: {} (exit {}): {}",
                s.name,
                s.status.name(),
                s.exit_code,
                s.reason
            ),
            RunEvent::Stage { .. } => {}
        }
    }
}

impl SiteLines {
    /// With -v: each site's stages as they start, and how long the one before took.
    fn stage_lines(&self, event: RunEvent<'_>) {
        let (site, next) = match event {
            RunEvent::Stage { site, name, total } => (site, Some((name, total))),
            RunEvent::Finished(s) => (s.name.as_str(), None),
            RunEvent::Started { .. } => return,
        };
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, started)) = stages.remove(site) {
            let seconds = started.elapsed().as_secs_f64();
            if self.json {
                json_line(
                    &serde_json::json!({"event": "stage_done", "time": now(), "site": site, "name": name, "seconds": seconds}),
                );
            } else {
                eprintln!("compound-watch: {} {site}: {name} done in {seconds:.2} s", stamp());
            }
        }
        if let Some((name, total)) = next {
            if self.json {
                json_line(
                    &serde_json::json!({"event": "stage", "time": now(), "site": site, "name": name, "total": total}),
                );
            } else {
                eprintln!("compound-watch: {} {site}: {name} ({total})", stamp());
            }
            stages.insert(site.to_owned(), (name.to_owned(), std::time::Instant::now()));
        }
    }
}

/// `run --plan`: the region statistics of every tiled site, measured or found kept; exit 4 when some
/// could not be measured (the shards try again).
fn plan_regions(list: &watch::WatchList, options: &RunOptions, progress: &SiteLines, json: bool) -> ExitCode {
    let prepared = watch::prepare(list, options, progress);
    let mut failed = false;
    for (site, tiles, state) in &prepared {
        let what = match state {
            watch::Prepared::Measured => "measured".to_owned(),
            watch::Prepared::Reused => "still valid, kept".to_owned(),
            watch::Prepared::Failed(e) => {
                failed = true;
                format!("failed: {e} (the shards scanning its tiles will try again)")
            }
        };
        if json {
            json_line(
                &serde_json::json!({"event": "plan", "time": now(), "site": site, "tiles": tiles,
                "statistics": what}),
            );
        } else {
            say!(
                "plan:      {site} ({}): region statistics {what}",
                plural(*tiles, "tile", "tiles")
            );
        }
    }
    if prepared.is_empty() && !json {
        say!("plan:      no site is scanned in tiles: nothing to measure");
    }
    ExitCode::from(if failed { watch::exit::REFUSED } else { watch::exit::OK })
}

/// `run --shard I/N`: scans the shard's sites and tiles and records them; exit 4 when one failed
/// or was refused (recorded for the gather).
fn run_one_shard(
    list: &watch::WatchList,
    shard: Shard,
    options: &RunOptions,
    progress: &SiteLines,
    json: bool,
) -> Result<ExitCode, compound_watch::Error> {
    let (path, sites, tiles) = watch::shard::run_shard(list, shard, options, progress)?;
    if json {
        json_line(
            &serde_json::json!({"event": "shard", "time": now(), "index": shard.index,
            "count": shard.count, "record": path, "sites": sites.len(), "tiles": tiles.len()}),
        );
    } else {
        say!(
            "shard:     {}/{} scanned {} and {}; recorded in {} (gather with --gather)",
            shard.index,
            shard.count,
            plural(sites.len(), "site", "sites"),
            plural(tiles.len(), "tile", "tiles"),
            path.display()
        );
    }
    let failed = sites
        .iter()
        .chain(tiles.iter().map(|t| &t.record))
        .any(|s| s.status != Status::Published);
    Ok(ExitCode::from(if failed {
        watch::exit::REFUSED
    } else {
        watch::exit::OK
    }))
}

fn run_watch(args: RunArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let mut list = watch::load(&args.watchlist, chrono::Utc::now().date_naive())?;
    if let Some(out) = &args.out {
        list.out.clone_from(out);
    }
    if let Some(source) = &args.source {
        list.set_source(source);
    }
    list.set_period(args.from, args.to)?;
    if let Some(jobs) = args.jobs {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build_global();
    }
    let options = RunOptions {
        cache: args
            .cache
            .clone()
            .or_else(|| list.cache.clone())
            .unwrap_or_else(default_cache),
        parallel: args.parallel.unwrap_or(list.parallel).max(1),
        memory_mb: args.memory.or(list.memory_mb),
        timeout_secs: args.timeout,
    };
    let progress = SiteLines {
        talk,
        json: args.json,
        stages: Mutex::default(),
    };
    if args.plan {
        return Ok(plan_regions(&list, &options, &progress, args.json));
    }
    if let Some(shard) = args.shard {
        return run_one_shard(&list, shard, &options, &progress, args.json);
    }
    let report = if args.gather {
        watch::shard::gather(&list, &options, &progress)?
    } else {
        watch::run(&list, &options, &progress)?
    };
    let r = &report.record;
    if args.json {
        json_line(&serde_json::json!({"event": "run", "time": now(), "run": r}));
        return Ok(ExitCode::from(r.exit_code(args.exit_code)));
    }
    let count = |status| r.sites.iter().filter(|s| s.status == status).count();
    say!(
        "run:       {} ({}: {} published, {} refused, {} failed) in {} s",
        list.out.join("run.json").display(),
        plural(r.sites.len(), "site", "sites"),
        count(Status::Published),
        count(Status::Refused),
        count(Status::Failed),
        r.duration_s
    );
    say!(
        "alerts:    {} new ({})",
        report.alerts.len(),
        list.out.join("alerts.md").display()
    );
    if let Some(d) = &r.webhook {
        say!("webhook:   {}", d.summary());
    }
    Ok(ExitCode::from(r.exit_code(args.exit_code)))
}

fn run_evidence(args: EvidenceArgs, _talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let cache = Cache::new(args.cache.unwrap_or_else(default_cache));
    let bundle = compound_watch::evidence::write(&args.out, &cache, &args.dir)?;
    say!(
        "bundle:    {} ({} outputs, {} input windows, {} STAC items; {} files in {})",
        bundle.dir.display(),
        bundle.outputs,
        bundle.windows,
        bundle.items,
        bundle.files,
        compound_watch::evidence::MANIFEST
    );
    if args.zip {
        let mut name = args.dir.clone().into_os_string();
        name.push(".zip");
        let zip = PathBuf::from(name);
        let n = compound_watch::evidence::pack(&args.dir, &zip)?;
        say!("zip:       {} ({n} files)", zip.display());
    }
    say!("check it:  compound-watch verify {}", args.dir.display());
    Ok(ExitCode::SUCCESS)
}

fn run_verify(args: VerifyArgs, _talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    use compound_watch::evidence::Verdict;
    match compound_watch::evidence::verify(&args.dir)? {
        Verdict::Confirmed {
            files,
            windows,
            polygons,
            compared,
        } => {
            say!("manifest:  {files} files match {}", compound_watch::evidence::MANIFEST);
            say!("re-run:    offline, from {windows} input windows of the bundle");
            say!(
                "confirmed: {} identical, byte for byte ({polygons} polygons)",
                compared.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Tampered(problems) => {
            for p in &problems {
                eprintln!("compound-watch: verify: {p}");
            }
            let files = compound_watch::plural(problems.len(), "file", "files");
            let verb = if problems.len() == 1 { "differs" } else { "differ" };
            eprintln!(
                "compound-watch: verify: {files} of {} {verb} from its manifest; nothing was run",
                args.dir.display()
            );
            Ok(ExitCode::from(3))
        }
        Verdict::Differs(differences) => {
            for d in &differences {
                eprintln!("compound-watch: verify: the re-run differs: {d}");
            }
            Ok(ExitCode::from(4))
        }
    }
}

fn run_export(args: ExportArgs, _talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let _lock = compound_watch::state::lock(&args.out)?;
    for w in compound_watch::vector::export(&args.out, &args.format)? {
        let lists = if w.lists {
            "lists as StringList"
        } else {
            "lists joined with \";\""
        };
        say!("written:   {} ({lists})", w.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_sample(args: SampleArgs, talk: Talk) -> Result<ExitCode, compound_watch::Error> {
    let default = SampleSpec::default();
    let spec = SampleSpec {
        seed: args.seed,
        scenario: args.scenario,
        bbox: args.bbox.unwrap_or(default.bbox),
        first: args.first.unwrap_or(default.first),
        last: args.last.unwrap_or(default.last),
        revisit_days: args.revisit_days.unwrap_or(default.revisit_days),
    };
    if spec.last < spec.first {
        return Err(compound_watch::Error::Config {
            field: "--last".into(),
            reason: format!("{} is before --first {}; give a later date", spec.last, spec.first),
        });
    }
    if talk.verbose {
        eprintln!(
            "compound-watch: {} sample: {} (seed {}), box {:?}, {} to {} every {} days",
            stamp(),
            spec.scenario,
            spec.seed,
            spec.bbox,
            spec.first,
            spec.last,
            spec.revisit_days
        );
    }
    let summary = sample::generate(&args.out, &spec)?;
    if talk.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "sample:    {} (SYNTHETIC: {}, {})",
        summary.catalog.display(),
        plural(summary.scenes, "scene", "scenes"),
        plural(summary.events, "event", "events")
    );
    say!("truth:     {}", summary.truth.display());
    Ok(ExitCode::SUCCESS)
}

fn finite(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text} is not a finite number"))
    }
}

fn positive(text: &str) -> Result<f64, String> {
    finite(text).and_then(|v| {
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be above 0"))
        }
    })
}

fn non_negative(text: &str) -> Result<f64, String> {
    finite(text).and_then(|v| {
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must not be negative"))
        }
    })
}

fn percent(text: &str) -> Result<f64, String> {
    finite(text).and_then(|v| {
        if (0.0..=100.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not a percentage (0-100)"))
        }
    })
}

fn share(text: &str) -> Result<f64, String> {
    finite(text).and_then(|v| {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not a share (0-1)"))
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    let talk = Talk {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let outcome = match cli.command {
        Command::Scan(args) => run_scan(*args, talk),
        Command::Sample(args) => run_sample(args, talk),
        Command::Cache(args) => run_cache(args, talk),
        Command::Eval(args) => run_eval(args, talk),
        Command::Summary(args) => run_summary(args, talk),
        Command::Diff(args) => run_diff(args, talk),
        Command::Run(args) => run_watch(args, talk),
        Command::Evidence(args) => run_evidence(args, talk),
        Command::Verify(args) => run_verify(args, talk),
        Command::Export(args) => run_export(args, talk),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("compound-watch: error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Panics on a flag id in `scan_flag_defaults` that `ScanArgs` lacks, or a clap misuse.
        cli_command().debug_assert();
    }

    #[test]
    fn max_aoi_km2_shows_the_one_default_of_both_limits_it_sets() {
        // --max-aoi-km2 sets the AOI's area limit and the scan's grid limit; its help shows one
        // default, true only while the two agree.
        assert_eq!(AoiLimits::default().max_area_km2, scan_defaults().max_grid_km2);
    }

    #[test]
    fn every_scenario_parses_from_its_name() {
        for scenario in Scenario::ALL {
            let cli = Cli::try_parse_from(["compound-watch", "sample", "--scenario", scenario.name()]).unwrap();
            assert!(matches!(cli.command, Command::Sample(SampleArgs { scenario: s, .. }) if s == scenario));
        }
        assert!(Cli::try_parse_from(["compound-watch", "sample", "--scenario", "nope"]).is_err());
    }
}

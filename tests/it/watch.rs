//! `compound-watch run`: watch lists over the generated sample, alerts once per polygon, webhooks
//! on loopback (one that fails), shards and their gather, and the real Slurm cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::common::server::{Reply, Server};
use crate::common::{read_json, root, sample_dir, skip_or_fail};

/// Three small sites over the sample, with events before and after mid-2022.
const SITES: &str = r#"
[[site]]
name = "north"
bbox = [98.515, 16.700, 98.530, 16.709]

[[site]]
name = "centre"
bbox = [98.518, 16.684, 98.527, 16.692]

[[site]]
name = "south"
bbox = [98.518, 16.670, 98.530, 16.676]
"#;

/// The three sites of [`SITES`], `north` cut into 4 tiles (of 0.8 km² of its 1.6 km² grid), so that
/// shards share out a site's tiles as well as whole sites.
fn sharded_sites() -> String {
    let north = "bbox = [98.515, 16.700, 98.530, 16.709]\n";
    assert!(SITES.contains(north));
    SITES.replacen(north, &format!("{north}tile_km2 = 0.8\n"), 1)
}

/// The window cache every test here shares: the sites are the same, so only the first test to run
/// reads the sample's files (the cache is safe across threads and processes).
fn cache() -> PathBuf {
    root().join("target/test-watch-cache")
}

/// Writes a watch list into `dir` whose sites are `sites`, writing under `dir/out`.
fn watch_list(dir: &Path, name: &str, extra: &str, sites: &str) -> PathBuf {
    let text = format!(
        "source = {:?}\nfrom = \"2021-07\"\nto = \"2023-06\"\nout = \"out\"\ncache = {:?}\n{extra}\n{sites}",
        sample_dir().join("catalog.json"),
        cache()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(list: &Path, args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run_with_stdout(list, args);
    (code, stderr)
}

/// `run`'s exit code, stdout and stderr.
fn run_with_stdout(list: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("compound-watch")
        .unwrap()
        .arg("run")
        .arg(list)
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// (site, polygon) of every alert in `alerts.json`.
fn alerted(out: &Path) -> BTreeSet<(String, String)> {
    read_json(&out.join("alerts.json"))["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["site"].as_str().unwrap().to_owned(),
                a["polygon"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_run_scans_every_site_records_each_and_alerts_only_on_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "[[site]]\nname = \"missing\"\naoi = \"no/such.geojson\"\n";
    let list = watch_list(dir.path(), "first.toml", "parallel = 2", &format!("{SITES}{broken}"));
    let out = dir.path().join("out");

    // A month in mid-2022: a site whose AOI is missing fails, the three others are published.
    let (code, stderr) = run(&list, &["--to", "2022-06"]);
    assert_eq!(code, 4, "a failed site makes exit 4: {stderr}");
    let record = read_json(&out.join("run.json"));
    let sites = record["sites"].as_array().unwrap();
    let status: Vec<&str> = sites.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(
        status,
        ["published", "published", "published", "failed"],
        "in the list's order"
    );
    assert!(
        sites[3]["reason"].as_str().unwrap().contains("no/such.geojson"),
        "{}",
        sites[3]
    );
    assert_eq!(sites[3]["exit_code"], 1);
    for s in &sites[..3] {
        assert!(s["scenes_used"].as_u64().unwrap() > 10, "{s}");
        assert_eq!(
            s["polygons"]["added"], s["detections"],
            "a first scan adds every polygon: {s}"
        );
        assert!(out.join(s["report"].as_str().unwrap()).is_file());
    }
    let first = alerted(&out);
    assert!(!first.is_empty(), "the sample's sites were built on before mid-2022");
    let added: u64 = sites.iter().map(|s| s["polygons"]["added"].as_u64().unwrap()).sum();
    assert_eq!(first.len() as u64, added, "one alert per added polygon");
    assert!(std::fs::read_to_string(out.join("alerts.md"))
        .unwrap()
        .contains(" ha new"));
    assert!(out.join("run.md").is_file() && out.join("across.md").is_file());

    // A year later, without the broken site: only polygons never alerted are alerted, exit 5.
    let list = watch_list(dir.path(), "second.toml", "parallel = 2", SITES);
    let (code, stderr) = run(&list, &["--to", "2023-06", "--exit-code"]);
    assert_eq!(code, 5, "--exit-code and something new: {stderr}");
    let second = alerted(&out);
    assert!(
        !second.is_empty(),
        "the sample has construction finished after mid-2022"
    );
    assert!(
        first.is_disjoint(&second),
        "alerted twice: {:?}",
        first.intersection(&second)
    );

    // The same period again: nothing new, exit 0 even with --exit-code.
    let (code, stderr) = run(&list, &["--exit-code"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(alerted(&out).is_empty());
    assert_eq!(read_json(&out.join("run.json"))["new_alerts"], 0);
}

#[test]
fn a_watch_list_mistake_names_the_file_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let list = watch_list(
        dir.path(),
        "w.toml",
        "",
        "[[site]]\nname = \"a\"\nbbox = [98.5, 16.7, 98.51]\n",
    );
    let (code, stderr) = run(&list, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("w.toml") && stderr.contains("(syntax)") && stderr.contains("line"),
        "{stderr}"
    );
    let list = watch_list(dir.path(), "w.toml", "", "[[site]]\nname = \"a\"\n");
    let (code, stderr) = run(&list, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("site[0] (a).aoi") && stderr.contains("bbox = [W, S, E, N]"),
        "{stderr}"
    );
}

/// Every line of stdout, each a JSON object.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_prints_one_object_per_line_per_site_and_stage_for_schedulers() {
    let dir = tempfile::tempdir().unwrap();
    let site = "[[site]]\nname = \"south\"\nbbox = [98.518, 16.670, 98.530, 16.676]\n";
    let list = watch_list(dir.path(), "w.toml", "", site);
    let out = Command::cargo_bin("compound-watch")
        .unwrap()
        .arg("run")
        .arg(&list)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out.stdout);
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(events, [("site", "started"), ("site", "finished"), ("run", "")]);
    assert_eq!(lines[1]["record"]["status"], "published");
    assert_eq!(lines[2]["run"]["sites"][0]["name"], "south");
    assert!(lines
        .iter()
        .all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z'))));

    let out = Command::cargo_bin("compound-watch")
        .unwrap()
        .args([
            "scan",
            "--bbox",
            "98.518,16.670,98.530,16.676",
            "--from",
            "2021-07",
            "--to",
            "2023-06",
            "--json",
        ])
        .arg("--source")
        .arg(sample_dir().join("catalog.json"))
        .arg("--out")
        .arg(dir.path().join("scan"))
        .arg("--cache")
        .arg(cache())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out.stdout);
    let stages: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "stage")
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(stages.starts_with(&["search", "fetch"]), "{stages:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "summary");
    assert!(last["summary"]["scenes_used"].as_u64().unwrap() > 100, "{last}");
}

/// A webhook that records the alerts it is sent.
fn hook_server(failing: bool) -> (Server, Arc<Mutex<Vec<Value>>>) {
    let server = Server::start();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    server.route("/hook", move |request, _| {
        seen.lock()
            .unwrap()
            .push(serde_json::from_slice(&request.body).unwrap());
        if failing {
            Reply::Body {
                status: 503,
                content_type: "text/plain",
                body: Arc::new(b"down".to_vec()),
                headers: vec![],
            }
        } else {
            Reply::Body {
                status: 204,
                content_type: "text/plain",
                body: Arc::new(Vec::new()),
                headers: vec![],
            }
        }
    });
    (server, bodies)
}

#[test]
fn a_webhook_that_fails_is_retried_and_its_alerts_go_with_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let site = "[[site]]\nname = \"south\"\nbbox = [98.518, 16.670, 98.530, 16.676]\n";
    let (down, tried) = hook_server(true);
    let alerts = format!(
        "[alerts]\nwebhook = {:?}\ntimeout_seconds = 2\nretries = 2\n",
        down.url("/hook")
    );
    let list = watch_list(dir.path(), "down.toml", &alerts, site);
    let (code, stderr) = run(&list, &[]);
    assert_eq!(code, 0, "a webhook that fails does not fail the run: {stderr}");
    let out = dir.path().join("out");
    let owed = alerted(&out);
    assert!(!owed.is_empty());
    assert_eq!(tried.lock().unwrap().len(), 3, "the first POST and 2 retries");
    let hook = &read_json(&out.join("run.json"))["webhook"];
    assert_eq!(hook["delivered"], false, "{hook}");
    assert!(hook["reason"].as_str().unwrap().contains("503"), "{hook}");

    // The next run finds nothing new, and POSTs what the server did not take.
    let (up, got) = hook_server(false);
    let alerts = format!("[alerts]\nwebhook = {:?}\n", up.url("/hook"));
    let list = watch_list(dir.path(), "up.toml", &alerts, site);
    let (code, stderr) = run(&list, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(alerted(&out).is_empty(), "nothing new in the same period");
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "one POST");
    let posted: BTreeSet<(String, String)> = bodies[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["site"].as_str().unwrap().to_owned(),
                a["polygon"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(posted, owed, "the owed alerts, each once");
    assert_eq!(read_json(&out.join("run.json"))["webhook"]["delivered"], true);

    // Nothing new and nothing owed: no POST at all.
    run(&list, &[]);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert!(read_json(&out.join("run.json"))["webhook"].is_null());
}

/// What a run wrote that must not depend on how it ran: each site's report, diff and summary
/// figures, the alerts, and run.json without times and durations.
fn comparable(out: &Path) -> Vec<(String, Value)> {
    let mut run = read_json(&out.join("run.json"));
    let mut files = Vec::new();
    for site in run["sites"].as_array_mut().unwrap() {
        let name = site["name"].as_str().unwrap().to_owned();
        // A tiled site has no summary page of its own (each tile has one).
        let summary = site["summary"].as_str().map(|_| "summary.json");
        for file in ["report.geojson", "diff.geojson"].into_iter().chain(summary) {
            files.push((format!("{name}/{file}"), read_json(&out.join(&name).join(file))));
        }
        let s = site.as_object_mut().unwrap();
        s.remove("started");
        s.remove("duration_s");
    }
    let r = run.as_object_mut().unwrap();
    for volatile in ["started", "duration_s", "shards", "watchlist"] {
        r.remove(volatile);
    }
    files.push(("run.json".into(), run));
    files.push(("alerts.json".into(), read_json(&out.join("alerts.json"))));
    files
}

/// The three sites (`north` in tiles) run locally, once per test binary: (output root, wall time).
fn local_run() -> &'static (PathBuf, Duration) {
    static RUN: OnceLock<(PathBuf, Duration)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let list = watch_list(&dir, "local.toml", "", &sharded_sites());
        let clock = Instant::now();
        let (code, stderr) = run(&list, &[]);
        assert_eq!(code, 0, "{stderr}");
        (dir.join("out"), clock.elapsed())
    })
}

#[test]
fn shards_gathered_write_what_a_local_run_writes() {
    let (local, _) = local_run();
    let dir = tempfile::tempdir().unwrap();
    let list = watch_list(dir.path(), "sharded.toml", "", &sharded_sites());
    // A gather before every shard has run says which are missing and how to run them.
    run(&list, &["--shard", "1/2"]);
    let (code, stderr) = run(&list, &["--gather"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("shard 0/2") && stderr.contains("--shard 0/2"),
        "{stderr}"
    );
    let (code, stderr) = run(&list, &["--shard", "0/2"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run(&list, &["--gather"]);
    assert_eq!(code, 0, "{stderr}");
    let run_json = read_json(&dir.path().join("out/run.json"));
    assert_eq!(
        (run_json["shards"].as_u64(), run_json["sites"][0]["tiles"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(comparable(&dir.path().join("out")), comparable(local));
}

/// A region-wide site (the sample's AOI in tiles of 2.5 km², as in tests/it/tiles.rs: 12 tiles
/// whose seams cross compounds) and a small site.
fn region_and_small_site() -> String {
    format!(
        "[[site]]\nname = \"region\"\naoi = {:?}\ntile_km2 = 2.5\n\n\
         [[site]]\nname = \"south\"\nbbox = [98.518, 16.670, 98.530, 16.676]\n",
        root().join("aoi/myawaddy.geojson")
    )
}

#[test]
fn tiles_are_shard_units_and_their_shards_gathered_write_what_a_local_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let sites = region_and_small_site();
    for sub in ["local", "sharded"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let clock = Instant::now();
    let local = watch_list(&dir.path().join("local"), "w.toml", "", &sites);
    let (code, stderr) = run(&local, &[]);
    assert_eq!(code, 0, "{stderr}");
    let local_time = clock.elapsed();

    let clock = Instant::now();
    let list = watch_list(&dir.path().join("sharded"), "w.toml", "", &sites);
    let out = dir.path().join("sharded/out");
    // The region's statistics are measured once, up front, and kept for the shards.
    let (code, stdout, stderr) = run_with_stdout(&list, &["--plan"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("region (12 tiles): region statistics measured"),
        "{stdout}"
    );
    assert!(out.join("region/.compound-watch/region.json").is_file());
    let (code, stdout, stderr) = run_with_stdout(&list, &["--plan"]);
    assert!(code == 0 && stdout.contains("still valid"), "{stdout}{stderr}");
    for i in [1, 2] {
        let (code, stderr) = run(&list, &["--shard", &format!("{i}/3")]);
        assert_eq!(code, 0, "{stderr}");
    }
    // A gather before every shard has run names the missing shard, its tiles and the command.
    let (code, stderr) = run(&list, &["--gather"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("shard 0/3 (") && stderr.contains("of site region") && stderr.contains("--shard 0/3`"),
        "{stderr}"
    );
    let (code, stderr) = run(&list, &["--shard", "0/3"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run(&list, &["--gather"]);
    assert_eq!(code, 0, "{stderr}");
    let sharded_time = clock.elapsed();

    // Every shard scanned tiles of the region, every tile once; the small site went to one shard.
    let mut tiles = Vec::new();
    let mut small = 0;
    for i in 0..3 {
        let record = read_json(&out.join(format!(".compound-watch/shards/{i}-of-3.json")));
        let mine: Vec<String> = record["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| format!("{}/{}", t["site"].as_str().unwrap(), t["tile"].as_str().unwrap()))
            .collect();
        assert!(!mine.is_empty(), "shard {i} scanned no tile of the region: {record}");
        tiles.extend(mine);
        small += record["sites"].as_array().unwrap().len();
    }
    tiles.sort();
    let n = tiles.len();
    tiles.dedup();
    assert_eq!((n, tiles.len(), small), (12, 12, 1), "{tiles:?}");

    let run_json = read_json(&out.join("run.json"));
    assert_eq!(
        (run_json["shards"].as_u64(), run_json["sites"][0]["tiles"].as_u64()),
        (Some(3), Some(12))
    );
    let report = read_json(&out.join("region/report.geojson"));
    assert!(
        report["features"].as_array().unwrap().len() >= 10,
        "the sample's AOI holds more compounds: {report}"
    );
    assert_eq!(comparable(&out), comparable(&dir.path().join("local/out")));

    // The gather merges only with the statistics the tiles were scanned with.
    std::fs::remove_file(out.join("region/.compound-watch/region.json")).unwrap();
    let (code, stderr) = run(&list, &["--gather"]);
    assert_eq!(code, 4, "{stderr}");
    let region = &read_json(&out.join("run.json"))["sites"][0];
    assert_eq!(region["status"], "failed");
    assert!(region["reason"].as_str().unwrap().contains("region.json"), "{region}");
    eprintln!(
        "tiles as shard units: local run {:.1} s; plan, 3 shards and the gather {:.1} s",
        local_time.as_secs_f64(),
        sharded_time.as_secs_f64()
    );
}

/// A Slurm cluster this test started: its daemons are stopped when it is dropped.
struct Cluster {
    conf: PathBuf,
    started: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let run = self.conf.parent().unwrap().join("run");
        for pid_file in [
            run.join("slurmd.pid"),
            run.join("slurmctld.pid"),
            "/run/munge/munged.pid".into(),
        ] {
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// Starts the single-node Slurm cluster of `shared/reference/slurm/` (as root), or says why not.
fn slurm_cluster() -> Option<Cluster> {
    let setup = crate::common::shared()?.join("reference/slurm/setup_slurm.sh");
    if !nix_root() {
        skip_or_fail("the Slurm test needs root (it starts munged, slurmctld and slurmd); run make test as root");
        return None;
    }
    if !setup.is_file() {
        skip_or_fail(&format!("{} is missing", setup.display()));
        return None;
    }
    let r = PathBuf::from("/tmp/compound-watch-slurm");
    let conf = r.join("slurm.conf");
    let running = std::process::Command::new("scontrol")
        .arg("ping")
        .env("SLURM_CONF", &conf)
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"));
    if !running {
        let clock = Instant::now();
        let out = std::process::Command::new("bash")
            .arg(&setup)
            .env("R", &r)
            .output()
            .unwrap();
        if !out.status.success() {
            skip_or_fail(&format!(
                "{} failed: {}",
                setup.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
            return None;
        }
        eprintln!("slurm: cluster started in {:.1} s", clock.elapsed().as_secs_f64());
    }
    Some(Cluster {
        conf,
        started: !running,
    })
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn slurm_array_shards_and_gather_write_what_a_local_run_writes() {
    let Some(cluster) = slurm_cluster() else { return };
    let conf = &cluster.conf;
    let (local, local_time) = local_run();
    let shards: usize = std::env::var("COMPOUND_WATCH_SLURM_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let list = watch_list(dir.path(), "slurm.toml", "", &sharded_sites());
    let clock = Instant::now();
    let out = std::process::Command::new(root().join("deploy/slurm/submit.sh"))
        .arg(&list)
        .arg(shards.to_string())
        .current_dir(dir.path())
        .env("SLURM_CONF", conf)
        .env("COMPOUND_WATCH", assert_cmd::cargo::cargo_bin("compound-watch"))
        .env("CPUS_PER_TASK", "1")
        .env("MEM", "1000M")
        .env("GATHER_MEM", "1000M")
        .env("WAIT", "1")
        .output()
        .unwrap();
    let took = clock.elapsed();
    let logs = ["gather.log", "shard-0.log"]
        .map(|f| std::fs::read_to_string(dir.path().join("slurm-logs").join(f)).unwrap_or_default());
    assert!(
        out.status.success(),
        "submit.sh: {}\n{}\nlogs: {logs:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "slurm: {shards} shards and the gather in {:.1} s; the local run took {:.1} s",
        took.as_secs_f64(),
        local_time.as_secs_f64()
    );
    let run_json = read_json(&dir.path().join("out/run.json"));
    assert_eq!(
        (run_json["shards"].as_u64(), run_json["sites"][0]["tiles"].as_u64()),
        (Some(shards as u64), Some(4))
    );
    assert!(
        std::fs::read_to_string(dir.path().join("slurm-logs/plan.log")).is_ok(),
        "submit.sh ran no plan job"
    );
    assert_eq!(comparable(&dir.path().join("out")), comparable(local));
}

//! The testbed's command line: generate a scenario, score a report, or run the suite (generate,
//! scan with the compound-watch binary, score, write RESULTS.md).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use compound_watch_testbed::scene::{self, GENERATOR_VERSION};
use compound_watch_testbed::score::{self, Score};
use compound_watch_testbed::table::{self, Scenario};
use compound_watch_testbed::world::Spec;
use serde_json::Value;

const USAGE: &str = "usage:
  testbed generate --seed N --out DIR
  testbed score --report REPORT.geojson --truth TRUTH.geojson
  testbed run --bin PATH/TO/compound-watch [--splits splits.json] [--work runs] [--results RESULTS.md]
              [--only tuning|held-out] [--jobs N] [--keep-cache] [--commit REV] [--rescore]";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args),
        Some("score") => score_cmd(&args),
        Some("run") => run(&args),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(args: &[String]) -> Result<(), String> {
    let seed: u64 = flag(args, "--seed")
        .and_then(|s| s.parse().ok())
        .ok_or("--seed N is required (a whole number)")?;
    let out = PathBuf::from(flag(args, "--out").ok_or("--out DIR is required")?);
    let g = scene::generate(&out, &Spec::standard(seed)).map_err(|e| e.to_string())?;
    println!(
        "{} scenes; catalog {}; truth {}; aoi {}",
        g.scenes,
        g.catalog.display(),
        g.truth.display(),
        g.aoi.display()
    );
    Ok(())
}

fn score_cmd(args: &[String]) -> Result<(), String> {
    let report = read_json(Path::new(flag(args, "--report").ok_or("--report FILE is required")?))?;
    let truth = read_json(Path::new(flag(args, "--truth").ok_or("--truth FILE is required")?))?;
    let s = score::score(&report, &truth).map_err(|e| e.to_string())?;
    let one = Scenario {
        seed: 0,
        split: "this report".into(),
        score: s,
        scan_seconds: 0.0,
        exit_code: Some(0),
    };
    println!(
        "{}\n{}",
        table::summary(std::slice::from_ref(&one)),
        table::objects(&[one])
    );
    Ok(())
}

/// The scenario of `seed`, generated once into `work`.
fn scenario(work: &Path, seed: u64) -> Result<PathBuf, String> {
    let dir = work.join(format!("scenarios/seed-{seed}-v{GENERATOR_VERSION}"));
    if !dir.join("truth.geojson").is_file() {
        let tmp = work.join(format!("scenarios/.tmp-seed-{seed}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let t = Instant::now();
        scene::generate(&tmp, &Spec::standard(seed)).map_err(|e| e.to_string())?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            // Another run generated the same scenario first: keep that one.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("truth.geojson").is_file() {
                return Err(format!("{}: {e}", dir.display()));
            }
        }
        eprintln!("seed {seed}: generated in {:.0} s", t.elapsed().as_secs_f64());
    }
    Ok(dir)
}

fn git(root: &Path, args: &[&str]) -> String {
    Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn run(args: &[String]) -> Result<(), String> {
    let bin =
        PathBuf::from(flag(args, "--bin").ok_or(
            "--bin PATH is required: the compound-watch binary to measure (e.g. ../target/debug/compound-watch)",
        )?);
    if !bin.is_file() {
        return Err(format!(
            "--bin {}: no such file; build it first (cargo build in the repository root)",
            bin.display()
        ));
    }
    let bin = bin.canonicalize().map_err(|e| format!("{}: {e}", bin.display()))?;
    let splits_path = PathBuf::from(flag(args, "--splits").unwrap_or("splits.json"));
    let splits = read_json(&splits_path)?;
    let work = PathBuf::from(flag(args, "--work").unwrap_or("runs"));
    let results = PathBuf::from(flag(args, "--results").unwrap_or("RESULTS.md"));
    let only = flag(args, "--only");
    let keep_cache = args.iter().any(|a| a == "--keep-cache");
    let rescore = args.iter().any(|a| a == "--rescore");
    let jobs = flag(args, "--jobs");
    let mut scenarios = Vec::new();
    for split in ["tuning", "held-out"] {
        if only.is_some_and(|o| o != split) {
            continue;
        }
        let seeds: Vec<u64> = splits
            .get(split)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: no `{split}` list of seeds", splits_path.display()))?
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        for seed in seeds {
            let dir = scenario(&work, seed)?;
            let out = work.join(format!("scans/seed-{seed}"));
            let cache = work.join(format!("cache/seed-{seed}"));
            let timing = work.join(format!("scans/seed-{seed}.json"));
            let previous = rescore.then(|| read_json(&timing).ok()).flatten();
            let (seconds, exit_code) = if let Some(p) = previous {
                // --rescore: score the report already there, with the timing it was made in.
                (
                    p["scan_seconds"].as_f64().unwrap_or(0.0),
                    p["exit_code"].as_i64().map(|c| c as i32),
                )
            } else {
                let _ = std::fs::remove_dir_all(&out);
                std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
                let mut cmd = Command::new(&bin);
                cmd.args(["scan", "--aoi"])
                    .arg(dir.join("aoi.geojson"))
                    .arg("--source")
                    .arg(dir.join("catalog.json"))
                    .args(["--from", "2021-07", "--to", "2023-12", "--quiet", "--out"])
                    .arg(&out)
                    .arg("--cache")
                    .arg(&cache);
                if let Some(j) = jobs {
                    cmd.args(["--jobs", j]);
                }
                let t = Instant::now();
                let output = cmd
                    .output()
                    .map_err(|e| format!("{}: could not run: {e}", bin.display()))?;
                let seconds = t.elapsed().as_secs_f64();
                let log = [
                    output.stdout.as_slice(),
                    b"\n--- stderr ---\n",
                    output.stderr.as_slice(),
                ]
                .concat();
                let _ = std::fs::write(work.join(format!("scans/seed-{seed}.log")), log);
                if !keep_cache {
                    let _ = std::fs::remove_dir_all(&cache);
                }
                let _ = std::fs::write(
                    &timing,
                    serde_json::json!({"scan_seconds": seconds, "exit_code": output.status.code()}).to_string(),
                );
                (seconds, output.status.code())
            };
            let truth = read_json(&dir.join("truth.geojson"))?;
            let report_path = out.join("report.geojson");
            let report = if report_path.is_file() {
                read_json(&report_path)?
            } else {
                serde_json::json!({"type": "FeatureCollection", "features": []})
            };
            let mut s: Score = score::score(&report, &truth).map_err(|e| format!("{}: {e}", report_path.display()))?;
            let summary_path = out.join("summary.json");
            if summary_path.is_file() {
                s.stability = score::stability(&read_json(&summary_path)?)
                    .map_err(|e| format!("{}: {e}", summary_path.display()))?;
            }
            eprintln!(
                "{split} seed {seed}: scan {:.0} s, exit {:?}, found {}/{}, real {}/{}",
                seconds,
                exit_code,
                s.found(),
                s.reportable(),
                s.real,
                s.detections
            );
            scenarios.push(Scenario {
                seed,
                split: split.to_owned(),
                score: s,
                scan_seconds: seconds,
                exit_code,
            });
        }
    }
    // The binary's repository is two levels above target/debug/; --commit names the revision
    // when the binary measured is elsewhere.
    let root = bin
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let given = flag(args, "--commit");
    let commit = match given {
        Some(c) => c.to_owned(),
        None => git(root, &["rev-parse", "--short", "HEAD"]),
    };
    let dirty = if given.is_some()
        || git(
            root,
            &["status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
        )
        .is_empty()
    {
        ""
    } else {
        " (with uncommitted changes in src/)"
    };
    let subject = git(
        if given.is_some() { Path::new(".") } else { root },
        &["log", "-1", "--format=%s", &commit],
    );
    let commit = if commit.is_empty() {
        "unknown (pass --commit)".to_owned()
    } else {
        commit
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let date = chrono::DateTime::from_timestamp(now, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let text = format!(
        "# compound-watch testbed results\n\n\
         Measured {date} on commit `{commit}`{dirty} ({subject}), binary `{}`, testbed generator v{GENERATOR_VERSION}, \
         scan `--from 2021-07 --to 2023-12` with default settings over each scenario's `aoi.geojson`.\n\n\
         Independent synthetic scenarios (3 km x 3 km, 10 m, July 2021 to December 2023; see README.md). \
         Splits in `splits.json`: **the held-out seeds must never be used to choose any parameter of the detector.** \
         Recall counts construction >= 1,000 m² with a clear view in the period; a detection is real if it overlaps \
         construction by >= 30% of its own area or >= 50% of the object's; date error = month of first_detected minus \
         month of the first clear view.\n\n{}\n## Objects\n\n{}",
        bin.display(),
        table::summary(&scenarios),
        table::objects(&scenarios)
    );
    std::fs::write(&results, text).map_err(|e| format!("{}: {e}", results.display()))?;
    eprintln!("wrote {}", results.display());
    Ok(())
}

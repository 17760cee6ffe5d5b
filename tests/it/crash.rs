//! `kill -9` at random moments of an incremental scan, each followed by a rerun: the outputs must be
//! exactly those of an uninterrupted scan, and no temp file may be left behind.
//!
//! Slow (about 20 scans), so ignored by default; run it with
//! `cargo test --release --test it -- --ignored --nocapture kill_9`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::common::{copy_dir, output_files, root, sample_dir};

fn scan(out: &Path, cache: &Path, to: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_compound-watch"));
    cmd.args(["scan", "--quiet", "--from", "2021-07", "--to", to])
        .arg("--aoi")
        .arg(root().join("aoi/myawaddy.geojson"))
        .arg("--source")
        .arg(sample_dir().join("catalog.json"))
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
#[ignore = "slow: 20 scans killed at random moments and rerun; run with --ignored"]
fn kill_9_at_random_moments_of_an_incremental_scan_then_rerun_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (base, base_cache) = (dir.path().join("base"), dir.path().join("base-cache"));
    assert!(scan(&base, &base_cache, "2023-05").status().unwrap().success());
    // The reference: the same incremental scan (one month more), uninterrupted.
    let (reference, reference_cache) = (dir.path().join("ref"), dir.path().join("ref-cache"));
    copy_dir(&base, &reference);
    copy_dir(&base_cache, &reference_cache);
    let started = Instant::now();
    assert!(scan(&reference, &reference_cache, "2023-06")
        .status()
        .unwrap()
        .success());
    let took = started.elapsed();
    let expected = output_files(&reference);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let mut killed = 0;
    for i in 0..20 {
        let (out, cache) = (
            dir.path().join(format!("run-{i}")),
            dir.path().join(format!("cache-{i}")),
        );
        copy_dir(&base, &out);
        copy_dir(&base_cache, &cache);
        let at = took.mul_f64(rng.gen_range(0.0..1.0));
        let mut child = scan(&out, &cache, "2023-06").spawn().unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        assert!(scan(&out, &cache, "2023-06").status().unwrap().success(), "rerun {i}");
        let got = output_files(&out);
        let temp: Vec<&String> = got
            .keys()
            .filter(|k| k.contains(".tmp") || k.contains("staging/"))
            .collect();
        assert!(temp.is_empty(), "run {i} (killed at {at:?}) left {temp:?}");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "run {i}"
        );
        for (name, bytes) in &expected {
            assert!(
                got[name] == *bytes,
                "run {i} (killed at {at:?} of {took:?}): {name} differs"
            );
        }
        eprintln!("run {i}: killed at {at:?} of {took:?}: identical, no temp file");
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_dir_all(&cache).unwrap();
    }
    assert!(
        killed >= 15,
        "only {killed} of 20 runs were killed before they finished"
    );
}

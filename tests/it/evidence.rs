//! Evidence bundles through the real binary: a fresh bundle of the demo scan verifies offline, a
//! changed byte in an input window is named, a missing window is an error and never a read.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

use crate::common::demo_scan;

fn cli() -> Command {
    Command::cargo_bin("compound-watch").unwrap()
}

/// A bundle of the demo scan in a fresh folder, written by `compound-watch evidence --zip`.
fn bundle(dir: &Path) -> PathBuf {
    let demo = demo_scan();
    let bundle = dir.join("bundle");
    let assert = cli()
        .arg("evidence")
        .arg(demo.dir.join("out"))
        .arg("-o")
        .arg(&bundle)
        .arg("--cache")
        .arg(demo.cache())
        .arg("--zip")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("input windows"), "{stdout}");
    bundle
}

/// The first input window of a bundle, relative to it.
fn first_window(bundle: &Path) -> String {
    let manifest = std::fs::read_to_string(bundle.join("MANIFEST.sha256")).unwrap();
    manifest
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .find(|f| f.starts_with("inputs/"))
        .expect("the manifest lists input windows")
        .to_owned()
}

#[test]
fn a_fresh_bundle_verifies_offline_and_a_changed_byte_of_an_input_window_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    for needed in [
        "outputs/report.geojson",
        "outputs/diff.geojson",
        "outputs/composite.tif",
        "outputs/.compound-watch/items.json",
        "items.json",
        "params.json",
    ] {
        assert!(bundle.join(needed).is_file(), "the bundle lacks {needed}");
    }
    let params = crate::common::read_json(&bundle.join("params.json"));
    assert_eq!(params["version"], env!("CARGO_PKG_VERSION"));
    let items = crate::common::read_json(&bundle.join("items.json"));
    assert_eq!(
        items["features"].as_array().unwrap().len(),
        demo_scan().summary.scenes_used,
        "one item per scene used"
    );
    // The manifest is the one `sha256sum -c` reads.
    if let Ok(out) = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(&bundle)
        .output()
    {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // The zip holds the same files under the bundle's name.
    let zip = zip::ZipArchive::new(std::fs::File::open(dir.path().join("bundle.zip")).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.iter().any(|n| n == "bundle/MANIFEST.sha256"), "{names:?}");
    assert!(names.iter().any(|n| n == "bundle/outputs/report.geojson"), "{names:?}");

    let assert = cli().arg("verify").arg(&bundle).assert().success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    eprintln!("verify, fresh bundle:\n{stdout}");
    assert!(
        stdout
            .contains("confirmed: outputs/report.geojson, outputs/diff.geojson, outputs/demolition.geojson identical"),
        "{stdout}"
    );

    let window = first_window(&bundle);
    let path = bundle.join(&window);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let assert = cli().arg("verify").arg(&bundle).assert().code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    eprintln!("verify, one byte of {window} changed:\n{stderr}");
    assert!(
        stderr.contains(&format!("{window}: checksum differs from the manifest")),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 file of"),
        "only the changed window is named: {stderr}"
    );
}

#[test]
fn a_window_missing_from_a_consistent_bundle_is_an_error_naming_it_not_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let window = first_window(&bundle);
    std::fs::remove_file(bundle.join(&window)).unwrap();
    // A manifest that agrees: the bundle was made without the window, not changed afterwards.
    let manifest = std::fs::read_to_string(bundle.join("MANIFEST.sha256")).unwrap();
    let kept: String = manifest
        .lines()
        .filter(|l| !l.ends_with(&format!("  {window}")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(bundle.join("MANIFEST.sha256"), kept).unwrap();
    let assert = cli().arg("verify").arg(&bundle).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    eprintln!("verify, {window} missing:\n{stderr}");
    assert!(stderr.contains(&window), "names the window: {stderr}");
    assert!(stderr.contains("verify reads nothing from the network"), "{stderr}");
}

#[test]
fn a_bundle_is_written_only_into_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("full");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("x"), "x").unwrap();
    let demo = demo_scan();
    let assert = cli()
        .arg("evidence")
        .arg(demo.dir.join("out"))
        .arg("-o")
        .arg(&target)
        .arg("--cache")
        .arg(demo.cache())
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("is not empty"), "{stderr}");
}

//! The architecture docs/ARCHITECTURE.md describes, checked on the source: which top-level module
//! may name which (`crate::MODULE` paths), no cycle between them, and the leaves left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules of `src/` and the modules each may name. Vocabulary first, then the stages.
const ALLOWED: &[(&str, &[&str])] = &[
    ("month", &[]),
    ("scene", &["month"]),
    ("error", &["scene"]),
    ("aoi", &["error"]),
    ("grid", &["aoi", "error"]),
    ("io", &["error", "grid", "month", "scene"]),
    // `vectorize` polygonizes through the GDAL binding in `io::gdal_ext`, in memory.
    ("detect", &["error", "grid", "io", "month", "scene"]),
    ("output", &["aoi", "detect", "error", "grid", "io", "month", "scene"]),
    (
        "scan",
        &["aoi", "detect", "error", "grid", "io", "month", "output", "scene"],
    ),
    // Many sites: runs `scan` per site, reads what it published (diffs, summaries); cuts regions
    // into tiles on the scan's `grid` and passes the `detect` roof model a watch list names.
    (
        "watch",
        &["aoi", "detect", "error", "grid", "io", "month", "output", "scan"],
    ),
    // Bundles a scan's outputs with their inputs; verifies by running `scan::run` again.
    (
        "evidence",
        &["aoi", "error", "grid", "io", "month", "output", "scan", "scene"],
    ),
    ("sample", &["detect", "error", "grid", "io", "month", "output", "scene"]),
    (
        "eval",
        &["detect", "error", "grid", "io", "month", "output", "sample", "scene"],
    ),
];

/// Every `crate::MODULE` a top-level module names, from its files.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel.iter().next().unwrap().to_str().unwrap().trim_end_matches(".rs");
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    found.entry(top.to_owned()).or_default().insert(name);
                }
            }
        }
    }
    found
}

#[test]
fn each_module_names_only_the_modules_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    for (module, names) in imports() {
        let ok = allowed
            .get(module.as_str())
            .unwrap_or_else(|| panic!("src/{module} is not in ALLOWED: place it in the architecture"));
        for name in names {
            assert!(
                ok.contains(name.as_str()),
                "src/{module} names crate::{name}, which is not below it (see docs/ARCHITECTURE.md)"
            );
        }
    }
}

#[test]
fn the_allowed_graph_has_no_cycle_and_the_pipeline_never_names_sample_or_eval() {
    // ALLOWED is in dependency order: every module names only modules listed before it.
    let order: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (i, (module, deps)) in ALLOWED.iter().enumerate() {
        for dep in *deps {
            let at = order.iter().position(|m| m == dep).unwrap();
            assert!(
                at < i,
                "{module} may name {dep}, which is not before it: a cycle is possible"
            );
        }
    }
    for (module, names) in imports() {
        if module != "eval" {
            assert!(!names.contains("eval"), "src/{module} names eval, a leaf");
        }
        if module != "sample" && module != "eval" {
            assert!(!names.contains("sample"), "src/{module} names sample, a leaf");
        }
    }
}

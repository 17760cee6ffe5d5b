//! A short run of every fuzz target inside `cargo test`: each committed corpus file of
//! `fuzz/corpus/TARGET/`, then `MUTATIONS` seeded mutations of them (bit flips, interesting bytes
//! and numbers, JSON tokens from `fuzz/json.dict`, deletions, duplications, truncations and splices
//! of two corpus files, stacked like afl's havoc stage). Any panic (including a target's own
//! asserts) fails the test with the target's name and the input, which is also saved to
//! `target/fuzz-smoke/TARGET-crash` for `fuzz/target/release/TARGET < FILE`.
//!
//! This is an uninstrumented replay plus blind mutation, not coverage-guided fuzzing: it catches a
//! regression on the corpus's paths and their near neighbours in seconds. The coverage-guided
//! campaigns are `make fuzz-smoke` and `make fuzz` (fuzz/README.md), which need the instrumented
//! build. The targets' bodies are the afl binaries' own, from one file.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::root;

#[path = "../../fuzz/src/targets.rs"]
mod targets;

/// Mutated inputs per target, on top of the corpus.
const MUTATIONS: usize = 20_000;

fn fuzz_dir() -> std::path::PathBuf {
    root().join("fuzz")
}

/// The committed corpus of `target`, by file name (sorted, so runs are repeatable).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// The tokens of an afl dictionary: `"value"` or `name="value"` lines, with `\\`, `\"` and `\xNN`.
fn dictionary(text: &str) -> Vec<Vec<u8>> {
    let mut tokens = vec![];
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (Some(start), Some(end)) = (line.find('"'), line.rfind('"')) else {
            panic!("fuzz/json.dict: {line:?} is not \"value\" or name=\"value\"");
        };
        assert!(start < end, "fuzz/json.dict: {line:?} has no closing quote");
        let quoted = &line.as_bytes()[start + 1..end];
        let mut token = vec![];
        let mut i = 0;
        while i < quoted.len() {
            match (quoted[i], quoted.get(i + 1)) {
                (b'\\', Some(b'x')) => {
                    let hex = std::str::from_utf8(&quoted[i + 2..i + 4]).unwrap();
                    token.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                }
                (b'\\', Some(&c)) => {
                    token.push(c);
                    i += 2;
                }
                (c, _) => {
                    token.push(c);
                    i += 1;
                }
            }
        }
        tokens.push(token);
    }
    tokens
}

/// Bytes that matter to JSON and number parsers.
const BYTES: &[u8] = b"\0\x7f\xff\"\\{}[],:-+.eE0159 \n";

/// Numbers at the edges of what the parsers check (coordinates, areas, months, cloud cover).
const NUMBERS: [&str; 14] = [
    "0",
    "-0",
    "-1",
    "1e308",
    "-1e309",
    "5e-324",
    "180.0000001",
    "-90.5",
    "360",
    "100.1",
    "9223372036854775808",
    "4294967296",
    "0.1e1",
    "1E+2",
];

/// One mutation of `data` (possibly using another corpus file, `other`), and its description.
fn mutate_once(rng: &mut ChaCha8Rng, data: &mut Vec<u8>, other: &[u8], dict: &[Vec<u8>]) -> String {
    let at = |rng: &mut ChaCha8Rng, len: usize| rng.gen_range(0..=len);
    match rng.gen_range(0..9) {
        0 if !data.is_empty() => {
            let (i, bit) = (rng.gen_range(0..data.len()), rng.gen_range(0..8));
            data[i] ^= 1 << bit;
            format!("flip bit {bit} of byte {i}")
        }
        1 if !data.is_empty() => {
            let (i, b) = (rng.gen_range(0..data.len()), *BYTES.choose(rng).unwrap());
            data[i] = b;
            format!("byte {i} := {b:#04x}")
        }
        2 => {
            let (i, token) = (at(rng, data.len()), dict.choose(rng).unwrap());
            data.splice(i..i, token.iter().copied());
            format!("insert {:?} at {i}", String::from_utf8_lossy(token))
        }
        3 if !data.is_empty() => {
            let token = dict.choose(rng).unwrap();
            let i = rng.gen_range(0..data.len());
            let end = (i + token.len()).min(data.len());
            data.splice(i..end, token.iter().copied());
            format!("overwrite at {i} with {:?}", String::from_utf8_lossy(token))
        }
        4 if !data.is_empty() => {
            // Replace one number (a run of digits, signs, dots and exponents) by an edge case.
            let starts: Vec<usize> = (0..data.len())
                .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
                .collect();
            let Some(&i) = starts.choose(rng) else {
                return "no number to replace".into();
            };
            let start = if i > 0 && data[i - 1] == b'-' { i - 1 } else { i };
            let end = (i..data.len())
                .find(|&j| !matches!(data[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                .unwrap_or(data.len());
            let number = NUMBERS.choose(rng).unwrap();
            data.splice(start..end, number.bytes());
            format!("number at {start} := {number}")
        }
        5 if !data.is_empty() => {
            let i = rng.gen_range(0..data.len());
            let n = rng.gen_range(1..=(data.len() - i).min(32));
            data.drain(i..i + n);
            format!("delete {n} bytes at {i}")
        }
        6 if !data.is_empty() => {
            let i = rng.gen_range(0..data.len());
            let n = rng.gen_range(1..=(data.len() - i).min(64));
            let chunk = data[i..i + n].to_vec();
            let to = at(rng, data.len());
            data.splice(to..to, chunk);
            format!("copy {n} bytes from {i} to {to}")
        }
        7 => {
            let n = at(rng, data.len());
            data.truncate(n);
            format!("truncate to {n} bytes")
        }
        8 => {
            let (i, j) = (at(rng, data.len()), at(rng, other.len()));
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
            format!("splice: first {i} bytes, then another file's from {j}")
        }
        _ => "none (empty input)".into(),
    }
}

/// Runs `body` on `data`; a panic fails the test naming `target`, `how` the input was made and the
/// input itself, which is saved for a replay with the afl binary.
fn check(target: &str, body: targets::Target, how: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| body(data))).is_ok() {
        return;
    }
    let dir = root().join("target/fuzz-smoke");
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join(format!("{target}-crash"));
    std::fs::write(&saved, data).unwrap();
    panic!(
        "fuzz target {target} panicked (message above) on {how}: {:?}\nThe input is saved in {}; \
         replay it with fuzz/target/release/{target} < {} after make fuzz-build",
        String::from_utf8_lossy(data),
        saved.display(),
        saved.display()
    );
}

/// The corpus of `target`, then `MUTATIONS` mutated inputs; returns how many inputs ran.
fn smoke(target: &str, body: targets::Target) -> usize {
    let files = corpus(target);
    for (name, data) in &files {
        check(target, body, &format!("corpus/{target}/{name}"), data);
    }
    let dict = dictionary(&std::fs::read_to_string(fuzz_dir().join("json.dict")).unwrap());
    // One seed per target, so that a failure reproduces by running the same test again.
    let seed = target
        .bytes()
        .fold(9u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for n in 0..MUTATIONS {
        let (name, base) = files.choose(&mut rng).unwrap();
        let (_, other) = files.choose(&mut rng).unwrap();
        let mut data = base.clone();
        let mut steps = vec![];
        for _ in 0..rng.gen_range(1..=4) {
            steps.push(mutate_once(&mut rng, &mut data, other, &dict));
        }
        data.truncate(targets::MAX_INPUT);
        let how = format!("mutation {n} of corpus/{target}/{name} ({})", steps.join("; "));
        check(target, body, &how, &data);
    }
    files.len() + MUTATIONS
}

fn run(target: &str) {
    let (_, body) = targets::ALL.into_iter().find(|(t, _)| *t == target).unwrap();
    let started = std::time::Instant::now();
    let inputs = smoke(target, body);
    eprintln!(
        "fuzz smoke {target}: {inputs} inputs in {:?}, no panic",
        started.elapsed()
    );
}

#[test]
fn aoi() {
    run("aoi");
}

#[test]
fn bbox() {
    run("bbox");
}

#[test]
fn stac_item() {
    run("stac_item");
}

#[test]
fn item_collection() {
    run("item_collection");
}

#[test]
fn report() {
    run("report");
}

#[test]
fn state() {
    run("state");
}

#[test]
fn every_target_has_a_corpus_and_a_test_and_every_corpus_a_target() {
    let mut folders: Vec<String> = std::fs::read_dir(fuzz_dir().join("corpus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut names: Vec<String> = targets::ALL.iter().map(|(t, _)| t.to_string()).collect();
    names.sort();
    assert_eq!(folders, names);
    let this = std::fs::read_to_string(root().join("tests/it/fuzz_smoke.rs")).unwrap();
    for name in &names {
        assert!(this.contains(&format!("run(\"{name}\")")), "no test runs {name}");
        let bin = fuzz_dir().join(format!("src/bin/{name}.rs"));
        let text = std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            text.contains(&format!("targets::{name}(")),
            "{} does not call targets::{name}",
            bin.display()
        );
    }
}

#[test]
fn a_panicking_target_fails_the_smoke_run_naming_it_and_saving_the_input() {
    fn fragile(data: &[u8]) {
        assert!(!data.windows(4).any(|w| w == b"null"), "found null");
    }
    check("self-test", fragile, "a fine input", b"{}");
    let failed = catch_unwind(|| check("self-test", fragile, "a test input", b"[null]")).unwrap_err();
    let message = failed.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("fuzz target self-test panicked (message above) on a test input: \"[null]\""),
        "{message}"
    );
    let saved = root().join("target/fuzz-smoke/self-test-crash");
    assert_eq!(std::fs::read(&saved).unwrap(), b"[null]");
    std::fs::remove_file(saved).unwrap();
}

//! A full disk during a scan, under `--out` and, separately, under `--cache`: the scan must fail
//! with exit 1 (not 0 or 3, which a scheduler reads as success), name the folder that is full, and
//! leave every previous output byte for byte as it was, with no temp or staging file left behind.
//!
//! The full disk is real: a small tmpfs mounted in an unprivileged user and mount namespace
//! (`unshare --user --map-root-user --mount`, util-linux), filled up to a few KiB, so the scan meets
//! ENOSPC wherever it writes. This works as root and as an ordinary user; where the kernel or a
//! container refuses user namespaces, the tests are skipped (failed under CI, see `skip_or_fail`).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{copy_dir, demo_scan, output_files, skip_or_fail};
use crate::refuse::{good_output, scan_args};

/// Runs in the namespace: mounts a tmpfs of `size_kib` on `mnt`, copies `seed` (if any) to
/// `mnt/out`, fills the disk until `free_kib` are left, runs the command, then copies what is on
/// the disk (but the filler) to `back` and exits with the command's code. Setup failures exit 120+.
const IN_A_SMALL_DISK: &str = r#"
set -u
mnt=$1 size=$2 free=$3 seed=$4 back=$5
shift 5
mount -t tmpfs -o "size=${size}k,mode=0755" tmpfs "$mnt" || exit 120
if [ -n "$seed" ]; then cp -a "$seed" "$mnt/out" || exit 121; fi
avail=$(df -Pk "$mnt" | awk 'NR == 2 { print $4 }')
if [ "$avail" -gt "$free" ]; then
  dd if=/dev/zero of="$mnt/filler" bs=1024 count=$((avail - free)) 2>/dev/null
fi
echo "disk: $(df -Pk "$mnt" | awk 'NR == 2 { print $4 }') KiB free before the scan" >&2
"$@"
code=$?
rm -f "$mnt/filler"
cp -a "$mnt/." "$back" || exit 122
exit $code
"#;

fn unshare() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"]);
    cmd
}

/// Whether this machine lets an unprivileged process mount a tmpfs in its own namespaces; if not,
/// skips (or fails under CI) with the reason.
fn small_disks_work() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let probe = unshare()
        .args([r#"mount -t tmpfs -o size=64k tmpfs "$1""#, "sh"])
        .arg(dir.path())
        .output();
    let reason = match probe {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(e) => format!("unshare: {e}"),
    };
    skip_or_fail(&format!(
        "a full disk is simulated with a tmpfs in an unprivileged user namespace \
         (unshare --user --map-root-user --mount, util-linux), which this machine refuses: {reason}"
    ));
    false
}

fn size_kib(dir: &Path) -> u64 {
    output_files(dir).values().map(|b| b.len() as u64 / 1024 + 4).sum()
}

/// Runs the scan `args` in a namespace whose `mnt` is a tmpfs with `free_kib` left after `seed`
/// is copied to `mnt/out`; the disk's content ends up in `back`.
fn scan_on_a_small_disk(mnt: &Path, seed: Option<&Path>, free_kib: u64, args: &[String], back: &Path) -> Output {
    std::fs::create_dir_all(mnt).unwrap();
    let size = seed.map_or(0, size_kib) + free_kib + 1024;
    let output = unshare()
        .args([IN_A_SMALL_DISK, "sh"])
        .arg(mnt)
        .args([size.to_string(), free_kib.to_string()])
        .arg(seed.map_or(Path::new(""), |p| p))
        .arg(back)
        .arg(env!("CARGO_BIN_EXE_compound-watch"))
        .args(args)
        .output()
        .unwrap();
    let code = output.status.code();
    assert!(
        !matches!(code, Some(120..=122)),
        "setting up the small disk failed ({code:?}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_failed_naming(output: &Output, folder: &Path, case: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{case}: exit {:?}\n{stderr}", output.status.code());
    assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
    assert!(
        stderr.contains(&folder.display().to_string()),
        "{case}: the message does not name {}:\n{stderr}",
        folder.display()
    );
}

fn assert_unchanged(before: &Path, after: &Path, case: &str) {
    let (before, after) = (output_files(before), output_files(after));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{case}: files were added or removed"
    );
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "{case}: {name} changed");
    }
}

#[test]
fn a_full_disk_under_out_fails_the_scan_and_keeps_the_previous_outputs() {
    if !small_disks_work() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let previous = good_output(d.path());
    let total = size_kib(&previous);
    // Full at once, and full part-way through writing the new set (as the previous one, with the
    // monthly composites: most of it, written during detection, then the composite).
    for free in [0, 64, total / 4, total * 3 / 4] {
        let case = format!("--out on a disk with {free} KiB free");
        let (mnt, back) = (
            d.path().join(format!("disk-{free}")),
            d.path().join(format!("back-{free}")),
        );
        let out = mnt.join("out");
        let mut args = scan_args(&out, &demo_scan().cache(), &[]);
        args.push("--months".into());
        let output = scan_on_a_small_disk(&mnt, Some(&previous), free, &args, &back);
        assert_failed_naming(&output, &out, &case);
        assert_unchanged(&previous, &back.join("out"), &case);
    }
}

#[test]
fn a_full_disk_under_cache_fails_the_scan_and_keeps_the_previous_outputs() {
    if !small_disks_work() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = good_output(d.path());
    let before = d.path().join("before");
    copy_dir(&out, &before);
    // An empty cache on a full disk, then one with room for a few windows: the scan reads the
    // scenes' pixels and cannot keep them.
    for free in [0, 2048] {
        let case = format!("--cache on a disk with {free} KiB free");
        let (mnt, back) = (
            d.path().join(format!("disk-{free}")),
            d.path().join(format!("back-{free}")),
        );
        let cache = mnt.join("cache");
        let args = scan_args(&out, &cache, &[]);
        let output = scan_on_a_small_disk(&mnt, None, free, &args, &back);
        assert_failed_naming(&output, &cache, &case);
        assert_unchanged(&before, &out, &case);
        let temp: Vec<String> = output_files(&back).into_keys().filter(|k| k.contains(".tmp")).collect();
        assert!(temp.is_empty(), "{case}: temp files left in the cache: {temp:?}");
    }
}

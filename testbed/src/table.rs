//! Markdown tables of scored scenarios: one row per scenario, pooled rows per split, recall by
//! kind, material and hard-case tag, and one row per object.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::score::Score;

/// One scenario's measurement.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its seed.
    pub seed: u64,
    /// "tuning" or "held-out".
    pub split: String,
    /// The score (empty if the scan failed).
    pub score: Score,
    /// Seconds the scan took.
    pub scan_seconds: f64,
    /// The scan's exit code.
    pub exit_code: Option<i32>,
}

fn ratio(a: usize, b: usize) -> String {
    if b == 0 {
        format!("{a}/{b}")
    } else {
        format!("{a}/{b} = {:.2}", a as f64 / b as f64)
    }
}

fn median(v: &[i32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    format!("{m:+}")
}

fn within(v: &[i32]) -> String {
    let k = v.iter().filter(|e| e.abs() <= 1).count();
    ratio(k, v.len())
}

fn row(out: &mut String, name: &str, s: &Score, seconds: Option<f64>, exit: Option<Option<i32>>) {
    let errs = s.date_errors();
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        ratio(s.found(), s.reportable()),
        ratio(s.real, s.detections),
        ratio(s.real - s.provisional_real, s.detections - s.provisional),
        s.false_on_change,
        s.false_beside_construction,
        s.false_elsewhere,
        median(&errs),
        within(&errs),
        seconds.map(|t| format!("{t:.0}")).unwrap_or_else(|| "-".into()),
        match exit {
            Some(Some(c)) => c.to_string(),
            Some(None) => "killed".into(),
            None => "".into(),
        }
    );
}

/// The scenario and pooled tables, split by split.
pub fn summary(scenarios: &[Scenario]) -> String {
    let mut out = String::new();
    let mut splits: Vec<&str> = scenarios.iter().map(|s| s.split.as_str()).collect();
    splits.dedup();
    for split in splits {
        let _ = writeln!(out, "### {split}\n");
        let _ = writeln!(
            out,
            "| scenario | recall (found / reportable) | precision (real / detections) | precision, confirmed only | false polygons on non-construction change | false polygons beside construction (pad, yard) | other false polygons | median date error (months) | dated within +-1 month | scan s | exit |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        let mut pooled = Score::default();
        let mut seconds = 0.0;
        for s in scenarios.iter().filter(|s| s.split == split) {
            row(
                &mut out,
                &format!("seed {}", s.seed),
                &s.score,
                Some(s.scan_seconds),
                Some(s.exit_code),
            );
            pooled.absorb(&s.score);
            seconds += s.scan_seconds;
        }
        row(&mut out, &format!("**pooled {split}**"), &pooled, Some(seconds), None);
        let st = &pooled.stability;
        let _ = writeln!(
            out,
            "\nStable built-up estimate (`builtup_ha` of each scan's summary.json): {}/{} month-to-month moves beyond that month's confirmed construction and demolition (+{:.0} % +{} ha); largest move {:.2} ha, largest excess {:.2} ha. The raw single-month measurement (`builtup_measured_ha`) moved by up to {:.2} ha between measured months.",
            st.beyond,
            st.pairs,
            crate::score::STABILITY_TOLERANCE.0 * 100.0,
            crate::score::STABILITY_TOLERANCE.1,
            st.largest_move_ha,
            st.largest_excess_ha,
            st.largest_measured_move_ha,
        );
        let _ = writeln!(out);
        out.push_str(&breakdown(&pooled));
        let _ = writeln!(out);
    }
    out
}

/// Recall and dating of reportable objects by kind, material and tag.
pub fn breakdown(s: &Score) -> String {
    let mut groups: BTreeMap<String, (usize, usize, Vec<i32>)> = BTreeMap::new();
    for o in s.objects.iter().filter(|o| o.reportable) {
        let mut keys = vec![format!("kind: {}", o.kind), format!("material: {}", o.material)];
        keys.extend(o.tags.iter().map(|t| format!("tag: {t}")));
        for k in keys {
            let g = groups.entry(k).or_default();
            g.1 += 1;
            if o.found {
                g.0 += 1;
            }
            g.2.extend(o.date_error);
        }
    }
    let mut out =
        String::from("| group | found / reportable | median date error | within +-1 month |\n|---|---|---|---|\n");
    for (k, (f, n, e)) in groups {
        let _ = writeln!(out, "| {k} | {} | {} | {} |", ratio(f, n), median(&e), within(&e));
    }
    let mut changes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for o in s.objects.iter().filter(|o| !o.construction) {
        let c = changes.entry(o.kind.clone()).or_default();
        c.0 += o.hits;
        c.1 += 1;
    }
    let small: Vec<_> = s.objects.iter().filter(|o| o.construction && !o.reportable).collect();
    let _ = writeln!(
        out,
        "\nNon-construction change (false polygons / objects): {}. Small buildings (< 1,000 m², not reportable) with a detection on them: {}/{}.",
        changes.iter().map(|(k, (h, n))| format!("{k} {h}/{n}")).collect::<Vec<_>>().join(", "),
        small.iter().filter(|o| o.found).count(),
        small.len()
    );
    out
}

/// One row per object.
pub fn objects(scenarios: &[Scenario]) -> String {
    let mut out = String::from(
        "| split | seed | object | kind | material | tags | area m² | reportable | first clear view | first detected | found | date error (months) | detections on it |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in scenarios {
        for o in &s.score.objects {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                s.split,
                s.seed,
                o.id,
                o.kind,
                o.material,
                o.tags.join(" "),
                o.area_m2,
                if o.reportable { "yes" } else { "no" },
                o.first_clear_view.as_deref().unwrap_or("-"),
                o.first_detected.as_deref().unwrap_or("-"),
                if !o.construction {
                    "-"
                } else if o.found {
                    "yes"
                } else {
                    "**no**"
                },
                o.date_error.map(|e| format!("{e:+}")).unwrap_or_else(|| "-".into()),
                o.hits,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_shares_within_a_month() {
        assert_eq!(median(&[3, -1, 0]), "+0");
        assert_eq!(median(&[1, 4]), "+2.5");
        assert_eq!(median(&[]), "-");
        assert_eq!(within(&[3, -1, 0, 2]), "2/4 = 0.50");
    }
}

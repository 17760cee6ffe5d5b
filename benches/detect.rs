//! Throughput of the two CPU-bound stages on a seeded synthetic stack, no I/O:
//! - `composite+score`: monthly per-pixel medians of 6 bands over the month's scenes (cloudy
//!   pixels masked) and the built-up score of each composite pixel;
//! - `step`: the persistent-step search over each pixel's monthly series;
//! - `spectral-step`: the change stage's per-pixel search over 4-band monthly series;
//! - `regions`: the change stage's 3 x 3 median, 5 x 5 mean and hysteresis over the magnitude map (elements =
//!   pixels x months here too, so the figures add up per pixel-month).
//!
//! Throughput is in elements = pixels x months, so "Melem/s" reads as megapixel-months per second.
//! Scale it with PIXELS (default 256x256 = 65,536), MONTHS (24) and SCENES (scenes a month, 6):
//! `PIXELS=1000000 cargo bench --bench detect`. Runs on one thread, like one rayon worker.

#![allow(missing_docs)]

use compound_watch::detect::{
    changed_regions, monthly_median, scores, spectral_step, step, DetectParams, Normalization, RoofModel,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench(c: &mut Criterion) {
    let (pixels, months, scenes) = (env("PIXELS", 65_536), env("MONTHS", 24), env("SCENES", 6));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // One month's stack: vegetation-like reflectance with noise, 30% of observations cloudy.
    let obs: Vec<Array2<f32>> = (0..scenes)
        .map(|_| {
            Array2::from_shape_fn((6, pixels), |(b, _)| {
                [0.03, 0.06, 0.04, 0.3, 0.17, 0.08][b] + rng.gen_range(0.0..0.2)
            })
        })
        .collect();
    let clear: Vec<Array1<bool>> = (0..scenes)
        .map(|_| Array1::from_shape_fn(pixels, |_| rng.gen_bool(0.7)))
        .collect();
    let series: Vec<Vec<f32>> = (0..pixels)
        .map(|_| {
            let t = rng.gen_range(0..months);
            (0..months)
                .map(|m| if rng.gen_bool(0.25) { f32::NAN } else if m >= t { 0.8 } else { 0.1 } + rng.gen_range(-0.1..0.1))
                .collect()
        })
        .collect();

    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Elements((pixels * months) as u64));
    group.bench_function("composite+score", |b| {
        let views: Vec<_> = obs.iter().map(|o| o.view()).collect();
        let masks: Vec<_> = clear.iter().map(|m| m.view()).collect();
        b.iter(|| {
            (0..months)
                .map(|_| {
                    scores(
                        monthly_median(&views, &masks, 6, pixels, 1).bands.view(),
                        RoofModel::default(),
                    )
                    .len()
                })
                .sum::<usize>()
        })
    });
    group.bench_function("step", |b| {
        let p = DetectParams::default();
        b.iter(|| series.iter().filter(|s| step(s, &p).is_some()).count())
    });
    let spectra: Vec<Vec<[f32; 4]>> = series
        .iter()
        .map(|s| s.iter().map(|&v| [v * 0.2, v * 0.2, v * 0.2, 0.3 - v * 0.1]).collect())
        .collect();
    let norm = Normalization {
        shift: vec![[0.0; 4]; months],
        spread: Some([0.01; 4]),
    };
    group.bench_function("spectral-step", |b| {
        let p = DetectParams::default();
        b.iter(|| spectra.iter().filter(|s| spectral_step(s, &norm, &p).is_some()).count())
    });
    let side = (pixels as f64).sqrt() as usize;
    let magnitude: Vec<f32> = (0..side * side).map(|_| rng.gen_range(0.0..6.0)).collect();
    group.bench_function("regions", |b| {
        let p = DetectParams::default();
        b.iter(|| changed_regions(&magnitude, side, side, &p).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

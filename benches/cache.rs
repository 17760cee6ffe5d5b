//! The window cache, the input of every block: storing a window and reading a block of rows back,
//! against decoding the same window from the deflate-compressed TIFF strips the cache used to hold
//! (what a scan paid before: 35% of a warm scan was inflating them).
//!
//! Throughput is in elements = pixels read, so "Melem/s" reads as megapixels per second. The window
//! is a noisy reflectance-like band, as compressible as real ones; WIDTH (default 300) sets its
//! side: `WIDTH=1200 cargo bench --bench cache`.

#![allow(missing_docs)]

use std::io::Cursor;

use compound_watch::source::{Band, Scene};
use compound_watch::{Cache, Grid};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{colortype, compression::DeflateLevel, Compression, TiffEncoder};

fn bench(c: &mut Criterion) {
    let side: usize = std::env::var("WIDTH").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let grid = Grid {
        epsg: 32647,
        x0: 500_000.0,
        y0: 1_850_000.0,
        width: side,
        height: side,
        res: 10.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Smooth fields with sensor noise: neither constant (too easy to compress) nor white noise.
    let window: Vec<u16> = (0..grid.len())
        .map(|p| (1200 + (p % side) * 3 + (p / side) * 2 + rng.gen_range(0..120)) as u16)
        .collect();
    let scene = Scene {
        id: "S2B_47PMS_20220301_0_L2A".into(),
        collection: "sentinel-2-l2a".into(),
        datetime: "2022-03-01T03:50:00Z".parse().expect("a time"),
        cloud_cover: None,
        processing_baseline: None,
        boa_offset_applied: None,
        synthetic: true,
        epsg: Some(32647),
        tile: None,
        hrefs: [(Band::Red, "bench/red.tif".to_owned())].into_iter().collect(),
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let cache = Cache::new(dir.path());
    let entry = cache.entry(&scene, Band::Red, &grid);
    cache.store(&entry, &scene, Band::Red, &grid, &window).expect("stored");
    let deflate = deflate_tiff(&window, side);
    let on_disk = std::fs::metadata(&entry).expect("written").len();
    eprintln!(
        "window {side} x {side}: cache entry {} kB on disk, deflate TIFF {} kB ({:.2}x smaller)",
        on_disk / 1000,
        deflate.len() / 1000,
        on_disk as f64 / deflate.len() as f64
    );

    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(grid.len() as u64));
    group.bench_function("store", |b| {
        b.iter(|| cache.store(&entry, &scene, Band::Red, &grid, &window).expect("stored"))
    });
    group.bench_function("read all rows", |b| {
        b.iter(|| Cache::read_rows(&entry, &grid, 0..side).expect("read"))
    });
    group.bench_function("check (holds)", |b| {
        b.iter(|| assert!(cache.holds(&entry, &scene, Band::Red, &grid)))
    });
    group.bench_function("decode deflate TIFF (before)", |b| {
        b.iter(
            || match Decoder::new(Cursor::new(&deflate)).and_then(|mut d| d.read_image()) {
                Ok(DecodingResult::U16(v)) => v,
                other => panic!("not a 16-bit image: {other:?}"),
            },
        )
    });
    group.finish();
    // A block of rows, as a scan reads it: throughput per pixel of the block.
    let rows = 40.min(side);
    let mut group = c.benchmark_group("cache block");
    group.throughput(Throughput::Elements((rows * side) as u64));
    group.bench_function("read a block of rows", |b| {
        b.iter(|| Cache::read_rows(&entry, &grid, side / 2 - rows / 2..side / 2 + rows / 2).expect("read"))
    });
    group.finish();
}

/// The window as the cache's first format stored it: deflate (fast level), 16-row strips.
fn deflate_tiff(window: &[u16], side: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = TiffEncoder::new(Cursor::new(&mut bytes))
        .expect("an encoder")
        .with_compression(Compression::Deflate(DeflateLevel::Fast));
    let mut image = encoder
        .new_image::<colortype::Gray16>(side as u32, side as u32)
        .expect("an image");
    image.rows_per_strip(16).expect("strips");
    image.write_data(window).expect("written");
    bytes
}

criterion_group!(benches, bench);
criterion_main!(benches);

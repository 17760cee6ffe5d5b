//! Writes a scenario to disk as the scan reads real data: a static STAC catalog in Earth Search
//! layout (items with blue, green, red, nir at 10 m and swir16, swir22, scl at 20 m as COGs,
//! `proj:epsg`, `eo:cloud_cover`, `s2:processing_baseline`, `earthsearch:boa_offset_applied`), the
//! truth (`truth.geojson`, one feature per object), the site outline (`aoi.geojson`) and a log of
//! what the generator did to each scene (`scenes.json`: offsets and flags, for diagnosis).

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::DriverManager;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::{json, Value};

use crate::materials::Spectrum;
use crate::sky::{classify, Sky};
use crate::world::{Rect, Spec, World, PIXEL_M};

/// Bumped whenever the generated data change, so the driver regenerates old scenarios.
pub const GENERATOR_VERSION: u32 = 1;

/// The UTM zone of the sites (47 N, Myanmar-Thailand border).
const EPSG: u32 = 32647;

/// What went wrong, and where.
#[derive(Debug)]
pub enum Error {
    /// A GDAL call failed on a file.
    Gdal {
        path: PathBuf,
        source: gdal::errors::GdalError,
    },
    /// A file could not be written or read.
    Io { path: PathBuf, source: std::io::Error },
    /// A file is not what was expected.
    Format { path: PathBuf, reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Gdal { path, source } => write!(f, "{}: GDAL: {source}", path.display()),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// Result with the testbed's error.
pub type Result<T> = std::result::Result<T, Error>;

fn gdal_err(path: &Path) -> impl FnOnce(gdal::errors::GdalError) -> Error + '_ {
    move |source| Error::Gdal {
        path: path.to_owned(),
        source,
    }
}

/// Writes a JSON file.
pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let text = serde_json::to_string_pretty(v).expect("JSON values serialize");
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Projects grid metres to lon/lat.
struct Georef {
    x0: f64,
    y0: f64,
    to_wgs84: CoordTransform,
}

impl Georef {
    fn new(seed: u64) -> Result<Georef> {
        let here = Path::new("EPSG:32647");
        let mut wgs84 = SpatialRef::from_epsg(4326).map_err(gdal_err(here))?;
        wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut utm = SpatialRef::from_epsg(EPSG).map_err(gdal_err(here))?;
        utm.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let to_utm = CoordTransform::new(&wgs84, &utm).map_err(gdal_err(here))?;
        // Sites near Payathonzu / Three Pagodas Pass, a few km apart by seed.
        let (mut x, mut y) = (
            [98.37 + 0.013 * (seed % 5) as f64],
            [15.28 + 0.011 * ((seed / 5) % 5) as f64],
        );
        to_utm
            .transform_coords(&mut x, &mut y, &mut [])
            .map_err(gdal_err(here))?;
        let x0 = (x[0] / 20.0).round() * 20.0;
        let y0 = (y[0] / 20.0).round() * 20.0;
        let to_wgs84 = CoordTransform::new(&utm, &wgs84).map_err(gdal_err(here))?;
        Ok(Georef { x0, y0, to_wgs84 })
    }

    /// Lon/lat of grid points given in metres from the top-left corner (y down).
    fn lonlat(&self, pts: &[(f64, f64)]) -> Result<Vec<[f64; 2]>> {
        let mut xs: Vec<f64> = pts.iter().map(|p| self.x0 + p.0).collect();
        let mut ys: Vec<f64> = pts.iter().map(|p| self.y0 - p.1).collect();
        self.to_wgs84
            .transform_coords(&mut xs, &mut ys, &mut [])
            .map_err(gdal_err(Path::new("EPSG:32647 -> EPSG:4326")))?;
        Ok(xs
            .into_iter()
            .zip(ys)
            .map(|(x, y)| [(x * 1e7).round() / 1e7, (y * 1e7).round() / 1e7])
            .collect())
    }

    /// A closed counter-clockwise lon/lat ring of a rectangle (RFC 7946 exterior ring order).
    fn ring(&self, r: &Rect) -> Result<Vec<[f64; 2]>> {
        self.lonlat(&[(r.x0, r.y1), (r.x1, r.y1), (r.x1, r.y0), (r.x0, r.y0), (r.x0, r.y1)])
    }
}

fn write_cog(path: &Path, x0: f64, y0: f64, res: f64, n: usize, data: Vec<u16>) -> Result<()> {
    let err = gdal_err(path);
    let mem = DriverManager::get_driver_by_name("MEM").map_err(gdal_err(path))?;
    let mut ds = mem
        .create_with_band_type::<u16, _>("", n, n, 1)
        .map_err(gdal_err(path))?;
    ds.set_geo_transform(&[x0, res, 0.0, y0, 0.0, -res])
        .map_err(gdal_err(path))?;
    ds.set_spatial_ref(&SpatialRef::from_epsg(EPSG).map_err(gdal_err(path))?)
        .map_err(gdal_err(path))?;
    {
        let mut band = ds.rasterband(1).map_err(gdal_err(path))?;
        band.set_no_data_value(Some(0.0)).map_err(gdal_err(path))?;
        band.write((0, 0), (n, n), &mut Buffer::new((n, n), data))
            .map_err(gdal_err(path))?;
    }
    let cog = DriverManager::get_driver_by_name("COG").map_err(gdal_err(path))?;
    let mut opts = RasterCreationOptions::new();
    opts.set_name_value("COMPRESS", "DEFLATE").map_err(gdal_err(path))?;
    opts.set_name_value("BLOCKSIZE", "256").map_err(gdal_err(path))?;
    ds.create_copy(&cog, path, &opts).map_err(err)?;
    Ok(())
}

/// How a scene's pixels relate to the 2022 offset, and what its item says.
#[derive(Clone, Copy, Debug)]
struct Offset {
    /// DN added to reflectance x 10,000 (1,000 for baseline >= 04.00 not harmonized).
    add_dn: u16,
    baseline: &'static str,
    /// `earthsearch:boa_offset_applied`, absent when None.
    flag: Option<bool>,
}

fn offset(rng: &mut ChaCha12Rng, date: NaiveDate) -> Offset {
    let u: f64 = rng.gen();
    if date < NaiveDate::from_ymd_opt(2022, 1, 25).expect("valid") {
        return Offset {
            add_dn: 0,
            baseline: "03.01",
            flag: if u < 0.7 { Some(false) } else { None },
        };
    }
    let baseline = if date < NaiveDate::from_ymd_opt(2022, 12, 13).expect("valid") {
        "04.00"
    } else {
        "05.09"
    };
    let v: f64 = rng.gen();
    if u < 0.7 {
        // Raw pixels (+1000): the flag usually says so, sometimes wrongly says applied, or is absent.
        let flag = if v < 0.8 {
            Some(false)
        } else if v < 0.9 {
            Some(true)
        } else {
            None
        };
        Offset {
            add_dn: 1000,
            baseline,
            flag,
        }
    } else {
        // Harmonized pixels: usually flagged true, sometimes wrongly false.
        Offset {
            add_dn: 0,
            baseline,
            flag: if v < 0.85 { Some(true) } else { Some(false) },
        }
    }
}

/// What was generated.
pub struct Generated {
    /// The catalog.
    pub catalog: PathBuf,
    /// The truth.
    pub truth: PathBuf,
    /// The site outline.
    pub aoi: PathBuf,
    /// Acquisitions written.
    pub scenes: usize,
}

/// Month as "YYYY-MM".
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Generates the scenario of `spec` into `out`.
pub fn generate(out: &Path, spec: &Spec) -> Result<Generated> {
    let world = World::build(spec);
    let geo = Georef::new(spec.seed)?;
    let n = spec.size_px;
    let watch: Vec<Vec<usize>> = world.events.iter().map(|e| e.watch_pixels(n)).collect();
    let mut first_clear: Vec<Option<NaiveDate>> = vec![None; world.events.len()];
    let mut links = vec![json!({"rel": "root", "href": "./catalog.json", "type": "application/json"})];
    let mut log = Vec::new();
    let size_m = n as f64 * PIXEL_M;
    let footprint = geo.ring(&Rect {
        x0: 0.0,
        y0: 0.0,
        x1: size_m,
        y1: size_m,
    })?;
    let lons: Vec<f64> = footprint.iter().map(|p| p[0]).collect();
    let lats: Vec<f64> = footprint.iter().map(|p| p[1]).collect();
    let bbox = [
        lons.iter().copied().fold(f64::MAX, f64::min),
        lats.iter().copied().fold(f64::MAX, f64::min),
        lons.iter().copied().fold(f64::MIN, f64::max),
        lats.iter().copied().fold(f64::MIN, f64::max),
    ];
    for (index, (date, platform)) in world.acquisitions().into_iter().enumerate() {
        let mut rng = ChaCha12Rng::seed_from_u64(
            spec.seed
                .wrapping_mul(0x9e37_79b9)
                .wrapping_add(index as u64 * 7919 + 11),
        );
        let sky = Sky::draw(&mut rng, n, date);
        let (ground, illum) = world.surface(date);
        let gain: [f32; 6] = std::array::from_fn(|_| 1.0 + rng.gen_range(-0.015..0.015));
        let obs: Vec<Spectrum> = ground
            .iter()
            .enumerate()
            .map(|(p, g)| {
                let o = sky.observe(p, *g);
                std::array::from_fn(|b| (o[b] * gain[b] + rng.gen_range(-0.004..0.004)).max(0.0))
            })
            .collect();
        for (i, px) in watch.iter().enumerate() {
            let e = &world.events[i];
            if first_clear[i].is_none() && date >= e.new_state() && !px.is_empty() {
                let clear = px.iter().filter(|&&p| sky.clear_at(p)).count();
                if clear as f64 >= 0.8 * px.len() as f64 {
                    first_clear[i] = Some(date);
                }
            }
        }
        let off = offset(&mut rng, date);
        let dn = |v: f32| ((v * 10_000.0).round() as i64 + off.add_dn as i64).clamp(1, 65_535) as u16;
        let band10 = |b: usize| obs.iter().map(|s| dn(s[b])).collect::<Vec<u16>>();
        let h = n / 2;
        let quad = |q: usize| {
            let (r, c) = (2 * (q / h), 2 * (q % h));
            [r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1]
        };
        let band20 = |b: usize| {
            (0..h * h)
                .map(|q| dn(quad(q).iter().map(|&p| obs[p][b]).sum::<f32>() / 4.0))
                .collect::<Vec<u16>>()
        };
        let scl: Vec<u16> = (0..h * h)
            .map(|q| {
                let ps = quad(q);
                let mean = |f: &dyn Fn(usize) -> f32| ps.iter().map(|&p| f(p)).sum::<f32>() / 4.0;
                let o: Spectrum = std::array::from_fn(|b| mean(&|p| obs[p][b]));
                classify(
                    &sky,
                    &mut rng,
                    o,
                    mean(&|p| sky.alpha[p]),
                    mean(&|p| sky.shadow[p]),
                    mean(&|p| illum[p]),
                )
            })
            .collect();
        let id = format!(
            "{}_47PMS_{}_0_L2A",
            if platform.ends_with('a') { "S2A" } else { "S2B" },
            date.format("%Y%m%d")
        );
        let dir = out.join("items").join(&id);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let mut assets = serde_json::Map::new();
        let bands: [(&str, &str, Vec<u16>, bool); 7] = [
            ("blue", "B02", band10(0), true),
            ("green", "B03", band10(1), true),
            ("red", "B04", band10(2), true),
            ("nir", "B08", band10(3), true),
            ("swir16", "B11", band20(4), false),
            ("swir22", "B12", band20(5), false),
            ("scl", "SCL", scl, false),
        ];
        for (key, file, data, ten) in bands {
            let (res, side) = if ten { (10.0, n) } else { (20.0, h) };
            write_cog(&dir.join(format!("{file}.tif")), geo.x0, geo.y0, res, side, data)?;
            assets.insert(
                key.to_owned(),
                json!({"href": format!("./{file}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"], "gsd": res}),
            );
        }
        let mut props = json!({
            "datetime": format!("{}T04:02:31.000Z", date.format("%Y-%m-%d")),
            "platform": platform,
            "constellation": "sentinel-2",
            "eo:cloud_cover": sky.cloud_cover_percent(),
            "proj:epsg": EPSG,
            "s2:processing_baseline": off.baseline,
        });
        if let Some(flag) = off.flag {
            props["earthsearch:boa_offset_applied"] = json!(flag);
        }
        let item = json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "id": id,
            "collection": "sentinel-2-l2a",
            "geometry": {"type": "Polygon", "coordinates": [footprint]},
            "bbox": bbox,
            "properties": props,
            "links": [
                {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../../catalog.json", "type": "application/json"},
            ],
            "assets": assets,
        });
        write_json(&dir.join(format!("{id}.json")), &item)?;
        links.push(json!({"rel": "item", "href": format!("./items/{id}/{id}.json"), "type": "application/geo+json"}));
        log.push(json!({
            "id": id, "date": date.to_string(), "cloud_cover": sky.cloud_cover_percent(),
            "add_dn": off.add_dn, "flag": off.flag, "haze": sky.haze,
            "bright_as_cloud": sky.bright_as_cloud, "cirrus_labelled": sky.cirrus_labelled,
        }));
    }
    let catalog = out.join("catalog.json");
    write_json(
        &catalog,
        &json!({
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": format!("compound-watch-testbed-{}", spec.seed),
            "description": "SYNTHETIC Sentinel-2 L2A scenario of the compound-watch testbed (not real data).",
            "links": links,
        }),
    )?;
    write_json(&out.join("scenes.json"), &Value::Array(log))?;

    let mut features = Vec::new();
    for (i, e) in world.events.iter().enumerate() {
        let construction = e.kind.is_construction();
        let area = (e.outline.area() * 10.0).round() / 10.0;
        let fcv = first_clear[i].map(month_of);
        features.push(json!({
            "type": "Feature",
            "id": format!("obj-{i:02}"),
            "geometry": {"type": "Polygon", "coordinates": [geo.ring(&e.outline)?]},
            "properties": {
                "id": format!("obj-{i:02}"),
                "class": if construction { "construction" } else { "non-construction" },
                "kind": e.kind.name(),
                "material": e.material,
                "tags": e.tags,
                "area_m2": area,
                "roof_area_m2": (e.roofs.iter().map(|r| r.0.area()).sum::<f64>() * 10.0).round() / 10.0,
                "cleared": e.cleared.1.to_string(),
                "new_state": e.new_state().to_string(),
                "finished": e.finished().map(|d| d.to_string()),
                "first_clear_view": fcv,
                "reportable": construction && area >= 1000.0 && fcv.is_some(),
            },
        }));
    }
    let truth = out.join("truth.geojson");
    write_json(
        &truth,
        &json!({
            "type": "FeatureCollection",
            "features": features,
            "testbed": {
                "seed": spec.seed,
                "generator_version": GENERATOR_VERSION,
                "period": [spec.first.to_string(), spec.last.to_string()],
                "note": "SYNTHETIC. One feature per object. new_state: the day the first roof (construction) or the change (others) appears; first_clear_view: the month of the first acquisition on or after it in which >= 80% of the object's new-state pixels are free of cloud, thin cloud and shadow in the generator's own sky; reportable: construction >= 1,000 m2 with a first clear view in the period.",
            },
        }),
    )?;
    let inset = Rect {
        x0: 100.0,
        y0: 100.0,
        x1: size_m - 100.0,
        y1: size_m - 100.0,
    };
    let aoi = out.join("aoi.geojson");
    write_json(
        &aoi,
        &json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": format!("testbed-{}", spec.seed)}, "geometry": {"type": "Polygon", "coordinates": [geo.ring(&inset)?]}}]}),
    )?;
    Ok(Generated {
        catalog,
        truth,
        aoi,
        scenes: links.len() - 1,
    })
}

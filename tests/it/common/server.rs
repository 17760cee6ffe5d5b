//! A real HTTP/1.1 server on 127.0.0.1 for tests: serves files with Range support, answers STAC
//! routes from handlers, logs every request with the fault it got, counts body bytes and requests
//! in flight, and injects faults on demand into the requests they are meant for.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// What to answer.
pub enum Reply {
    /// A body (Range requests on GET get 206 and the slice).
    Body {
        status: u16,
        content_type: &'static str,
        body: Arc<Vec<u8>>,
        headers: Vec<(String, String)>,
    },
    NotFound,
}

impl Reply {
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::Body {
            status: 200,
            content_type: "application/json",
            body: Arc::new(value.to_string().into_bytes()),
            headers: vec![],
        }
    }
}

/// A fault for the next matching request to a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// No fault: answer normally (to fault a later request to the same path).
    Pass,
    /// Answer with this status (and headers) and a small body.
    Status(u16, Vec<(String, String)>),
    /// Send half the body, then reset the connection.
    Reset,
    /// Announce the full length, send half, close.
    Short,
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Say nothing for this long, then answer normally (if the client still listens).
    Stall(Duration),
}

/// Which requests to a path its queued faults are for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultOn {
    /// Every request, in order (STAC pages, tokens).
    Any,
    /// GETs with a Range header only: the COG block reads, not GDAL's HEAD on open.
    RangeGet,
}

/// One request as the server saw it, and the fault it got (None: answered normally).
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub fault: Option<Fault>,
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(r) = &self.range {
            write!(f, " range={r}")?;
        }
        match &self.fault {
            Some(fault) => write!(f, " fault={fault:?}"),
            None => write!(f, " fault=None"),
        }
    }
}

/// Every request, in order.
pub type Log = Arc<Mutex<Vec<Logged>>>;

type Faults = Mutex<HashMap<String, (FaultOn, VecDeque<Fault>)>>;

/// Requests being answered now, and the most there ever were at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

type Handler = Box<dyn Fn(&Request, &str) -> Reply + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    routes: Arc<Mutex<Vec<(String, Handler)>>>,
    faults: Arc<Faults>,
    pub requests: Log,
    pub bytes: Arc<AtomicU64>,
    in_flight: Arc<InFlight>,
    /// Milliseconds every answer waits before its headers, so that overlapping requests overlap.
    latency_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server {
            addr,
            routes: Arc::default(),
            faults: Arc::default(),
            requests: Arc::default(),
            bytes: Arc::default(),
            in_flight: Arc::default(),
            latency_ms: Arc::default(),
            stop: Arc::default(),
        };
        let shared = Shared {
            routes: server.routes.clone(),
            faults: server.faults.clone(),
            requests: server.requests.clone(),
            bytes: server.bytes.clone(),
            in_flight: server.in_flight.clone(),
            latency_ms: server.latency_ms.clone(),
        };
        let stop = server.stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Routes requests whose path starts with `prefix` to `handler(request, rest_of_path)`.
    pub fn route(&self, prefix: &str, handler: impl Fn(&Request, &str) -> Reply + Send + Sync + 'static) {
        self.routes.lock().unwrap().push((prefix.to_owned(), Box::new(handler)));
    }

    /// Serves the files under `dir` at `prefix`.
    pub fn files(&self, prefix: &str, dir: &std::path::Path) {
        let dir = dir.to_path_buf();
        let cache: Mutex<HashMap<String, Arc<Vec<u8>>>> = Mutex::default();
        self.route(prefix, move |_, rest| {
            let mut cache = cache.lock().unwrap();
            if !cache.contains_key(rest) {
                match std::fs::read(dir.join(rest.trim_start_matches('/'))) {
                    Ok(b) => {
                        cache.insert(rest.to_owned(), Arc::new(b));
                    }
                    Err(_) => return Reply::NotFound,
                }
            }
            Reply::Body {
                status: 200,
                content_type: "image/tiff",
                body: cache[rest].clone(),
                headers: vec![],
            }
        });
    }

    /// Queues faults for the next requests to exactly `path` that `on` matches, one each.
    pub fn inject(&self, path: &str, on: FaultOn, faults: impl IntoIterator<Item = Fault>) {
        let mut all = self.faults.lock().unwrap();
        let (target, queue) = all.entry(path.to_owned()).or_insert_with(|| (on, VecDeque::new()));
        *target = on;
        queue.extend(faults);
    }

    /// Makes every answer wait this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// A copy of the request log.
    pub fn log(&self) -> Vec<Logged> {
        self.requests.lock().unwrap().clone()
    }

    /// Prints the request log, so that `--nocapture` shows which faults fired.
    pub fn print_log(&self, title: &str) {
        let log = self.log();
        eprintln!("--- {title}: {} requests", log.len());
        for entry in log {
            eprintln!("    {entry}");
        }
    }

    /// Requests to exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        self.log().iter().filter(|r| r.path == path).count()
    }

    /// Requests to exactly `path` that `on` matches.
    pub fn count_on(&self, path: &str, on: FaultOn) -> usize {
        self.log().iter().filter(|r| r.path == path && on.matches(r)).count()
    }

    /// The faults applied to requests to `path`, in order (`Pass` excluded).
    pub fn fired(&self, path: &str) -> Vec<Fault> {
        self.log()
            .into_iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.fault)
            .filter(|f| *f != Fault::Pass)
            .collect()
    }

    /// Faults queued for `path` that no request has taken yet.
    pub fn pending(&self, path: &str) -> usize {
        self.faults.lock().unwrap().get(path).map_or(0, |(_, q)| q.len())
    }

    /// The most requests the server was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        self.requests.lock().unwrap().clear();
        self.bytes.store(0, Ordering::SeqCst);
        self.in_flight.max.store(0, Ordering::SeqCst);
    }
}

impl FaultOn {
    fn matches(self, r: &Logged) -> bool {
        match self {
            FaultOn::Any => true,
            FaultOn::RangeGet => r.method == "GET" && r.range.is_some(),
        }
    }
}

/// What the connection threads share with the `Server`.
#[derive(Clone)]
struct Shared {
    routes: Arc<Mutex<Vec<(String, Handler)>>>,
    faults: Arc<Faults>,
    requests: Log,
    bytes: Arc<AtomicU64>,
    in_flight: Arc<InFlight>,
    latency_ms: Arc<AtomicU64>,
}

/// Counts a request in flight until dropped.
struct Busy<'a>(&'a InFlight);

impl<'a> Busy<'a> {
    fn new(in_flight: &'a InFlight) -> Busy<'a> {
        let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.max.fetch_max(now, Ordering::SeqCst);
        Busy(in_flight)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let _busy = Busy::new(&shared.in_flight);
        let request_is_head = method == "HEAD";
        let mut entry = Logged {
            method,
            path: path.clone(),
            range: headers.get("range").cloned(),
            fault: None,
        };
        // The fault is taken off the queue only by a request it is meant for, under the same lock
        // as the log, so the log order is the order faults were applied in.
        let fault = {
            let mut log = shared.requests.lock().unwrap();
            entry.fault = shared
                .faults
                .lock()
                .unwrap()
                .get_mut(&path)
                .filter(|(on, _)| on.matches(&entry))
                .and_then(|(_, queue)| queue.pop_front());
            log.push(entry.clone());
            entry.fault
        };
        let request = Request { headers, body };
        let latency = shared.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            std::thread::sleep(Duration::from_millis(latency));
        }
        if let Some(Fault::Stall(pause)) = fault {
            std::thread::sleep(pause);
        }
        let reply = {
            let routes = shared.routes.lock().unwrap();
            let route_path = path.split('?').next().unwrap_or("").to_owned();
            match routes
                .iter()
                .find(|(prefix, _)| route_path.starts_with(prefix.as_str()))
            {
                Some((prefix, handler)) => handler(&request, &route_path[prefix.len()..]),
                None => Reply::NotFound,
            }
        };
        let (status, content_type, full, extra) = match reply {
            Reply::Body {
                status,
                content_type,
                body,
                headers,
            } => (status, content_type, body, headers),
            Reply::NotFound => (404, "text/plain", Arc::new(b"not found".to_vec()), vec![]),
        };
        let (status, body, mut extra, content_range) = match (&fault, request.headers.get("range")) {
            (Some(Fault::Status(code, h)), _) => (*code, b"injected fault".to_vec(), h.clone(), None),
            (Some(Fault::Garbage), _) => (
                200,
                b"{\"type\": \"FeatureCollection\", \"features\": [".to_vec(),
                vec![],
                None,
            ),
            (_, Some(range)) if status == 200 => {
                let (a, b) = range.trim_start_matches("bytes=").split_once('-').unwrap();
                let a: usize = a.parse().unwrap();
                let b: usize = b.parse::<usize>().unwrap_or(full.len() - 1).min(full.len() - 1);
                (
                    206,
                    full[a..=b].to_vec(),
                    extra,
                    Some(format!("bytes {a}-{b}/{}", full.len())),
                )
            }
            _ => (status, full.to_vec(), extra, None),
        };
        if let Some(cr) = content_range {
            extra.push(("Content-Range".into(), cr));
        }
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n",
            body.len()
        );
        for (k, v) in &extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if request_is_head {
            continue;
        }
        match fault {
            Some(Fault::Reset) => {
                out.write_all(&body[..body.len() / 2])?;
                shared.bytes.fetch_add((body.len() / 2) as u64, Ordering::SeqCst);
                let sock = socket2_linger_zero(out);
                drop(sock);
                return Ok(());
            }
            Some(Fault::Short) => {
                out.write_all(&body[..body.len() / 2])?;
                shared.bytes.fetch_add((body.len() / 2) as u64, Ordering::SeqCst);
                return Ok(());
            }
            _ => {
                out.write_all(&body)?;
                shared.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
            }
        }
        out.flush()?;
    }
}

/// Closes with RST rather than FIN: what a reset mid-body looks like to the client.
fn socket2_linger_zero(stream: TcpStream) -> TcpStream {
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).ok();
    stream
}

//! A real HTTP/1.1 server on 127.0.0.1 for tests: serves files with Range support, answers STAC
//! routes from handlers, counts requests and body bytes, and injects faults on demand.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A fault for the next request to a path.
#[derive(Debug, Clone)]
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
}

/// (method, path, Range header) of every request, in order.
pub type Log = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

type Handler = Box<dyn Fn(&Request, &str) -> Reply + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    routes: Arc<Mutex<Vec<(String, Handler)>>>,
    faults: Arc<Mutex<HashMap<String, VecDeque<Fault>>>>,
    pub requests: Log,
    pub bytes: Arc<AtomicU64>,
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
            stop: Arc::default(),
        };
        let (routes, faults, requests, bytes, stop) = (
            server.routes.clone(),
            server.faults.clone(),
            server.requests.clone(),
            server.bytes.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (routes, faults, requests, bytes) =
                    (routes.clone(), faults.clone(), requests.clone(), bytes.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &routes, &faults, &requests, &bytes);
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

    /// Queues faults for the next requests to exactly `path`.
    pub fn inject(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.faults
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .extend(faults);
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _)| p == path)
            .count()
    }

    pub fn reset_counters(&self) {
        self.requests.lock().unwrap().clear();
        self.bytes.store(0, Ordering::SeqCst);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: TcpStream,
    routes: &Mutex<Vec<(String, Handler)>>,
    faults: &Mutex<HashMap<String, VecDeque<Fault>>>,
    requests: &Mutex<Vec<(String, String, Option<String>)>>,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
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
        let request_is_head = method == "HEAD";
        requests
            .lock()
            .unwrap()
            .push((method, path.clone(), headers.get("range").cloned()));
        let request = Request { headers, body };
        let fault = faults.lock().unwrap().get_mut(&path).and_then(VecDeque::pop_front);
        let reply = {
            let routes = routes.lock().unwrap();
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
                bytes.fetch_add((body.len() / 2) as u64, Ordering::SeqCst);
                let sock = socket2_linger_zero(out);
                drop(sock);
                return Ok(());
            }
            Some(Fault::Short) => {
                out.write_all(&body[..body.len() / 2])?;
                bytes.fetch_add((body.len() / 2) as u64, Ordering::SeqCst);
                return Ok(());
            }
            _ => {
                out.write_all(&body)?;
                bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
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

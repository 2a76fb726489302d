//! The API server: an HTTP listener on a unix socket that a client cannot
//! exhaust, and a handler panic cannot take down.
//!
//! Why this shape: the requests are few and the handler is synchronous
//! (the daemon's controller sits behind one lock), but a careless or
//! hostile client may open thousands of connections and send nothing. So
//! connections live as tasks on a tokio current-thread runtime on one
//! dedicated thread — an idle connection costs a descriptor, a task and
//! the bytes it sent, never a thread — and complete requests go to a small
//! fixed pool of blocking handler threads. (A hand-written epoll loop would
//! do the same with more code; a thread per connection is what ran out.)
//!
//! The bounds, in the order they apply:
//! - At most [`Config::max_connections`] connections are open. At the cap,
//!   a new connection closes the one that has waited longest for its
//!   request to arrive (answered 503): clients that send their request at
//!   once, as ours do, always get through. Only when every open connection
//!   already has its request in hand is the newcomer itself refused (503).
//! - A request must arrive complete, head and body, within
//!   [`Config::request_timeout`] of the connection (408 otherwise).
//! - Lines, header count, head and body have limits ([`Limits`]); each is
//!   checked as bytes arrive, so no more than a limit is ever buffered.
//! - All connections together buffer at most [`Config::buffer_budget`]
//!   bytes; past it, the connection waiting longest gives way (503).
//! - A response must be taken within [`Config::write_timeout`].
//! - A handler that panics is answered 500, [`Handler::recover`] runs, and
//!   the server goes on; the process never unwinds past a handler.

use super::{
    parse_request_head, ChunkedDecoder, Framing, HeadScanner, Limits, Refusal, Request, Response,
    REQUEST_LIMITS,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// What the server runs each request through.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Runs on a handler thread and may block.
    fn handle(&self, req: &Request) -> Response;

    /// Runs on the handler thread after [`Handler::handle`] panicked on
    /// `req`, before its 500 goes out: put shared state back in order.
    fn recover(&self, _req: &Request) {}
}

/// The server's bounds (see the module doc).
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections open at once.
    pub max_connections: usize,
    /// Bytes of unanswered requests buffered across all connections.
    pub buffer_budget: usize,
    /// From accepting a connection to having its whole request.
    pub request_timeout: Duration,
    /// For the client to take the response.
    pub write_timeout: Duration,
    /// Threads running handlers.
    pub handler_threads: usize,
    /// Per-request size limits.
    pub limits: Limits,
}

impl Config {
    /// The daemon's bounds for a process allowed `nofile` descriptors: a
    /// quarter of them (at most 4096) for API connections, so a flood of
    /// connections never starves the data plane of descriptors for TAPs
    /// and DNS sockets.
    pub fn for_descriptor_limit(nofile: u64) -> Config {
        Config {
            max_connections: usize::try_from((nofile / 4).clamp(16, 4096)).unwrap_or(4096),
            buffer_budget: 64 << 20,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            handler_threads: 4,
            limits: REQUEST_LIMITS,
        }
    }
}

/// A running server; dropping it stops accepting and closes every
/// connection (handlers already running finish on their own).
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` on a new thread named `api`.
    pub fn start(
        listener: std::os::unix::net::UnixListener,
        config: Config,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(config.handler_threads.max(1))
            .thread_name("api-handler")
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let listener = match UnixListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot serve the API socket");
                            return;
                        }
                    };
                    let shared = Rc::new(Shared::new(config, handler));
                    tokio::select! {
                        () = accept_loop(listener, shared) => {}
                        _ = stopped => {}
                    }
                });
                drop(local);
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Server {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, closes every connection, and waits (a second at
    /// most) for running handlers.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// One connection's bookkeeping, shared with the server so that it can be
/// told to give way.
struct Conn {
    id: u64,
    buffered: Cell<usize>,
    eviction: RefCell<Option<Refusal>>,
    wake: Notify,
}

/// Everything the accept loop and the connection tasks share (one thread).
struct Shared {
    config: Config,
    handler: Arc<dyn Handler>,
    open: Cell<usize>,
    buffered: Cell<usize>,
    next_id: Cell<u64>,
    /// Connections still reading their request, oldest first.
    reading: RefCell<BTreeMap<u64, Rc<Conn>>>,
    scratch: RefCell<Vec<u8>>,
    /// Connections closed or refused to stay within bounds since the last
    /// warning, and when that was.
    shed: Cell<u64>,
    last_warning: Cell<Option<Instant>>,
}

impl Shared {
    fn new(config: Config, handler: Arc<dyn Handler>) -> Shared {
        Shared {
            config,
            handler,
            open: Cell::new(0),
            buffered: Cell::new(0),
            next_id: Cell::new(0),
            reading: RefCell::new(BTreeMap::new()),
            scratch: RefCell::new(vec![0; 64 << 10]),
            shed: Cell::new(0),
            last_warning: Cell::new(None),
        }
    }

    fn full_refusal(&self) -> Refusal {
        Refusal::new(
            503,
            format!(
                "the daemon's API has reached its limit of {} open connections; this one waited \
                 longest for its request and was closed to make room. Send the request as soon as \
                 the connection is open, and close connections you no longer use",
                self.config.max_connections
            ),
        )
    }

    fn busy_refusal(&self) -> Refusal {
        Refusal::new(
            503,
            format!(
                "the daemon's API has reached its limit of {} open connections, all with requests \
                 in progress; retry in a moment",
                self.config.max_connections
            ),
        )
    }

    fn budget_refusal(&self) -> Refusal {
        Refusal::new(
            503,
            format!(
                "the daemon's API is buffering {} bytes of requests, its limit; this connection \
                 waited longest and was closed to make room. Retry in a moment",
                self.config.buffer_budget
            ),
        )
    }

    /// Tells the connection that has waited longest for its request to
    /// close with `refusal`; false if every connection has its request.
    fn evict_oldest(&self, refusal: Refusal) -> bool {
        let Some((_, victim)) = self.reading.borrow_mut().pop_first() else {
            return false;
        };
        self.buffered
            .set(self.buffered.get() - victim.buffered.replace(0));
        *victim.eviction.borrow_mut() = Some(refusal);
        victim.wake.notify_one();
        self.note_shed();
        true
    }

    /// Counts a connection closed or refused to stay in bounds; warns at
    /// most every 10 s so a flood cannot flood the log too.
    fn note_shed(&self) {
        self.shed.set(self.shed.get() + 1);
        let now = Instant::now();
        if self
            .last_warning
            .get()
            .is_some_and(|t| now < t + Duration::from_secs(10))
        {
            return;
        }
        tracing::warn!(
            shed = self.shed.get(),
            open = self.open.get(),
            limit = self.config.max_connections,
            buffered = self.buffered.get(),
            "API connections closed or refused to stay within the connection and buffer limits"
        );
        self.shed.set(0);
        self.last_warning.set(Some(now));
    }

    fn admit(self: &Rc<Self>) -> Slot {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.open.set(self.open.get() + 1);
        let conn = Rc::new(Conn {
            id,
            buffered: Cell::new(0),
            eviction: RefCell::new(None),
            wake: Notify::new(),
        });
        self.reading.borrow_mut().insert(id, Rc::clone(&conn));
        Slot {
            shared: Rc::clone(self),
            conn,
        }
    }

    /// Accounts `n` more buffered bytes to `conn`; over the budget, the
    /// connections waiting longest give way.
    fn account(&self, conn: &Conn, n: usize) {
        conn.buffered.set(conn.buffered.get() + n);
        self.buffered.set(self.buffered.get() + n);
        while self.buffered.get() > self.config.buffer_budget {
            if !self.evict_oldest(self.budget_refusal()) {
                break;
            }
        }
    }
}

/// A connection's place in the server: freed (count, bytes, queue entry)
/// however its task ends.
struct Slot {
    shared: Rc<Shared>,
    conn: Rc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = &self.shared;
        s.open.set(s.open.get() - 1);
        s.buffered.set(s.buffered.get() - self.conn.buffered.get());
        s.reading.borrow_mut().remove(&self.conn.id);
    }
}

async fn accept_loop(listener: UnixListener, shared: Rc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors: the next accept would fail at once
                // too; let connections in flight finish instead of spinning.
                tracing::warn!(error = %e, open = shared.open.get(), "cannot accept an API connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.open.get() >= shared.config.max_connections
            && !shared.evict_oldest(shared.full_refusal())
        {
            shared.note_shed();
            refuse(&stream, &shared.busy_refusal());
            continue;
        }
        let slot = shared.admit();
        tokio::task::spawn_local(connection(stream, slot));
        // Let the new connection read what it was sent before the next
        // accept: under a flood, accepting must not outrun reading, or
        // connections would be evicted as "longest idle" before their
        // request was ever looked at.
        tokio::task::yield_now().await;
    }
}

/// Answers a refusal without waiting: the answer is small and the socket
/// buffer empty, so one write takes it (a peer that reads nothing merely
/// misses it).
fn refuse(stream: &UnixStream, refusal: &Refusal) {
    tracing::debug!(status = refusal.status, reason = %refusal.message, "API request refused");
    let _ = stream.try_write(&refusal.response().to_bytes());
}

async fn connection(stream: UnixStream, slot: Slot) {
    let shared = Rc::clone(&slot.shared);
    let conn = Rc::clone(&slot.conn);
    let deadline = Instant::now() + shared.config.request_timeout;
    let read = tokio::select! {
        biased;
        () = conn.wake.notified() => Err(conn.eviction.borrow_mut().take()),
        r = read_request(&stream, &shared, &conn) => r,
        () = tokio::time::sleep_until(deadline) => Err(Some(Refusal::new(
            408,
            format!(
                "no complete request within {} s of connecting; send the request at once",
                shared.config.request_timeout.as_secs()
            ),
        ))),
    };
    shared.reading.borrow_mut().remove(&conn.id);
    let req = match read {
        Ok(req) => req,
        Err(Some(refusal)) => return refuse(&stream, &refusal),
        Err(None) => return,
    };
    let (method, path) = (req.method.clone(), req.path.clone());
    let resp = dispatch(&shared, req).await;
    tracing::debug!(%method, %path, status = resp.status, "api");
    let sent = tokio::time::timeout(
        shared.config.write_timeout,
        write_all(&stream, &resp.to_bytes()),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::debug!(%method, %path, "the client did not take its response");
    }
    drop(slot);
}

async fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads more bytes into `buf`, at most `max`. `Err(None)`: the peer is
/// gone and nothing can be answered.
async fn read_more(
    stream: &UnixStream,
    buf: &mut Vec<u8>,
    max: usize,
    shared: &Shared,
    conn: &Conn,
) -> Result<(), Option<Refusal>> {
    loop {
        stream.readable().await.map_err(|_| None)?;
        let mut scratch = shared.scratch.borrow_mut();
        let want = max.clamp(1, scratch.len());
        match stream.try_read(&mut scratch[..want]) {
            Ok(0) if buf.is_empty() => return Err(None),
            Ok(0) => {
                return Err(Some(Refusal::bad(
                    "the connection was closed before the request was complete",
                )))
            }
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                shared.account(conn, n);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(None),
        }
    }
}

async fn read_request(
    stream: &UnixStream,
    shared: &Shared,
    conn: &Conn,
) -> Result<Request, Option<Refusal>> {
    let limits = shared.config.limits;
    let mut buf = Vec::new();
    let mut scanner = HeadScanner::new(limits);
    let head_len = loop {
        if let Some(n) = scanner.poll(&buf)? {
            break n;
        }
        // One byte past the limit is enough to refuse.
        let room = limits.head + 1 - buf.len();
        read_more(stream, &mut buf, room, shared, conn).await?;
    };
    let head = parse_request_head(&buf[..head_len], &limits)?;
    let have = buf.len() - head_len;
    let body = match head.framing {
        Framing::Length(n) => {
            if head.expect_continue && have < n {
                let _ = stream.try_write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            while buf.len() - head_len < n {
                let room = head_len + n - buf.len();
                read_more(stream, &mut buf, room, shared, conn).await?;
            }
            buf[head_len..head_len + n].to_vec()
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(limits);
            let mut asked = false;
            // Framing may at most double a body (a chunk of 1 byte takes 6).
            let most = head_len + 6 * limits.body + 1024;
            loop {
                if decoder.poll(&buf[head_len..])? {
                    break decoder.into_body();
                }
                if head.expect_continue && !asked {
                    let _ = stream.try_write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    asked = true;
                }
                if buf.len() >= most {
                    return Err(Some(Refusal::new(
                        413,
                        "the chunked request body is too large with its framing; send it with Content-Length",
                    )));
                }
                let room = most - buf.len();
                read_more(stream, &mut buf, room, shared, conn).await?;
            }
        }
    };
    Ok(head.into_request(body))
}

/// Runs the handler on the blocking pool, turning a panic into a 500.
async fn dispatch(shared: &Shared, req: Request) -> Response {
    let handler = Arc::clone(&shared.handler);
    let joined = tokio::task::spawn_blocking(move || {
        match catch_unwind(AssertUnwindSafe(|| handler.handle(&req))) {
            Ok(resp) => resp,
            Err(panic) => {
                let what = panic_message(&*panic);
                tracing::error!(method = %req.method, path = %req.path, panic = %what, "an API handler panicked");
                if let Err(again) = catch_unwind(AssertUnwindSafe(|| handler.recover(&req))) {
                    tracing::error!(panic = %panic_message(&*again), "recovering after a handler panic panicked too");
                }
                Response::error(
                    500,
                    &format!(
                        "the daemon hit a bug handling {} {} ({what}); the operation may be partly \
                         applied: check with `switchyard ps` and `switchyard network ls`, and restart \
                         the daemon to reload its state from disk if they look wrong",
                        req.method, req.path
                    ),
                    "internal",
                )
            }
        }
    })
    .await;
    joined.unwrap_or_else(|e| {
        Response::error(
            500,
            &format!("the daemon could not run the request: {e}"),
            "internal",
        )
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdStream;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// Echoes the request, panics on `/panic`, sleeps on `/slow`; counts
    /// recoveries.
    struct TestHandler {
        state: Mutex<u32>,
        recovered: Mutex<u32>,
    }

    impl Handler for TestHandler {
        fn handle(&self, req: &Request) -> Response {
            let mut n = self.state.lock().unwrap();
            *n += 1;
            match req.path.as_str() {
                "/panic" => panic!("injected handler panic"),
                "/slow" => std::thread::sleep(Duration::from_millis(1500)),
                _ => {}
            }
            Response::json(
                200,
                &serde_json::json!({
                    "method": req.method,
                    "path": req.path,
                    "body": String::from_utf8_lossy(&req.body),
                }),
            )
        }

        fn recover(&self, _req: &Request) {
            self.state.clear_poison();
            *self.recovered.lock().unwrap() += 1;
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        handler: Arc<TestHandler>,
        server: Option<Server>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(s) = self.server.take() {
                s.stop();
            }
        }
    }

    fn config() -> Config {
        Config {
            max_connections: 8,
            buffer_budget: 1 << 20,
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            handler_threads: 2,
            limits: REQUEST_LIMITS,
        }
    }

    fn serve(config: Config) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let handler = Arc::new(TestHandler {
            state: Mutex::new(0),
            recovered: Mutex::new(0),
        });
        let server = Server::start(listener, config, handler.clone()).unwrap();
        Fixture {
            _dir: dir,
            socket,
            handler,
            server: Some(server),
        }
    }

    fn connect(socket: &Path) -> StdStream {
        let s = StdStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends raw bytes, returns (status, body) of the answer.
    fn exchange(socket: &Path, raw: &[u8]) -> (u16, serde_json::Value) {
        let mut s = connect(socket);
        let _ = s.write_all(raw);
        answer(&mut s)
    }

    fn answer(s: &mut StdStream) -> (u16, serde_json::Value) {
        let resp = super::super::read_response(s).expect("a response");
        let body = serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
        (resp.status, body)
    }

    fn get(socket: &Path, path: &str) -> (u16, serde_json::Value) {
        exchange(socket, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
    }

    #[test]
    fn a_request_is_answered_by_the_handler() {
        let f = serve(config());
        let (status, body) = exchange(
            &f.socket,
            b"POST /v1/x?y=1 HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        );
        assert_eq!(status, 200);
        assert_eq!(body["path"], "/v1/x");
        assert_eq!(body["body"], "{\"a\":1}");
    }

    #[test]
    fn a_panicking_handler_is_answered_500_and_the_server_goes_on() {
        let f = serve(config());
        let (status, body) = get(&f.socket, "/panic");
        assert_eq!(status, 500);
        assert_eq!(body["kind"], "internal");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("injected handler panic"), "{message}");
        assert!(message.contains("switchyard ps"), "{message}");
        assert_eq!(get(&f.socket, "/after").0, 200, "still serving");
    }

    #[test]
    fn recover_runs_after_a_panic_so_a_poisoned_lock_does_not_wedge_the_next_request() {
        let f = serve(config());
        assert_eq!(get(&f.socket, "/panic").0, 500);
        assert_eq!(*f.handler.recovered.lock().unwrap(), 1);
        assert!(!f.handler.state.is_poisoned(), "recover cleared the poison");
        assert_eq!(get(&f.socket, "/ok").0, 200);
    }

    #[test]
    fn a_refused_request_gets_the_apis_json_error_shape() {
        let f = serve(config());
        let (status, body) = exchange(&f.socket, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n");
        assert_eq!(status, 400);
        assert_eq!(body["kind"], "user");
        assert!(body["message"].as_str().unwrap().contains("Content-Length"));
    }

    #[test]
    fn an_endless_request_line_is_refused_with_414_after_its_limit() {
        let f = serve(config());
        let mut s = connect(&f.socket);
        let junk = vec![b'A'; 256 << 10];
        // The server refuses after 8 KiB; the rest may not be taken.
        let _ = s.write_all(&junk);
        assert_eq!(answer(&mut s).0, 414);
        assert_eq!(get(&f.socket, "/ok").0, 200);
    }

    #[test]
    fn a_chunked_body_reaches_the_handler_decoded() {
        let f = serve(config());
        let (status, body) = exchange(
            &f.socket,
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        );
        assert_eq!(status, 200);
        assert_eq!(body["body"], "{\"a\":1}");
    }

    #[test]
    fn expect_100_continue_gets_the_go_ahead_before_the_body() {
        let f = serve(config());
        let mut s = connect(&f.socket);
        s.write_all(b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"{}").unwrap();
        let (status, body) = answer(&mut s);
        assert_eq!((status, body["body"].as_str()), (200, Some("{}")));
    }

    #[test]
    fn a_connection_without_a_complete_request_is_closed_with_408_after_the_timeout() {
        let f = serve(Config {
            request_timeout: Duration::from_millis(300),
            ..config()
        });
        let mut s = connect(&f.socket);
        s.write_all(b"GET / HT").unwrap();
        let (status, body) = answer(&mut s);
        assert_eq!(status, 408);
        assert!(body["message"].as_str().unwrap().contains("within"));
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_closed_with_503_to_make_room() {
        let f = serve(config());
        let mut idle: Vec<StdStream> = (0..8)
            .map(|_| {
                let mut s = connect(&f.socket);
                s.write_all(b"G").unwrap();
                s
            })
            .collect();
        // Let the server take all eight before the ninth arrives.
        std::thread::sleep(Duration::from_millis(200));
        let (status, _) = get(&f.socket, "/ninth");
        assert_eq!(status, 200, "a client that sends its request gets through");
        let (status, body) = answer(&mut idle[0]);
        assert_eq!(status, 503, "the first idle connection made room");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("limit of 8 open connections"), "{message}");
        idle[1]
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        assert!(
            idle[1].read(&mut b).is_err(),
            "the others stay open (read timed out)"
        );
    }

    #[test]
    fn at_the_cap_with_every_request_in_progress_a_newcomer_is_refused_with_503() {
        let f = serve(Config {
            max_connections: 2,
            ..config()
        });
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let socket = f.socket.clone();
                std::thread::spawn(move || get(&socket, "/slow").0)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        let (status, body) = get(&f.socket, "/third");
        assert_eq!(status, 503);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("requests in progress"),
            "{body}"
        );
        for t in slow {
            assert_eq!(t.join().unwrap(), 200);
        }
        assert_eq!(get(&f.socket, "/later").0, 200);
    }

    #[test]
    fn past_the_buffer_budget_the_longest_waiting_connection_gives_way() {
        let f = serve(Config {
            buffer_budget: 64 << 10,
            ..config()
        });
        let head = b"POST /big HTTP/1.1\r\nContent-Length: 60000\r\n\r\n";
        let mut first = connect(&f.socket);
        first.write_all(head).unwrap();
        first.write_all(&vec![b'a'; 40_000]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut second = connect(&f.socket);
        second.write_all(head).unwrap();
        second.write_all(&vec![b'a'; 40_000]).unwrap();
        let (status, body) = answer(&mut first);
        assert_eq!(status, 503);
        assert!(
            body["message"].as_str().unwrap().contains("buffering"),
            "{body}"
        );
        second.write_all(&vec![b'a'; 20_000]).unwrap();
        assert_eq!(answer(&mut second).0, 200);
    }
}

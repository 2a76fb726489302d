//! Just enough HTTP/1.1 for the daemon's API over a unix socket: one
//! request per connection, JSON bodies framed by `Content-Length` (or
//! `Transfer-Encoding: chunked` on requests). Both ends are ours, so a full
//! HTTP stack would buy nothing but dependencies; any HTTP client that
//! speaks unix sockets (`curl --unix-socket`) works too.
//!
//! The parser holds no I/O: [`HeadScanner`] finds the end of a head in
//! bytes as they arrive and enforces the size limits before anything is
//! kept, [`parse_request_head`] turns a complete head into a [`RequestHead`],
//! and [`ChunkedDecoder`] decodes a chunked body within the body limit. The
//! server ([`server`]) and the blocking client ([`call`]) both drive it.
//! Every limit a request can break maps to the status that names it
//! ([`Refusal`]): 400, 413, 414, 431, 501 or 505.

pub mod server;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Size limits on one message; each broken limit is refused with the
/// status [`Refusal`] names, before the excess is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request (or status) line, without its line ending (414).
    pub start_line: usize,
    /// Longest header line (431).
    pub header_line: usize,
    /// Most header lines (431).
    pub headers: usize,
    /// Longest head: start line, headers and line endings (431).
    pub head: usize,
    /// Largest body (413).
    pub body: usize,
}

/// Limits on requests to the daemon. Its requests are a few hundred bytes
/// (the largest, `network create` with labels, stays far below 1 MiB).
pub const REQUEST_LIMITS: Limits = Limits {
    start_line: 8 << 10,
    header_line: 8 << 10,
    headers: 64,
    head: 16 << 10,
    body: 1 << 20,
};

/// Limits on the daemon's responses, as the client reads them: state
/// listings of many containers are large, but not this large.
pub const RESPONSE_LIMITS: Limits = Limits {
    start_line: 8 << 10,
    header_line: 8 << 10,
    headers: 64,
    head: 16 << 10,
    body: 16 << 20,
};

/// A request refused before it reached a handler: the status to answer and
/// the one-line reason for the error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// What was wrong and what to do instead.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Refusal {
        Refusal::new(400, message)
    }

    /// The response carrying this refusal, in the API's error shape: the
    /// request's fault (`user`), except 503, the daemon shedding load.
    pub fn response(&self) -> Response {
        let kind = if self.status == 503 {
            "internal"
        } else {
            "user"
        };
        Response::error(self.status, &self.message, kind)
    }
}

/// Finds the end of a message head in a buffer that only ever grows,
/// refusing a line or a head over its limit as soon as the excess arrives
/// (a line without a newline is refused at its limit, not buffered on).
/// It remembers where it stopped, so a head trickling in a byte at a time
/// costs linear time.
#[derive(Debug, Clone)]
pub struct HeadScanner {
    limits: Limits,
    line_start: usize,
    scanned: usize,
    lines: usize,
}

impl HeadScanner {
    /// A scanner for a message starting at offset 0 of the buffer.
    pub fn new(limits: Limits) -> HeadScanner {
        HeadScanner {
            limits,
            line_start: 0,
            scanned: 0,
            lines: 0,
        }
    }

    /// Scans `buf` (all bytes received so far). Returns the head's length,
    /// blank line included, once it is complete.
    pub fn poll(&mut self, buf: &[u8]) -> Result<Option<usize>, Refusal> {
        loop {
            let Some(i) = buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = buf.len();
                self.check_line(buf.len() - self.line_start)?;
                self.check_head(buf.len())?;
                return Ok(None);
            };
            let end = self.scanned + i;
            let mut line = &buf[self.line_start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            self.check_line(line.len())?;
            self.check_head(end + 1)?;
            self.line_start = end + 1;
            self.scanned = end + 1;
            if line.is_empty() {
                if self.lines > 0 {
                    return Ok(Some(end + 1));
                }
                // RFC 9112 §2.2: ignore empty lines before the start line.
                continue;
            }
            self.lines += 1;
            if self.lines > self.limits.headers + 1 {
                return Err(Refusal::new(
                    431,
                    format!(
                        "the request has more than {} header lines; send at most {}",
                        self.limits.headers, self.limits.headers
                    ),
                ));
            }
        }
    }

    fn check_line(&self, len: usize) -> Result<(), Refusal> {
        if self.lines == 0 && len > self.limits.start_line {
            return Err(Refusal::new(
                414,
                format!(
                    "the request line is longer than {} bytes; shorten the path and query",
                    self.limits.start_line
                ),
            ));
        }
        if self.lines > 0 && len > self.limits.header_line {
            return Err(Refusal::new(
                431,
                format!(
                    "a header line is longer than {} bytes; shorten it",
                    self.limits.header_line
                ),
            ));
        }
        Ok(())
    }

    fn check_head(&self, len: usize) -> Result<(), Refusal> {
        if len > self.limits.head {
            return Err(Refusal::new(
                431,
                format!(
                    "the request head is longer than {} bytes; send fewer or shorter headers",
                    self.limits.head
                ),
            ));
        }
        Ok(())
    }
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head (0 without `Content-Length`).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// Path without the query, percent-decoded.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// How the body is framed.
    pub framing: Framing,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The request with its body.
    pub fn into_request(self, body: Vec<u8>) -> Request {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            body,
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A head's `(name, value)` header pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// Splits a complete head (as [`HeadScanner`] delimited it) into its start
/// line and header pairs.
fn split_head(head: &[u8]) -> Result<(&str, Headers<'_>), Refusal> {
    let text = std::str::from_utf8(head)
        .map_err(|_| Refusal::bad("the request head is not valid UTF-8; send ASCII headers"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let start = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Refusal::bad(format!("header line {line:?} has no colon")))?;
        if !is_token(name) {
            return Err(Refusal::bad(format!("{name:?} is not a valid header name")));
        }
        headers.push((name, value.trim_matches([' ', '\t'])));
    }
    Ok((start, headers))
}

/// Parses a complete request head: request line, `Content-Length` or
/// `Transfer-Encoding: chunked`, `Expect: 100-continue`.
pub fn parse_request_head(head: &[u8], limits: &Limits) -> Result<RequestHead, Refusal> {
    let (start, headers) = split_head(head)?;
    let parts: Vec<&str> = start.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(Refusal::bad(format!(
            "bad request line {start:?}; write METHOD /path HTTP/1.1"
        )));
    };
    if !is_token(method) {
        return Err(Refusal::bad(format!("{method:?} is not a method")));
    }
    if !target.starts_with('/') {
        return Err(Refusal::bad(format!(
            "request target {target:?} must be a path starting with /"
        )));
    }
    match *version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.len() == 8 && v.starts_with("HTTP/") => {
            return Err(Refusal::new(
                505,
                format!("{v} is not supported; speak HTTP/1.1"),
            ))
        }
        v => return Err(Refusal::bad(format!("{v:?} is not an HTTP version"))),
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::bad(format!(
                    "bad Content-Length {value:?}; send the body's size in bytes"
                )));
            }
            // All digits: only overflow can fail, and that is over any limit.
            let n = value.parse::<usize>().unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(Refusal::bad("conflicting Content-Length headers"));
            }
            if n > limits.body {
                return Err(Refusal::new(
                    413,
                    format!(
                        "the request body is larger than {} bytes ({value} announced)",
                        limits.body
                    ),
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") || chunked {
                return Err(Refusal::new(
                    501,
                    format!(
                        "Transfer-Encoding {value:?} is not supported; send the body with Content-Length or chunked alone"
                    ),
                ));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(Refusal::new(
                    417,
                    format!("Expect {value:?} is not supported"),
                ));
            }
            expect_continue = true;
        }
    }
    let framing = match (chunked, length) {
        (true, Some(_)) => {
            return Err(Refusal::bad(
                "both Content-Length and Transfer-Encoding; send one",
            ))
        }
        (true, None) => Framing::Chunked,
        (false, l) => Framing::Length(l.unwrap_or(0)),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(RequestHead {
        method: method.to_string(),
        path: percent_decode(path),
        query,
        framing,
        expect_continue,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer { lines: usize },
    Done,
}

/// Decodes a chunked body (RFC 9112 §7.1) from bytes as they arrive,
/// within the body limit; chunk extensions and trailers are read and
/// dropped.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limits: Limits,
    state: ChunkState,
    consumed: usize,
    body: Vec<u8>,
}

impl ChunkedDecoder {
    /// A decoder for a body starting at offset 0 of its buffer.
    pub fn new(limits: Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            limits,
            state: ChunkState::Size,
            consumed: 0,
            body: Vec::new(),
        }
    }

    /// Decodes what `input` (every body byte received so far) adds; true
    /// once the last chunk and trailers are in.
    pub fn poll(&mut self, input: &[u8]) -> Result<bool, Refusal> {
        loop {
            let rest = &input[self.consumed..];
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let Some(line) = self.line(rest, 1024, "chunk size line")? else {
                        return Ok(false);
                    };
                    let size = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .map(|s| s.trim_matches([' ', '\t']))
                        .filter(|s| !s.is_empty() && s.len() <= 16)
                        .and_then(|s| usize::from_str_radix(s, 16).ok())
                        .ok_or_else(|| Refusal::bad("bad chunk size in a chunked body"))?;
                    if size > self.limits.body - self.body.len() {
                        return Err(Refusal::new(
                            413,
                            format!("the request body is larger than {} bytes", self.limits.body),
                        ));
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer { lines: 0 }
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..take]);
                    self.consumed += take;
                    if take < left {
                        self.state = ChunkState::Data(left - take);
                        return Ok(false);
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(false),
                    [b'\r', b'\n', ..] => {
                        self.consumed += 2;
                        self.state = ChunkState::Size;
                    }
                    [b'\n', ..] => {
                        self.consumed += 1;
                        self.state = ChunkState::Size;
                    }
                    _ => return Err(Refusal::bad("chunk data not followed by CRLF")),
                },
                ChunkState::Trailer { lines } => {
                    let Some(line) = self.line(rest, self.limits.header_line, "trailer line")?
                    else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    } else if lines >= self.limits.headers {
                        return Err(Refusal::new(431, "too many trailer lines"));
                    } else {
                        self.state = ChunkState::Trailer { lines: lines + 1 };
                    }
                }
            }
        }
    }

    /// The next line of `rest` without its ending, consuming it; `None`
    /// until it is complete.
    fn line<'a>(
        &mut self,
        rest: &'a [u8],
        limit: usize,
        what: &str,
    ) -> Result<Option<&'a [u8]>, Refusal> {
        let Some(i) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > limit {
                return Err(Refusal::new(
                    431,
                    format!("a {what} is longer than {limit} bytes"),
                ));
            }
            return Ok(None);
        };
        let line = rest[..i].strip_suffix(b"\r").unwrap_or(&rest[..i]);
        if line.len() > limit {
            return Err(Refusal::new(
                431,
                format!("a {what} is longer than {limit} bytes"),
            ));
        }
        self.consumed += i + 1;
        Ok(Some(line))
    }

    /// The decoded body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// Path without the query, percent-decoded.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The body (JSON or empty).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of query parameter `key`.
    pub fn query_params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            body: serde_json::to_vec(value).expect("JSON values serialise"),
        }
    }

    /// An error in the API's shape ([`crate::api::ErrorBody`]); `kind` is
    /// `user` or `internal`.
    pub fn error(status: u16, message: &str, kind: &str) -> Response {
        let body = crate::api::ErrorBody {
            message: message.to_string(),
            kind: kind.to_string(),
        };
        Response::json(
            status,
            &serde_json::to_value(body).expect("error bodies serialise"),
        )
    }

    /// The response as bytes on the wire, head and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Why [`call`] got no response. The variants say whether the daemon can
/// have acted on the request, which is what the user needs to know next.
#[derive(Debug)]
pub enum CallError {
    /// No connection: no daemon listens there (nothing was sent).
    Connect(io::Error),
    /// The connection broke before the whole request was written and the
    /// daemon sent no answer: it never saw a complete request, so nothing
    /// was applied.
    NotSent(io::Error),
    /// The whole request was sent but no complete reply came (timeout,
    /// daemon killed or restarted): it may have been applied.
    NoReply(io::Error),
    /// The reply was not HTTP this client understands (the request may
    /// have been applied).
    BadReply(String),
}

/// How long [`call`] waits for a reply. Creating a sandbox spawns processes
/// and configures interfaces, so give it time, but never hang forever on a
/// wedged daemon.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends one request to the daemon at `socket` and returns the response.
pub fn call(
    socket: &Path,
    method: &str,
    target: &str,
    body: Option<&serde_json::Value>,
) -> Result<Response, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(CallError::Connect)?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(CallError::Connect)?;
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(CallError::Connect)?;
    let body = body
        .map(|b| serde_json::to_vec(b).expect("JSON values serialise"))
        .unwrap_or_default();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: switchyard\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    if let Err(e) = stream.write_all(&request) {
        // The daemon may have refused the request early (too large, over
        // its connection limit) and closed: its answer says why.
        return read_response(&mut stream).map_err(|_| CallError::NotSent(e));
    }
    read_response(&mut stream)
}

/// Reads one response (head and `Content-Length` body, or up to EOF).
fn read_response(stream: &mut impl Read) -> Result<Response, CallError> {
    let limits = RESPONSE_LIMITS;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let mut scanner = HeadScanner::new(limits);
    let head_len = loop {
        if let Some(n) = scanner
            .poll(&buf)
            .map_err(|r| CallError::BadReply(r.message))?
        {
            break n;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(CallError::NoReply(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a reply",
                )))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CallError::NoReply(e)),
        }
    };
    let (start, headers) =
        split_head(&buf[..head_len]).map_err(|r| CallError::BadReply(r.message))?;
    let status = start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| start.starts_with("HTTP/1."))
        .ok_or_else(|| CallError::BadReply(format!("bad status line {start:?}")))?;
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| {
            v.parse::<usize>()
                .map_err(|_| CallError::BadReply(format!("bad Content-Length {v:?}")))
        })
        .transpose()?;
    if length.is_some_and(|l| l > limits.body) {
        return Err(CallError::BadReply(format!(
            "the reply is larger than {} bytes",
            limits.body
        )));
    }
    let mut body = buf.split_off(head_len);
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            body.truncate(length.unwrap_or(0));
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) if length.is_none() => break,
            Ok(0) => {
                return Err(CallError::NoReply(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed in the middle of the reply",
                )))
            }
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CallError::NoReply(e)),
        }
        if body.len() > limits.body {
            return Err(CallError::BadReply(format!(
                "the reply is larger than {} bytes",
                limits.body
            )));
        }
    }
    Ok(Response { status, body })
}

/// Percent-encodes a path segment or query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes what [`percent_encode`] made (and `+` as a space, as forms do).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = REQUEST_LIMITS;

    /// Feeds `bytes` to a scanner in pieces of `step`, as a trickling
    /// client would send them.
    fn scan(bytes: &[u8], step: usize) -> Result<Option<usize>, Refusal> {
        let mut s = HeadScanner::new(L);
        let mut got = None;
        for end in (step..bytes.len() + step).step_by(step) {
            got = s.poll(&bytes[..end.min(bytes.len())])?;
            if got.is_some() {
                break;
            }
        }
        Ok(got)
    }

    fn head(text: &str) -> Result<RequestHead, Refusal> {
        let n = scan(text.as_bytes(), text.len())?.expect("complete head");
        parse_request_head(&text.as_bytes()[..n], &L)
    }

    #[test]
    fn percent_round_trip() {
        for s in ["plain", "a b/c?d=e&f", "ünï", "%", "100%"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn a_head_is_found_whether_it_arrives_whole_or_a_byte_at_a_time() {
        let req = b"GET /v1/networks HTTP/1.1\r\nHost: x\r\n\r\n{}";
        assert_eq!(scan(req, req.len()), Ok(Some(req.len() - 2)));
        assert_eq!(scan(req, 1), Ok(Some(req.len() - 2)));
        assert_eq!(scan(b"GET / HTTP/1.1\nHost: x\n\n", 3), Ok(Some(24)));
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: x\r\n", 5), Ok(None));
    }

    #[test]
    fn a_request_line_without_a_newline_is_refused_at_its_limit_with_414() {
        let line = vec![b'G'; L.start_line + 1];
        assert_eq!(scan(&line, 4096).unwrap_err().status, 414);
        assert_eq!(scan(&line[..L.start_line], 4096), Ok(None));
    }

    #[test]
    fn a_long_header_line_is_refused_with_431() {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.extend(vec![b'a'; L.header_line]);
        assert_eq!(scan(&req, 1000).unwrap_err().status, 431);
    }

    #[test]
    fn too_many_header_lines_are_refused_with_431() {
        let mut req = "GET / HTTP/1.1\r\n".to_string();
        for i in 0..=L.headers {
            req.push_str(&format!("X-{i}: y\r\n"));
        }
        let err = scan(req.as_bytes(), 7).unwrap_err();
        assert_eq!(err.status, 431);
        assert!(err.message.contains("header lines"), "{}", err.message);
    }

    #[test]
    fn a_head_over_its_total_limit_is_refused_with_431() {
        let mut req = "GET / HTTP/1.1\r\n".to_string();
        while req.len() <= L.head {
            req.push_str(&format!("X-{}: {}\r\n", req.len(), "v".repeat(1000)));
        }
        assert_eq!(scan(req.as_bytes(), 512).unwrap_err().status, 431);
    }

    #[test]
    fn the_request_line_path_and_query_are_decoded() {
        let h = head(
            "POST /v1/networks/my%20net?force=1&filter=a%3Db HTTP/1.1\r\nContent-Length: 7\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/v1/networks/my net");
        assert_eq!(
            h.query,
            [
                ("force".into(), "1".into()),
                ("filter".into(), "a=b".into())
            ]
        );
        assert_eq!(h.framing, Framing::Length(7));
    }

    #[test]
    fn bad_content_lengths_are_refused_with_400() {
        for v in ["abc", "-1", "1 2", "", "0x10", "+5"] {
            let err = head(&format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n")).unwrap_err();
            assert_eq!(err.status, 400, "Content-Length {v:?}");
        }
        let err =
            head("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn a_content_length_over_the_body_limit_is_refused_with_413() {
        for v in [
            (L.body + 1).to_string(),
            "99999999999999999999999999".to_string(),
        ] {
            let err = head(&format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n")).unwrap_err();
            assert_eq!(err.status, 413, "Content-Length {v}");
        }
    }

    #[test]
    fn invalid_utf8_in_the_head_is_refused_with_400() {
        let req = b"GET /\xff\xfe HTTP/1.1\r\n\r\n";
        let err = parse_request_head(req, &L).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("UTF-8"), "{}", err.message);
    }

    #[test]
    fn malformed_request_lines_and_headers_are_refused_with_400() {
        for req in [
            "GET\r\n\r\n",
            "GET /\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\n\r\n",
            "GET / FTP/1.0\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            assert_eq!(head(req).unwrap_err().status, 400, "{req:?}");
        }
    }

    #[test]
    fn other_http_versions_are_refused_with_505() {
        assert_eq!(head("GET / HTTP/2.0\r\n\r\n").unwrap_err().status, 505);
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_refused_with_501() {
        for te in ["gzip", "gzip, chunked", "identity"] {
            let err = head(&format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n"
            ))
            .unwrap_err();
            assert_eq!(err.status, 501, "{te}");
        }
    }

    #[test]
    fn chunked_with_content_length_is_refused_with_400() {
        let err =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn expect_100_continue_is_noted_and_other_expectations_refused() {
        let h =
            head("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert!(h.expect_continue);
        assert_eq!(
            head("POST / HTTP/1.1\r\nExpect: magic\r\n\r\n")
                .unwrap_err()
                .status,
            417
        );
    }

    fn decode(input: &[u8], step: usize) -> Result<Option<Vec<u8>>, Refusal> {
        let mut d = ChunkedDecoder::new(L);
        for end in (step..input.len() + step).step_by(step) {
            if d.poll(&input[..end.min(input.len())])? {
                return Ok(Some(d.into_body()));
            }
        }
        Ok(None)
    }

    #[test]
    fn a_chunked_body_is_decoded_whole_or_a_byte_at_a_time() {
        let body = b"7;ext=1\r\n{\"x\":1}\r\n3\r\n123\r\n0\r\nTrailer: t\r\n\r\n";
        for step in [1, 2, 5, body.len()] {
            assert_eq!(
                decode(body, step),
                Ok(Some(b"{\"x\":1}123".to_vec())),
                "step {step}"
            );
        }
        assert_eq!(
            decode(b"A\r\n0123456789\r\n0\r\n\r\n", 1),
            Ok(Some(b"0123456789".to_vec()))
        );
    }

    #[test]
    fn an_unfinished_chunked_body_asks_for_more() {
        assert_eq!(decode(b"5\r\nab", 1), Ok(None));
        assert_eq!(decode(b"0\r\n", 1), Ok(None));
    }

    #[test]
    fn bad_chunk_framing_is_refused_with_400() {
        for body in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(decode(body, 1).unwrap_err().status, 400, "{body:?}");
        }
    }

    #[test]
    fn a_chunked_body_over_the_limit_is_refused_with_413_before_it_is_buffered() {
        let mut d = ChunkedDecoder::new(L);
        let big = format!("{:x}\r\n", L.body + 1);
        assert_eq!(d.poll(big.as_bytes()).unwrap_err().status, 413);
        // Many small chunks add up too.
        let mut input = Vec::new();
        let chunk = vec![b'a'; 4096];
        for _ in 0..=(L.body / 4096) {
            input.extend_from_slice(b"1000\r\n");
            input.extend_from_slice(&chunk);
            input.extend_from_slice(b"\r\n");
        }
        assert_eq!(decode(&input, 65536).unwrap_err().status, 413);
    }

    #[test]
    fn an_endless_chunk_size_line_is_refused() {
        let line = vec![b'1'; 2000];
        assert_eq!(decode(&line, 100).unwrap_err().status, 431);
    }

    #[test]
    fn a_response_is_read_back_as_sent() {
        let resp = Response::json(201, &serde_json::json!({"ok": true}));
        let got = read_response(&mut resp.to_bytes().as_slice()).unwrap();
        assert_eq!(got, resp);
    }

    #[test]
    fn a_reply_cut_short_is_no_reply() {
        let bytes = Response::json(200, &serde_json::json!({"ok": true})).to_bytes();
        for cut in [0, 10, bytes.len() - 1] {
            assert!(
                matches!(
                    read_response(&mut &bytes[..cut]),
                    Err(CallError::NoReply(_))
                ),
                "cut at {cut}"
            );
        }
    }
}

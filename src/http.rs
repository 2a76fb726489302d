//! Just enough HTTP/1.1 for the daemon's API over a unix socket: one
//! request per connection, `Content-Length` bodies of JSON. Both ends are
//! ours, so a full HTTP stack would buy nothing but dependencies; any HTTP
//! client that speaks unix sockets (`curl --unix-socket`) works too.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Largest request or response body accepted (state listings stay far
/// below this).
const MAX_BODY: usize = 16 << 20;
const MAX_HEADER_LINES: usize = 100;

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
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads headers and a `Content-Length` body; returns the start line.
fn read_message(reader: &mut impl BufRead) -> io::Result<(String, Vec<u8>)> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a request",
        ));
    }
    let mut length = 0usize;
    for _ in 0..MAX_HEADER_LINES {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            return Ok((start.trim_end().to_string(), body));
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
                if length > MAX_BODY {
                    return Err(bad("body too large"));
                }
            }
        }
    }
    Err(bad("too many header lines"))
}

/// Reads one request from a connection.
pub fn read_request(stream: &mut UnixStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let (start, body) = read_message(&mut reader)?;
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts
        .next()
        .ok_or_else(|| bad("request line has no target"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(Request {
        method,
        path: percent_decode(path),
        query,
        body,
    })
}

/// Writes a response and flushes.
pub fn write_response(stream: &mut UnixStream, resp: &Response) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&resp.body)?;
    stream.flush()
}

/// Sends one request to the daemon at `socket` and returns the response.
pub fn call(
    socket: &Path,
    method: &str,
    target: &str,
    body: Option<&serde_json::Value>,
) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    // Creating a sandbox spawns processes and configures interfaces; give
    // it time, but never hang forever on a wedged daemon.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body
        .map(|b| serde_json::to_vec(b).expect("JSON values serialise"))
        .unwrap_or_default();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: switchyard\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()?;
    let mut reader = BufReader::new(&mut stream);
    let (start, body) = read_message(&mut reader)?;
    let status = start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {start:?}")))?;
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

fn percent_decode(s: &str) -> String {
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

    #[test]
    fn percent_round_trip() {
        for s in ["plain", "a b/c?d=e&f", "ünï", "%", "100%"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn request_and_response_cross_a_socket() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let req = read_request(&mut b).unwrap();
            assert_eq!(req.method, "POST");
            assert_eq!(req.path, "/v1/networks/my net");
            assert_eq!(req.query_param("force"), Some("1"));
            assert_eq!(req.body, br#"{"x":1}"#);
            write_response(
                &mut b,
                &Response::json(201, &serde_json::json!({"ok": true})),
            )
            .unwrap();
        });
        a.write_all(
            b"POST /v1/networks/my%20net?force=1 HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"x\":1}",
        )
        .unwrap();
        let mut reader = BufReader::new(&mut a);
        let (start, body) = read_message(&mut reader).unwrap();
        assert!(start.starts_with("HTTP/1.1 201"));
        assert_eq!(body, br#"{"ok":true}"#);
        t.join().unwrap();
    }
}

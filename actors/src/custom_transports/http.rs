//! http - a minimal HTTP/1.1 client for the webhook transport: one POST
//! per connection (no Postfix counterpart; Postfix has no HTTP client).
//!
//! Enough of RFC 9112 for a webhook: `http://host[:port]/path` URLs (no
//! TLS), a request with `Content-Length` and `Connection: close`, a response
//! status line and headers (interim `1xx` heads skipped), and at most
//! [`BODY_LIMIT`] bytes of the body, kept for the status text. Connecting,
//! sending and reading the head share one deadline, so a slow server cannot
//! hold a delivery forever; the head alone decides the result, and the body
//! is then waited for only [`BODY_WAIT`], so a server that answers 200 but
//! keeps the connection open does not turn a delivery into a timeout (and a
//! duplicate on the next try).
//!
//! # Errors
//! [`HttpError`] tells a site failure (could not connect: refused,
//! unreachable, unresolvable, connect timeout) from a failure after the
//! connection was up (timeout waiting for the answer, lost connection,
//! garbage), because the first makes the destination dead and the second
//! only defers the mail.
//!
//! # Invariants
//! - Header bytes are bounded ([`HEAD_LIMIT`]); a longer head is
//!   [`HttpError::Malformed`], never a large allocation.
//! - Header values we send cannot carry CR or LF (URL parts are checked).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes of status line and headers read.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Most bytes of body kept.
pub const BODY_LIMIT: usize = 1024;

/// An `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (brackets removed for IPv6).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path]`.
    ///
    /// # Errors
    /// A text naming what is wrong.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| format!("\"{text}\": only http:// URLs are supported"))?;
        if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("\"{text}\": white space or control character"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("\"{text}\": user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("\"{text}\": unterminated IPv6 address"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("\"{text}\": no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("\"{text}\": bad port \"{p}\""))?,
        };
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` for the `Host` header (brackets for IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The first [`BODY_LIMIT`] bytes of the body.
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// No connection: refused, unreachable, unresolvable or too slow.
    Connect {
        /// `host[addr]:port` or the host name when it did not resolve.
        peer: String,
        /// Why.
        error: io::Error,
    },
    /// The server did not answer in time once connected.
    Timeout {
        /// `host[addr]:port`.
        peer: String,
    },
    /// The connection broke during the exchange.
    Io {
        /// `host[addr]:port`.
        peer: String,
        /// Why.
        error: io::Error,
    },
    /// The answer is not HTTP/1.x.
    Malformed {
        /// `host[addr]:port`.
        peer: String,
        /// What is wrong.
        what: String,
    },
}

impl HttpError {
    /// True when the destination could not be reached at all.
    pub fn is_site_failure(&self) -> bool {
        matches!(self, HttpError::Connect { .. } | HttpError::Timeout { .. })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect { peer, error } => {
                write!(
                    f,
                    "connect to {peer}: {}",
                    crate::postfix::log::errno_text(error)
                )
            }
            HttpError::Timeout { peer } => {
                write!(
                    f,
                    "conversation with {peer} timed out while receiving the response"
                )
            }
            HttpError::Io { peer, error } => write!(
                f,
                "lost connection with {peer}: {}",
                crate::postfix::log::errno_text(error)
            ),
            HttpError::Malformed { peer, what } => {
                write!(f, "malformed response from {peer}: {what}")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// `host[addr]:port`, as Postfix names peers.
fn peer_name(host: &str, addr: &SocketAddr) -> String {
    format!("{host}[{}]:{}", addr.ip(), addr.port())
}

/// Posts `body` with `content_type` to `url`, all within `timeout`;
/// returns the response and the peer's name.
///
/// # Errors
/// [`HttpError`].
pub async fn post(
    url: &Url,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(Response, String), HttpError> {
    let deadline = crate::clock::io_now() + timeout;
    let host_only = format!("{}:{}", url.host, url.port);
    // Resolve and connect: a failure here is a site failure.
    let connect = async {
        let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|error| HttpError::Connect {
                peer: host_only.clone(),
                error,
            })?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok((s, peer_name(&url.host, &addr))),
                Err(error) => last = Some((peer_name(&url.host, &addr), error)),
            }
        }
        let (peer, error) = last.unwrap_or_else(|| {
            (
                host_only.clone(),
                io::Error::new(io::ErrorKind::NotFound, "host not found"),
            )
        });
        Err(HttpError::Connect { peer, error })
    };
    let (mut stream, peer) = match tokio::time::timeout_at(deadline, connect).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(HttpError::Connect {
                peer: host_only,
                error: io::Error::new(io::ErrorKind::TimedOut, "Connection timed out"),
            })
        }
    };
    // Phase 1, within the deadline: the request and the response head.
    // The head alone decides the result.
    let exchange = async {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: oqmgr\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            url.path,
            url.authority(),
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        read_head(&mut stream).await
    };
    let mut head = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => return Err(HttpError::Timeout { peer }),
        Ok(Err(ReadError::Io(error))) => return Err(HttpError::Io { peer, error }),
        Ok(Err(ReadError::Malformed(what))) => return Err(HttpError::Malformed { peer, what }),
        Ok(Ok(h)) => h,
    };
    // Phase 2, best effort: a little of the body for the status text. A
    // server that keeps the connection open without a length must not turn
    // a delivered message into a timeout (and a second delivery later).
    let want = head.length.unwrap_or(BODY_LIMIT).min(BODY_LIMIT);
    let _ = tokio::time::timeout(BODY_WAIT, read_more(&mut stream, &mut head.body, want)).await;
    head.body.truncate(want);
    if head.chunked {
        head.body = first_chunk(&head.body);
    }
    Ok((
        Response {
            status: head.status,
            reason: head.reason,
            body: head.body,
        },
        peer,
    ))
}

/// How long the body is waited for once the head is in.
pub const BODY_WAIT: Duration = Duration::from_millis(500);

/// A response head and the body bytes read with it.
struct Head {
    /// Status code.
    status: u16,
    /// Reason phrase.
    reason: String,
    /// `Content-Length`, if given.
    length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    chunked: bool,
    /// Body bytes read so far.
    body: Vec<u8>,
}

/// A failure reading the response.
enum ReadError {
    /// The socket failed or closed early.
    Io(io::Error),
    /// Not HTTP.
    Malformed(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads the final response head (interim 1xx heads are skipped).
async fn read_head<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Head, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            if buf.len() > HEAD_LIMIT {
                return Err(ReadError::Malformed("response head too long".into()));
            }
            let mut chunk = [0u8; 2048];
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response",
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let rest = buf.split_off(head_end + 4);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let (status, reason) = parse_status_line(status_line)
            .ok_or_else(|| ReadError::Malformed(format!("bad status line \"{status_line}\"")))?;
        if status < 200 {
            buf = rest;
            continue;
        }
        let mut head = Head {
            status,
            reason,
            length: None,
            chunked: false,
            body: rest,
        };
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    head.length = value.trim().parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    head.chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        return Ok(head);
    }
}

/// Reads until `body` holds `want` bytes or the peer closes.
async fn read_more<R: AsyncReadExt + Unpin>(r: &mut R, body: &mut Vec<u8>, want: usize) {
    while body.len() < want {
        let mut chunk = [0u8; 1024];
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The data of the first chunk of a chunked body (enough for a status
/// text), or nothing when it is not readable.
fn first_chunk(body: &[u8]) -> Vec<u8> {
    let Some(i) = find(body, b"\r\n") else {
        return Vec::new();
    };
    let size_text = String::from_utf8_lossy(&body[..i]);
    let size_text = size_text.split(';').next().unwrap_or("").trim();
    let Ok(size) = usize::from_str_radix(size_text, 16) else {
        return Vec::new();
    };
    let data = &body[i + 2..];
    data[..size.min(data.len())].to_vec()
}

/// `HTTP/1.x NNN reason`.
fn parse_status_line(line: &str) -> Option<(u16, String)> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let (_, rest) = rest.split_once(' ')?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return None;
    }
    let status = code.parse().ok().filter(|s| (100..600).contains(s))?;
    Some((status, reason.trim().to_string()))
}

/// The first index of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A loopback port nothing listens on (bound a moment ago, then
    /// released).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/in?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/in?x=1")
        );
        let u = Url::parse("http://hooks.example").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:81/a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:81".to_string())
        );
        for bad in [
            "https://x/",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://a b/",
            "http://u@h/",
            "http://h/\r\n",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line("HTTP/1.1 200 OK"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            parse_status_line("HTTP/1.0 404"),
            Some((404, String::new()))
        );
        assert_eq!(parse_status_line("HTTP/2 200 OK"), None);
        assert_eq!(parse_status_line("HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line("garbage"), None);
    }

    /// A one-shot server answering `answer`; returns its port and the
    /// request it got.
    fn serve(answer: &'static [u8], delay: Duration) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head and the announced body.
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
                if let Some(i) = find(&got, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..i]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if got.len() >= i + 4 + len {
                        break;
                    }
                }
            }
            std::thread::sleep(delay);
            let _ = s.write_all(answer);
            got
        });
        (port, h)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn posts_and_reads_the_answer() {
        let (port, h) = serve(
            b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello, extra",
            Duration::ZERO,
        );
        let url = Url::parse(&format!("http://127.0.0.1:{port}/in")).unwrap();
        let (r, peer) = rt()
            .block_on(post(
                &url,
                "application/json",
                b"{\"a\":1}",
                Duration::from_secs(5),
            ))
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice()),
            (201, "Created", &b"hello"[..])
        );
        assert_eq!(peer, format!("127.0.0.1[127.0.0.1]:{port}"));
        let got = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(got.starts_with("POST /in HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{got}"
        );
        assert!(got.contains("Content-Length: 7\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\n{\"a\":1}"), "{got}");
    }

    #[test]
    fn refused_is_a_site_failure() {
        let port = closed_port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = rt()
            .block_on(post(&url, "t", b"", Duration::from_secs(5)))
            .unwrap_err();
        assert!(e.is_site_failure(), "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");
    }

    #[test]
    fn slow_is_a_timeout_and_garbage_is_malformed() {
        let (port, h) = serve(b"HTTP/1.1 200 OK\r\n\r\n", Duration::from_millis(1500));
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = rt()
            .block_on(post(&url, "t", b"x", Duration::from_millis(300)))
            .unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        let _ = h.join();
        let (port, h) = serve(b"SMTP ready\r\n\r\n", Duration::ZERO);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = rt()
            .block_on(post(&url, "t", b"x", Duration::from_secs(5)))
            .unwrap_err();
        assert!(matches!(e, HttpError::Malformed { .. }), "{e}");
        assert!(!e.is_site_failure());
        let _ = h.join();
        // Closed without an answer.
        let (port, h) = serve(b"", Duration::ZERO);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = rt()
            .block_on(post(&url, "t", b"x", Duration::from_secs(5)))
            .unwrap_err();
        assert!(matches!(e, HttpError::Io { .. }), "{e}");
        let _ = h.join();
    }

    #[test]
    fn a_server_that_keeps_the_connection_open_still_delivers() {
        // No length, no close: the head decides; the body wait is short.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut chunk = [0u8; 4096];
            let _ = s.read(&mut chunk);
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            std::thread::sleep(Duration::from_secs(2));
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let (r, _) = rt()
            .block_on(post(&url, "t", b"x", Duration::from_secs(1)))
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let _ = h.join();
    }

    #[test]
    fn an_endless_head_is_refused() {
        static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let big: &'static [u8] = BIG.get_or_init(|| {
            let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
            v.extend(std::iter::repeat_n(b"X-A: b\r\n", 4000).flatten());
            v
        });
        let (port, h) = serve(big, Duration::ZERO);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = rt()
            .block_on(post(&url, "t", b"x", Duration::from_secs(5)))
            .unwrap_err();
        assert!(matches!(e, HttpError::Malformed { .. }), "{e}");
        let _ = h.join();
    }
}

//! A small blocking HTTP/1.1 client for the model gateway on its Unix
//! socket (see [`crate::gateway`] for the protocol).
//!
//! One connection per request (`Connection: close`), the whole answer read
//! before parsing; `Content-Length` and chunked bodies are both accepted.

use crate::gateway::{ChatRequest, ChatResponse, GatewayError, ModelUsage};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one call may take, end to end. The gateway applies the
/// provider's timeout and retries behind it, so this only guards against a
/// gateway that stopped answering; the runner's task timeout stays the
/// real limit.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Largest answer accepted from the gateway.
const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// Why a gateway call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The gateway answered with an error.
    Gateway {
        /// HTTP status.
        status: u16,
        /// Its body.
        error: GatewayError,
    },
    /// The socket could not be used or the answer was not HTTP/JSON.
    Transport(String),
}

impl CallError {
    /// The gateway's code (`budget_exhausted`, ...), if it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Gateway { error, .. } => Some(&error.code),
            Self::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway { status, error } => {
                write!(
                    f,
                    "model gateway: {} ({status} {})",
                    error.message, error.code
                )
            }
            Self::Transport(m) => write!(f, "model gateway: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

/// What the review needs from a model gateway.
pub trait Gateway {
    /// `POST /v1/chat`.
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, CallError>;
    /// `GET /v1/usage`.
    fn usage(&self) -> Result<ModelUsage, CallError>;
}

/// The gateway on a Unix socket.
#[derive(Debug, Clone)]
pub struct SocketGateway {
    path: PathBuf,
    timeout: Duration,
}

impl SocketGateway {
    /// A client for the socket at `path`, with [`CALL_TIMEOUT`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            timeout: CALL_TIMEOUT,
        }
    }

    /// Changes the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let t = |e: std::io::Error| {
            CallError::Transport(format!("{} {target}: {e}", self.path.display()))
        };
        let deadline = Instant::now() + self.timeout;
        let mut s = UnixStream::connect(&self.path).map_err(t)?;
        s.set_write_timeout(Some(self.timeout)).map_err(t)?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).map_err(t)?;
        if let Some(b) = body {
            s.write_all(b).map_err(t)?;
        }
        s.flush().map_err(t)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Transport(format!(
                    "no complete answer to {target} within {}s",
                    self.timeout.as_secs()
                )));
            }
            s.set_read_timeout(Some(left)).map_err(t)?;
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_RESPONSE_BYTES {
                        return Err(CallError::Transport(format!(
                            "answer to {target} is too large"
                        )));
                    }
                    if let Some(done) = complete_response(&raw) {
                        return done;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(CallError::Transport(format!(
                        "no complete answer to {target} within {}s",
                        self.timeout.as_secs()
                    )));
                }
                Err(e) => return Err(t(e)),
            }
        }
        complete_response(&raw).unwrap_or_else(|| {
            parse_response(&raw, true).and_then(|r| {
                r.ok_or_else(|| CallError::Transport(format!("truncated answer to {target}")))
            })
        })
    }
}

/// The parsed response once `raw` holds all of it.
fn complete_response(raw: &[u8]) -> Option<Result<(u16, Vec<u8>), CallError>> {
    match parse_response(raw, false) {
        Ok(Some(r)) => Some(Ok(r)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Parses an HTTP/1.1 response: `Ok(None)` while incomplete. With `eof`,
/// a body without length runs to the end.
fn parse_response(raw: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, CallError> {
    let bad = |m: &str| CallError::Transport(format!("malformed HTTP answer: {m}"));
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("header is not text"))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| bad("status line"))?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| bad("content-length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding")
            && v.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    if chunked {
        return Ok(decode_chunked(body)?.map(|b| (status, b)));
    }
    match length {
        Some(n) if body.len() >= n => Ok(Some((status, body[..n].to_vec()))),
        Some(_) => Ok(None),
        None if eof => Ok(Some((status, body.to_vec()))),
        None => Ok(None),
    }
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn decode_chunked(mut body: &[u8]) -> Result<Option<Vec<u8>>, CallError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&body[..eol]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| CallError::Transport("malformed HTTP answer: chunk size".into()))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
    what: &str,
) -> Result<T, CallError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|e| CallError::Transport(format!("invalid {what} from the gateway: {e}")));
    }
    let error = serde_json::from_slice::<GatewayError>(body).unwrap_or_else(|_| GatewayError {
        code: format!("http_{status}"),
        message: String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned(),
    });
    Err(CallError::Gateway { status, error })
}

impl Gateway for SocketGateway {
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::Transport(e.to_string()))?;
        let (status, answer) = self.request("POST", "/v1/chat", Some(&body))?;
        decode(status, &answer, "chat answer")
    }

    fn usage(&self) -> Result<ModelUsage, CallError> {
        let (status, answer) = self.request("GET", "/v1/usage", None)?;
        decode(status, &answer, "usage")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Serves one connection with `answer`, returning what was received.
    fn serve_once(
        answer: Vec<u8>,
    ) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("s.sock");
        let l = UnixListener::bind(&path).expect("bind");
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || !request_complete(&got) {
                let n = c.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(&answer).expect("write");
            got
        });
        (d, path, h)
    }

    fn request_complete(got: &[u8]) -> bool {
        matches!(parse_response_like_request(got), Some(true))
    }

    fn parse_response_like_request(got: &[u8]) -> Option<bool> {
        let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
        Some(got.len() >= end + 4 + len)
    }

    #[test]
    fn posts_json_and_reads_content_length_and_chunked_answers() {
        let body = r#"{"content":"ok","usage":{"inputTokens":3,"outputTokens":1},"cached":true,"model":"m"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (_d, path, h) = serve_once(answer.into_bytes());
        let req = ChatRequest {
            messages: vec![],
            max_tokens: Some(5),
            json: true,
            label: Some("review 1/1".into()),
        };
        let r = SocketGateway::new(&path).chat(&req).expect("chat");
        assert!(r.cached && r.content == "ok");
        let sent = String::from_utf8(h.join().expect("join")).expect("utf8");
        assert!(
            sent.starts_with("POST /v1/chat HTTP/1.1\r\n") && sent.contains("Connection: close")
        );
        assert!(sent.ends_with(&serde_json::to_string(&req).expect("json")));

        let usage = r#"{"calls":2,"cachedCalls":1,"retries":0,"inputTokens":1,"outputTokens":1,"billedInputTokens":0,"billedOutputTokens":0,"latencyMs":0}"#;
        let mut chunked = String::from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for piece in usage.as_bytes().chunks(17) {
            let piece = std::str::from_utf8(piece).expect("ascii");
            chunked.push_str(&format!("{:x};ext=1\r\n{piece}\r\n", piece.len()));
        }
        chunked.push_str("0\r\n\r\n");
        let (_d2, path, h) = serve_once(chunked.as_bytes().to_vec());
        let u = SocketGateway::new(&path).usage().expect("usage");
        assert_eq!((u.calls, u.cached_calls), (2, 1));
        assert!(
            String::from_utf8_lossy(&h.join().expect("join"))
                .starts_with("GET /v1/usage HTTP/1.1\r\n")
        );
    }

    #[test]
    fn maps_error_statuses_missing_sockets_and_silence() {
        let body = r#"{"code":"budget_exhausted","message":"budget of 100 tokens used"}"#;
        let answer = format!(
            "HTTP/1.1 402 Payment Required\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (_d, path, _h) = serve_once(answer.into_bytes());
        let e = SocketGateway::new(&path).usage().expect_err("402");
        assert_eq!(e.code(), Some("budget_exhausted"));
        assert!(e.to_string().contains("budget of 100 tokens used"));

        let e = SocketGateway::new("/nonexistent/model.sock")
            .usage()
            .expect_err("no socket");
        assert!(
            matches!(e, CallError::Transport(_))
                && e.to_string().contains("/nonexistent/model.sock")
        );

        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("mute.sock");
        let l = UnixListener::bind(&path).expect("bind");
        let keep = std::thread::spawn(move || {
            let (c, _) = l.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(400));
            drop(c);
        });
        let e = SocketGateway::new(&path)
            .with_timeout(Duration::from_millis(100))
            .usage()
            .expect_err("timeout");
        assert!(e.to_string().contains("no complete answer"), "{e}");
        keep.join().expect("join");

        let (_d3, path, _h) =
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}".to_vec());
        assert!(
            SocketGateway::new(&path)
                .usage()
                .expect_err("short")
                .to_string()
                .contains("truncated")
        );
    }
}

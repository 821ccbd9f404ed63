//! A real SMTP receiver (RFC 5321) on loopback, for tests that send mail.
//!
//! [`SmtpReceiver::start`] listens on `127.0.0.1:0` and speaks the protocol
//! a relay speaks: EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN and LOGIN
//! (RFC 4954), MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT,
//! several messages per connection. TLS uses a self-signed certificate for
//! `localhost` and `127.0.0.1` made at start; the client must trust
//! [`SmtpReceiver::ca_pem`]. Accepted messages are recorded as
//! [`Received`], which can parse them ([`Received::subject`],
//! [`Received::text_body`], …).
//!
//! It is strict where RFC 5321 is: commands and message lines end with
//! CRLF (a bare LF is refused), command lines are at most 512 octets and
//! text lines 1000 (CRLF included), messages at most
//! [`MAX_MESSAGE_SIZE`] octets.
//!
//! Misbehaviour on demand: [`SmtpReceiver::fail_next`] (MAIL refused),
//! [`SmtpReceiver::fail_next_data`] (message refused at the end of DATA),
//! [`SmtpReceiver::hang`] (connections accepted, no greeting ever sent).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mailparse::{DispositionType, MailHeaderMap, ParsedMail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The largest message accepted (advertised as `SIZE`), in octets.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// RFC 5321 §4.5.3.1.4: a command line, CRLF included.
const MAX_COMMAND_LINE: usize = 512;
/// RFC 5321 §4.5.3.1.6: a text line, CRLF included.
const MAX_TEXT_LINE: usize = 1000;
/// RFC 5321 §4.5.3.1.8 asks for at least 100.
const MAX_RECIPIENTS: usize = 100;
/// A connection silent for this long is closed with a 421.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The name the receiver gives itself.
const HOSTNAME: &str = "localhost";

/// How the receiver protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connect; EHLO offers STARTTLS, and AUTH only after it; mail
    /// is refused until STARTTLS (a submission port, 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all; AUTH is not offered.
    Plain,
}

/// One message the receiver accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The reverse path of `MAIL FROM:<…>` (empty for `<>`).
    pub mail_from: String,
    /// Each `RCPT TO:<…>`, in order.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line endings,
    /// without the terminating `.` line.
    pub data: String,
    /// Whether the message came over TLS.
    pub tls: bool,
    /// The user that authenticated on the connection, if any.
    pub auth_user: Option<String>,
}

impl Received {
    /// The message parsed.
    ///
    /// # Panics
    /// If the message is not a parseable RFC 5322 message.
    pub fn parsed(&self) -> ParsedMail<'_> {
        mailparse::parse_mail(self.data.as_bytes())
            .unwrap_or_else(|e| panic!("received message does not parse: {e}\n{}", self.data))
    }

    /// The `Subject`, RFC 2047 encoded words decoded; empty when absent.
    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The first header called `name` (any case), decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().headers.get_first_value(name)
    }

    /// The text/plain body (the first inline text/plain part of a
    /// multipart message), transfer encoding and charset decoded; empty
    /// when there is none.
    ///
    /// # Panics
    /// If the part's body cannot be decoded.
    pub fn text_body(&self) -> String {
        let mail = self.parsed();
        find_part(&mail, "text/plain")
            .map(|p| p.get_body().expect("decode the text/plain body"))
            .unwrap_or_default()
    }

    /// The text/html body, decoded, if the message has one.
    ///
    /// # Panics
    /// If the part's body cannot be decoded.
    pub fn html_body(&self) -> Option<String> {
        let mail = self.parsed();
        find_part(&mail, "text/html").map(|p| p.get_body().expect("decode the text/html body"))
    }
}

fn find_part<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> Option<&'a ParsedMail<'a>> {
    if mail.subparts.is_empty() {
        let attachment = mail.get_content_disposition().disposition == DispositionType::Attachment;
        (mail.ctype.mimetype.eq_ignore_ascii_case(mimetype) && !attachment).then_some(mail)
    } else {
        mail.subparts.iter().find_map(|p| find_part(p, mimetype))
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    fail_mail: (usize, String),
    fail_data: (usize, String),
    hang: bool,
    credentials: Option<(String, String)>,
    connections: usize,
    transcript: Vec<String>,
}

struct Shared {
    security: Security,
    acceptor: TlsAcceptor,
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test must not hide what was recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, line: String) {
        self.state().transcript.push(line);
    }

    fn take_failure(slot: &mut (usize, String)) -> Option<String> {
        if slot.0 == 0 {
            return None;
        }
        slot.0 -= 1;
        Some(slot.1.clone())
    }
}

/// A running SMTP receiver; stops (and drops its connections) when dropped.
pub struct SmtpReceiver {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("addr", &self.addr)
            .field("security", &self.shared.security)
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpReceiver {
    /// Starts a receiver on `127.0.0.1:0` with a fresh self-signed
    /// certificate.
    ///
    /// # Panics
    /// If no loopback port can be bound or the certificate cannot be made.
    pub async fn start(security: Security) -> Self {
        let (acceptor, ca_pem) = tls_acceptor();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP receiver on loopback");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            security,
            acceptor,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection still open.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => {
                            connections.spawn(serve_connection(accepting.clone(), tcp));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            ca_pem,
            shared,
            task,
        }
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address listened on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How connections are protected.
    pub fn security(&self) -> Security {
        self.shared.security
    }

    /// The PEM of the self-signed certificate (SANs `localhost` and
    /// `127.0.0.1`), which the client must trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A rustls client configuration (ring provider) that trusts only
    /// [`SmtpReceiver::ca_pem`], for raw test clients.
    ///
    /// # Panics
    /// If the certificate cannot be loaded (it was made at start).
    pub fn tls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("parse the PEM");
        roots.add(cert).expect("trust the certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Requires AUTH with `user` and `pass` before MAIL: MAIL without it
    /// is answered `530 5.7.0 Authentication required`, other credentials
    /// `535 5.7.8 Authentication credentials invalid`. Without this, any
    /// credentials are accepted (and recorded as `auth_user`).
    pub fn require_auth(&self, user: &str, pass: &str) -> &Self {
        self.shared.state().credentials = Some((user.to_owned(), pass.to_owned()));
        self
    }

    /// Answers the next `n` MAIL commands with `reply` (a full reply line
    /// such as `451 4.3.0 Try again later` or `550 5.7.1 No`); a `421`
    /// reply also closes the connection.
    pub fn fail_next(&self, n: usize, reply: &str) -> &Self {
        self.shared.state().fail_mail = (n, reply.to_owned());
        self
    }

    /// Answers the end of the next `n` DATA with `reply` instead of
    /// accepting the message (which is then not recorded); a `421` reply
    /// also closes the connection.
    pub fn fail_next_data(&self, n: usize, reply: &str) -> &Self {
        self.shared.state().fail_data = (n, reply.to_owned());
        self
    }

    /// While on, connections are accepted and never greeted (the client
    /// must time out).
    pub fn hang(&self, on: bool) -> &Self {
        self.shared.state().hang = on;
        self
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// The conversation so far (`C: …`, `S: …`, connection events),
    /// AUTH payloads redacted: for failure messages.
    pub fn transcript(&self) -> Vec<String> {
        self.shared.state().transcript.clone()
    }

    /// Waits until at least `n` messages were accepted and returns them
    /// all.
    ///
    /// # Panics
    /// When `timeout` passes first, showing what was received and the
    /// transcript.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let messages = self.messages();
                if messages.len() >= n {
                    return messages;
                }
                panic!(
                    "SMTP receiver: waited {timeout:?} for {n} message(s), got {}: {messages:#?}\ntranscript:\n{}",
                    messages.len(),
                    self.transcript().join("\n")
                );
            }
        }
    }
}

fn tls_acceptor() -> (TlsAcceptor, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec![HOSTNAME.to_owned(), "127.0.0.1".to_owned()])
            .expect("generate a self-signed certificate");
    let pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("use the certificate");
    (TlsAcceptor::from(Arc::new(config)), pem)
}

async fn serve_connection(shared: Arc<Shared>, mut tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let hang = {
        let mut s = shared.state();
        s.connections += 1;
        s.transcript.push("-- connection accepted".to_owned());
        s.hang
    };
    if hang {
        // Never greet; hold the connection until the client gives up.
        let mut sink = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        return;
    }
    let outcome = match shared.security {
        Security::Plain => converse(&shared, tcp, false, true).await.map(|_| ()),
        Security::Implicit => match shared.acceptor.accept(tcp).await {
            Ok(tls) => converse(&shared, tls, true, true).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Security::StartTls => match converse(&shared, tcp, false, true).await {
            Ok(Some(tcp)) => match shared.acceptor.accept(tcp).await {
                Ok(tls) => converse(&shared, tls, true, false).await.map(|_| ()),
                Err(e) => Err(e),
            },
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    let end = match outcome {
        Ok(()) => "-- connection closed".to_owned(),
        Err(e) => format!("-- connection error: {e}"),
    };
    shared.log(end);
}

/// What one read of a line gave.
enum Line {
    /// The peer closed (a partial last line is dropped).
    Eof,
    /// The line was longer than allowed; it was read and discarded.
    TooLong,
    /// A line without its ending; `crlf` is false for a bare LF.
    Text { bytes: Vec<u8>, crlf: bool },
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Line> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let (done, used) = {
            let available = r.fill_buf().await?;
            if available.is_empty() {
                return Ok(Line::Eof);
            }
            match available.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if !too_long {
                        buf.extend_from_slice(&available[..=i]);
                    }
                    (true, i + 1)
                }
                None => {
                    if !too_long {
                        buf.extend_from_slice(available);
                    }
                    (false, available.len())
                }
            }
        };
        r.consume(used);
        if buf.len() > max {
            too_long = true;
            buf.clear();
        }
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    buf.pop();
    let crlf = buf.last() == Some(&b'\r');
    if crlf {
        buf.pop();
    }
    Ok(Line::Text { bytes: buf, crlf })
}

/// A connection's conversation state.
struct Session {
    tls: bool,
    greeted: bool,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

struct Conn<'a, S> {
    io: tokio::io::BufReader<S>,
    shared: &'a Shared,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<'_, S> {
    async fn reply(&mut self, text: &str) -> io::Result<()> {
        for line in text.lines() {
            self.shared.log(format!("S: {line}"));
        }
        // One write per reply: two small writes would meet Nagle's
        // algorithm and the peer's delayed ACK.
        self.io.write_all(format!("{text}\r\n").as_bytes()).await?;
        self.io.flush().await
    }

    /// Reads a line within the idle timeout; `None` when the peer is gone.
    async fn line(&mut self, max: usize) -> io::Result<Option<Line>> {
        match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut self.io, max)).await {
            Ok(Ok(Line::Eof)) => Ok(None),
            Ok(Ok(line)) => Ok(Some(line)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.reply("421 4.4.2 localhost Idle timeout, closing connection")
                    .await?;
                Ok(None)
            }
        }
    }

    /// Reads one AUTH continuation line (base64 or `*`).
    async fn auth_line(&mut self) -> io::Result<Option<String>> {
        match self.line(MAX_COMMAND_LINE).await? {
            None => Ok(None),
            Some(Line::Text { bytes, crlf: true }) => {
                self.shared.log("C: <auth response redacted>".to_owned());
                Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
            }
            Some(_) => Ok(Some(String::new())),
        }
    }
}

/// Talks SMTP on `stream` until QUIT, EOF, or an accepted STARTTLS (then
/// the stream is handed back for the TLS handshake).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    stream: S,
    tls: bool,
    greet: bool,
) -> io::Result<Option<S>> {
    let mut c = Conn {
        io: tokio::io::BufReader::new(stream),
        shared,
    };
    let mut s = Session {
        tls,
        greeted: false,
        auth_user: None,
        mail_from: None,
        rcpt_to: Vec::new(),
    };
    if greet {
        c.reply(&format!("220 {HOSTNAME} ESMTP ai-review-testkit"))
            .await?;
    }
    loop {
        let (bytes, crlf) = match c.line(MAX_COMMAND_LINE).await? {
            None => return Ok(None),
            Some(Line::TooLong) => {
                shared.log("C: <overlong line>".to_owned());
                c.reply("500 5.5.2 Line too long").await?;
                continue;
            }
            Some(Line::Eof) => return Ok(None),
            Some(Line::Text { bytes, crlf }) => (bytes, crlf),
        };
        let Ok(line) = String::from_utf8(bytes) else {
            c.reply("500 5.5.2 Command is not valid UTF-8").await?;
            continue;
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        if verb == "AUTH" {
            let mech = arg.split(' ').next().unwrap_or("");
            shared.log(format!("C: AUTH {mech} <redacted>"));
        } else {
            shared.log(format!("C: {line}"));
        }
        if !crlf {
            c.reply("500 5.5.2 Bare LF received; lines end with CRLF")
                .await?;
            continue;
        }
        match verb.as_str() {
            "EHLO" | "HELO" => {
                if arg.is_empty() {
                    c.reply(&format!("501 5.5.4 Syntax: {verb} hostname"))
                        .await?;
                    continue;
                }
                s.greeted = true;
                s.reset_transaction();
                if verb == "HELO" {
                    c.reply(&format!("250 {HOSTNAME}")).await?;
                    continue;
                }
                let mut lines = vec![
                    format!("{HOSTNAME} greets {arg}"),
                    "PIPELINING".to_owned(),
                    format!("SIZE {MAX_MESSAGE_SIZE}"),
                    "8BITMIME".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                ];
                match (shared.security, s.tls) {
                    (Security::StartTls, false) => lines.push("STARTTLS".to_owned()),
                    (Security::Plain, _) => {}
                    _ => lines.push("AUTH PLAIN LOGIN".to_owned()),
                }
                let last = lines.len() - 1;
                let text = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect::<Vec<_>>()
                    .join("\r\n");
                c.reply(&text).await?;
            }
            "STARTTLS" => {
                if !arg.is_empty() {
                    c.reply("501 5.5.4 Syntax: STARTTLS (no parameters)")
                        .await?;
                } else if s.tls {
                    c.reply("503 5.5.1 TLS already active").await?;
                } else if shared.security != Security::StartTls {
                    c.reply("502 5.5.1 STARTTLS not available").await?;
                } else {
                    c.reply("220 2.0.0 Ready to start TLS").await?;
                    if !c.io.buffer().is_empty() {
                        // RFC 3207 §4.2: nothing may follow STARTTLS in
                        // the clear (command injection).
                        return Err(io::Error::other(
                            "data pipelined after STARTTLS before the handshake",
                        ));
                    }
                    return Ok(Some(c.io.into_inner()));
                }
            }
            "AUTH" => {
                let reply = auth(&mut c, &mut s, &arg).await?;
                match reply {
                    Some(r) => c.reply(&r).await?,
                    None => return Ok(None),
                }
            }
            "MAIL" => {
                let reply = mail(shared, &mut s, &arg);
                let close = reply.starts_with("421");
                c.reply(&reply).await?;
                if close {
                    return Ok(None);
                }
            }
            "RCPT" => {
                let reply = if s.mail_from.is_none() {
                    "503 5.5.1 Need MAIL command first".to_owned()
                } else {
                    match parse_path(&arg, "TO:") {
                        Some(addr) if addr.is_empty() => {
                            "501 5.1.3 Empty recipient address".to_owned()
                        }
                        Some(_) if s.rcpt_to.len() >= MAX_RECIPIENTS => {
                            "452 4.5.3 Too many recipients".to_owned()
                        }
                        Some(addr) => {
                            s.rcpt_to.push(addr);
                            "250 2.1.5 Ok".to_owned()
                        }
                        None => "501 5.5.4 Syntax: RCPT TO:<address>".to_owned(),
                    }
                };
                c.reply(&reply).await?;
            }
            "DATA" => {
                if !arg.is_empty() {
                    c.reply("501 5.5.4 Syntax: DATA (no parameters)").await?;
                    continue;
                }
                if s.mail_from.is_none() {
                    c.reply("503 5.5.1 Need MAIL command first").await?;
                    continue;
                }
                if s.rcpt_to.is_empty() {
                    c.reply("554 5.5.1 No valid recipients").await?;
                    continue;
                }
                c.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut c).await? else {
                    return Ok(None);
                };
                let reply = match data {
                    Err(refusal) => refusal,
                    Ok(data) => {
                        let mut st = shared.state();
                        match Shared::take_failure(&mut st.fail_data) {
                            Some(failure) => failure,
                            None => {
                                st.messages.push(Received {
                                    mail_from: s.mail_from.clone().unwrap_or_default(),
                                    rcpt_to: s.rcpt_to.clone(),
                                    data: String::from_utf8_lossy(&data).into_owned(),
                                    tls: s.tls,
                                    auth_user: s.auth_user.clone(),
                                });
                                let n = st.messages.len();
                                drop(st);
                                shared.changed.notify_waiters();
                                format!("250 2.0.0 Ok: queued as {n}")
                            }
                        }
                    }
                };
                s.reset_transaction();
                let close = reply.starts_with("421");
                c.reply(&reply).await?;
                if close {
                    return Ok(None);
                }
            }
            "RSET" => {
                s.reset_transaction();
                c.reply("250 2.0.0 Ok").await?;
            }
            "NOOP" => c.reply("250 2.0.0 Ok").await?,
            "QUIT" => {
                c.reply("221 2.0.0 Bye").await?;
                return Ok(None);
            }
            "VRFY" => c.reply("252 2.5.2 Cannot VRFY user").await?,
            _ => c.reply("500 5.5.2 Command not recognized").await?,
        }
    }
}

/// The address of `FROM:<addr> params` / `TO:<addr> params`; parameters
/// (SIZE, BODY, …) are ignored.
fn parse_path(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let addr = &rest[..end];
    if addr.contains(['<', ' ']) {
        return None;
    }
    Some(addr.to_owned())
}

fn mail(shared: &Shared, s: &mut Session, arg: &str) -> String {
    if !s.greeted {
        return "503 5.5.1 Send EHLO or HELO first".to_owned();
    }
    if shared.security == Security::StartTls && !s.tls {
        return "530 5.7.0 Must issue a STARTTLS command first".to_owned();
    }
    let mut st = shared.state();
    if st.credentials.is_some() && s.auth_user.is_none() {
        return "530 5.7.0 Authentication required".to_owned();
    }
    if s.mail_from.is_some() {
        return "503 5.5.1 Nested MAIL command".to_owned();
    }
    let Some(addr) = parse_path(arg, "FROM:") else {
        return "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned();
    };
    let size = arg.split_whitespace().skip(1).find_map(|p| {
        p.get(..5)
            .filter(|k| k.eq_ignore_ascii_case("SIZE="))
            .map(|_| &p[5..])
    });
    if let Some(size) = size {
        match size.parse::<usize>() {
            Ok(n) if n > MAX_MESSAGE_SIZE => {
                return "552 5.3.4 Message size exceeds fixed maximum message size".to_owned();
            }
            Ok(_) => {}
            Err(_) => return "501 5.5.4 Bad SIZE parameter".to_owned(),
        }
    }
    if let Some(failure) = Shared::take_failure(&mut st.fail_mail) {
        return failure;
    }
    s.mail_from = Some(addr);
    "250 2.1.0 Ok".to_owned()
}

/// Reads the message after `354` up to the `.` line. `None` when the peer
/// went away; `Some(Err(reply))` when the message is refused.
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<'_, S>,
) -> io::Result<Option<Result<Vec<u8>, String>>> {
    let mut data = Vec::new();
    let mut problem: Option<&'static str> = None;
    let mut lines = 0usize;
    loop {
        let (bytes, crlf) = match c.line(MAX_TEXT_LINE).await? {
            None | Some(Line::Eof) => return Ok(None),
            Some(Line::TooLong) => {
                problem.get_or_insert(
                    "550 5.6.0 Message has a line longer than 998 characters (RFC 5322 2.1.1)",
                );
                continue;
            }
            Some(Line::Text { bytes, crlf }) => (bytes, crlf),
        };
        if !crlf {
            // A bare LF neither ends the message nor belongs in it.
            problem.get_or_insert("550 5.6.11 Bare LF received; lines end with CRLF");
            continue;
        }
        if bytes == b"." {
            break;
        }
        lines += 1;
        let content = bytes.strip_prefix(b".").unwrap_or(&bytes);
        if data.len() + content.len() + 2 > MAX_MESSAGE_SIZE {
            problem.get_or_insert("552 5.3.4 Message size exceeds fixed maximum message size");
            continue;
        }
        data.extend_from_slice(content);
        data.extend_from_slice(b"\r\n");
    }
    c.shared.log(format!(
        "C: <{lines} message line(s), {} octets>",
        data.len()
    ));
    c.shared.log("C: .".to_owned());
    Ok(Some(match problem {
        Some(p) => Err(p.to_owned()),
        None => Ok(data),
    }))
}

/// Runs an AUTH exchange; the final reply, or `None` when the peer left.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Conn<'_, S>,
    s: &mut Session,
    arg: &str,
) -> io::Result<Option<String>> {
    if !s.greeted {
        return Ok(Some("503 5.5.1 Send EHLO first".to_owned()));
    }
    match (c.shared.security, s.tls) {
        (Security::Plain, _) => {
            return Ok(Some("502 5.5.1 AUTH not available".to_owned()));
        }
        (Security::StartTls, false) => {
            return Ok(Some(
                "538 5.7.11 Encryption required for requested authentication mechanism".to_owned(),
            ));
        }
        _ => {}
    }
    if s.auth_user.is_some() {
        return Ok(Some("503 5.5.1 Already authenticated".to_owned()));
    }
    if s.mail_from.is_some() {
        return Ok(Some(
            "503 5.5.1 AUTH not allowed during a mail transaction".to_owned(),
        ));
    }
    let mut words = arg.split_whitespace();
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Ok(Some(
            "501 5.5.4 Syntax: AUTH mechanism [initial-response]".to_owned(),
        ));
    }
    let cancelled = "501 5.7.0 Authentication cancelled".to_owned();
    let undecodable = "501 5.5.2 Cannot decode response".to_owned();
    let (user, pass) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => {
                    c.reply("334 ").await?;
                    match c.auth_line().await? {
                        Some(r) => r,
                        None => return Ok(None),
                    }
                }
            };
            if response == "*" {
                return Ok(Some(cancelled));
            }
            let Some(decoded) = decode_b64(&response) else {
                return Ok(Some(undecodable));
            };
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            let [_authzid, user, pass] = parts.as_slice() else {
                return Ok(Some(undecodable));
            };
            (
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            )
        }
        "LOGIN" => {
            let user = match initial {
                Some(r) => r,
                None => {
                    c.reply("334 VXNlcm5hbWU6").await?;
                    match c.auth_line().await? {
                        Some(r) => r,
                        None => return Ok(None),
                    }
                }
            };
            if user == "*" {
                return Ok(Some(cancelled));
            }
            let Some(user) = decode_b64(&user) else {
                return Ok(Some(undecodable));
            };
            c.reply("334 UGFzc3dvcmQ6").await?;
            let pass = match c.auth_line().await? {
                Some(r) => r,
                None => return Ok(None),
            };
            if pass == "*" {
                return Ok(Some(cancelled));
            }
            let Some(pass) = decode_b64(&pass) else {
                return Ok(Some(undecodable));
            };
            (
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&pass).into_owned(),
            )
        }
        _ => {
            return Ok(Some(
                "504 5.5.4 Unrecognized authentication type".to_owned(),
            ));
        }
    };
    let accepted = match &c.shared.state().credentials {
        Some((u, p)) => *u == user && *p == pass,
        None => true,
    };
    if !accepted {
        return Ok(Some(
            "535 5.7.8 Authentication credentials invalid".to_owned(),
        ));
    }
    s.auth_user = Some(user);
    Ok(Some("235 2.7.0 Authentication successful".to_owned()))
}

/// Base64 of an AUTH response; `=` is the empty response (RFC 4954).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    if s == "=" {
        return Some(Vec::new());
    }
    B64.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;
    use tokio_rustls::TlsConnector;

    const WAIT: Duration = Duration::from_secs(10);

    /// A raw SMTP client: sends lines, reads (multi-line) replies.
    struct Client<S> {
        io: BufReader<S>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
        fn new(stream: S) -> Self {
            Self {
                io: BufReader::new(stream),
            }
        }

        async fn reply(&mut self) -> String {
            let mut all = Vec::new();
            loop {
                let mut line = String::new();
                let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line))
                    .await
                    .expect("reply in time")
                    .expect("read reply");
                assert!(n > 0, "connection closed; got so far: {all:?}");
                assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
                let line = line.trim_end().to_owned();
                let more = line.as_bytes().get(3) == Some(&b'-');
                all.push(line);
                if !more {
                    return all.join("\n");
                }
            }
        }

        async fn send(&mut self, raw: &str) {
            self.io
                .write_all(raw.as_bytes())
                .await
                .expect("write to the receiver");
            self.io.flush().await.expect("flush");
        }

        async fn cmd(&mut self, line: &str) -> String {
            self.send(&format!("{line}\r\n")).await;
            self.reply().await
        }

        async fn expect(&mut self, line: &str, code: &str) -> String {
            let r = self.cmd(line).await;
            assert!(
                r.starts_with(code),
                "{line:?} answered {r:?}, wanted {code}"
            );
            r
        }

        fn into_inner(self) -> S {
            assert!(self.io.buffer().is_empty(), "unread bytes from the server");
            self.io.into_inner()
        }
    }

    async fn connect(r: &SmtpReceiver) -> TcpStream {
        TcpStream::connect(r.addr()).await.expect("connect")
    }

    async fn tls(
        r: &SmtpReceiver,
        tcp: TcpStream,
        name: &str,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("server name");
        TlsConnector::from(r.tls_client_config())
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the receiver's certificate")
    }

    #[tokio::test]
    async fn starttls_auth_plain_and_a_dot_stuffed_message() {
        let r = SmtpReceiver::start(Security::StartTls).await;
        r.require_auth("mailer", "s3cret");
        let mut c = Client::new(connect(&r).await);
        assert!(c.reply().await.starts_with("220 "));
        let ehlo = c.expect("EHLO client.example", "250").await;
        assert!(ehlo.contains("STARTTLS"), "{ehlo}");
        assert!(!ehlo.contains("AUTH"), "AUTH offered in clear: {ehlo}");
        let refused = c.cmd("MAIL FROM:<a@example.com>").await;
        assert_eq!(refused, "530 5.7.0 Must issue a STARTTLS command first");
        c.expect("AUTH PLAIN AG1haWxlcgBzM2NyZXQ=", "538").await;
        c.expect("STARTTLS", "220").await;

        let mut c = Client::new(tls(&r, c.into_inner(), "localhost").await);
        // State is reset: EHLO again before anything else.
        c.expect("MAIL FROM:<a@example.com>", "503").await;
        let ehlo = c.expect("EHLO client.example", "250").await;
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        c.expect("STARTTLS", "503").await;
        assert_eq!(
            c.cmd("MAIL FROM:<a@example.com>").await,
            "530 5.7.0 Authentication required"
        );
        let wrong = B64.encode(b"\0mailer\0nope");
        assert_eq!(
            c.cmd(&format!("AUTH PLAIN {wrong}")).await,
            "535 5.7.8 Authentication credentials invalid"
        );
        let good = B64.encode(b"\0mailer\0s3cret");
        c.expect(&format!("AUTH PLAIN {good}"), "235").await;
        c.expect(
            "MAIL FROM:<ai-review@example.com> SIZE=300 BODY=8BITMIME",
            "250",
        )
        .await;
        c.expect("RCPT TO:<alice@example.com>", "250").await;
        c.expect("RCPT TO:<bob@example.com>", "250").await;
        c.expect("DATA", "354").await;
        c.send(
            "From: ai-review@example.com\r\nTo: alice@example.com\r\nSubject: Hello\r\n\r\nfirst line\r\n..a line that starts with a dot\r\n.\r\n",
        )
        .await;
        assert!(c.reply().await.starts_with("250 2.0.0"));
        c.expect("QUIT", "221").await;

        let got = r.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m.mail_from, "ai-review@example.com");
        assert_eq!(m.rcpt_to, ["alice@example.com", "bob@example.com"]);
        assert!(m.tls);
        assert_eq!(m.auth_user.as_deref(), Some("mailer"));
        assert!(
            m.data
                .ends_with("first line\r\n.a line that starts with a dot\r\n"),
            "{:?}",
            m.data
        );
        assert_eq!(m.subject(), "Hello");
        assert_eq!(
            m.text_body(),
            "first line\r\n.a line that starts with a dot\r\n"
        );
        assert!(
            r.transcript().iter().all(|l| !l.contains(&good)),
            "credentials in the transcript"
        );
    }

    #[tokio::test]
    async fn implicit_tls_auth_login_and_two_messages() {
        let r = SmtpReceiver::start(Security::Implicit).await;
        let tcp = connect(&r).await;
        // The certificate also names 127.0.0.1.
        let mut c = Client::new(tls(&r, tcp, "127.0.0.1").await);
        assert!(c.reply().await.starts_with("220 "));
        let ehlo = c.expect("EHLO client.example", "250").await;
        assert!(
            ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
            "{ehlo}"
        );
        assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        assert_eq!(c.cmd(&B64.encode("bot")).await, "334 UGFzc3dvcmQ6");
        c.expect(&B64.encode("pw"), "235").await;
        c.expect("NOOP", "250").await;
        for i in 0..2 {
            c.expect("MAIL FROM:<>", "250").await;
            c.expect("RCPT TO:<x@example.com>", "250").await;
            c.expect("DATA", "354").await;
            c.send(&format!("Subject: n{i}\r\n\r\nbody {i}\r\n.\r\n"))
                .await;
            assert!(c.reply().await.starts_with("250 "));
        }
        c.expect("MAIL FROM:<y@example.com>", "250").await;
        c.expect("RSET", "250").await;
        c.expect("RCPT TO:<x@example.com>", "503").await;
        c.expect("QUIT", "221").await;
        let got = r.messages();
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .all(|m| m.tls && m.auth_user.as_deref() == Some("bot"))
        );
        assert_eq!(got[0].mail_from, "");
        assert_eq!(got[1].subject(), "n1");
        assert_eq!(r.connections(), 1);
    }

    #[tokio::test]
    async fn auth_plain_continuation_form() {
        let r = SmtpReceiver::start(Security::Implicit).await;
        r.require_auth("u", "p");
        let mut c = Client::new(tls(&r, connect(&r).await, "localhost").await);
        c.reply().await;
        c.expect("EHLO c", "250").await;
        assert_eq!(c.cmd("AUTH PLAIN").await, "334");
        c.expect("*", "501").await;
        assert_eq!(c.cmd("AUTH PLAIN").await, "334");
        c.expect(&B64.encode(b"\0u\0p"), "235").await;
        c.expect("AUTH PLAIN AHUAcA==", "503").await;
    }

    #[tokio::test]
    async fn plain_mode_fail_next_and_protocol_errors() {
        let r = SmtpReceiver::start(Security::Plain).await;
        r.fail_next(1, "451 4.3.0 Try again later");
        let mut c = Client::new(connect(&r).await);
        c.reply().await;
        c.expect("MAIL FROM:<a@example.com>", "503").await;
        let ehlo = c.expect("EHLO c", "250").await;
        assert!(
            !ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"),
            "{ehlo}"
        );
        c.expect("AUTH PLAIN AHUAcA==", "502").await;
        c.expect("STARTTLS", "502").await;
        assert_eq!(
            c.cmd("MAIL FROM:<a@example.com>").await,
            "451 4.3.0 Try again later"
        );
        c.expect("MAIL FROM:<a@example.com>", "250").await;
        c.expect("MAIL FROM:<a@example.com>", "503").await;
        c.expect("RCPT TO:<>", "501").await;
        c.expect("RCPT bob@example.com", "501").await;
        c.expect("RCPT TO:<b@example.com>", "250").await;
        r.fail_next_data(1, "550 5.7.1 Rejected");
        c.expect("DATA", "354").await;
        c.send("Subject: x\r\n\r\nrefused\r\n.\r\n").await;
        assert_eq!(c.reply().await, "550 5.7.1 Rejected");
        assert!(r.messages().is_empty());

        // Overlong command line, bare LF, unknown command.
        c.expect(&format!("NOOP {}", "x".repeat(600)), "500").await;
        c.send("NOOP\n").await;
        assert!(c.reply().await.starts_with("500 5.5.2 Bare LF"));
        c.expect("FROB", "500").await;

        // The next message goes through.
        c.expect("MAIL FROM:<a@example.com> SIZE=20", "250").await;
        c.expect("RCPT TO:<b@example.com>", "250").await;
        c.expect("DATA", "354").await;
        c.send("Subject: ok\r\n\r\naccepted\r\n.\r\n").await;
        assert!(c.reply().await.starts_with("250 "));
        let got = r.wait_for(1, WAIT).await;
        assert!(!got[0].tls);
        assert_eq!(got[0].auth_user, None);

        // A message line over 1000 octets is refused at the end.
        c.expect("MAIL FROM:<a@example.com>", "250").await;
        c.expect("RCPT TO:<b@example.com>", "250").await;
        c.expect("DATA", "354").await;
        c.send(&format!(
            "Subject: long\r\n\r\n{}\r\n.\r\n",
            "y".repeat(1200)
        ))
        .await;
        assert!(c.reply().await.starts_with("550 5.6.0"));
        c.expect("MAIL FROM:<a@example.com> SIZE=999999999", "552")
            .await;
        c.expect("QUIT", "221").await;
        assert_eq!(r.messages().len(), 1);
    }

    #[tokio::test]
    async fn hang_never_greets() {
        let r = SmtpReceiver::start(Security::Plain).await;
        r.hang(true);
        let mut tcp = connect(&r).await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await;
        assert!(read.is_err(), "a hanging receiver sent {read:?}");
        r.hang(false);
        let mut c = Client::new(connect(&r).await);
        assert!(c.reply().await.starts_with("220 "));
        assert_eq!(r.connections(), 2);
    }

    #[tokio::test]
    #[should_panic(expected = "waited")]
    async fn wait_for_panics_on_timeout() {
        let r = SmtpReceiver::start(Security::Plain).await;
        r.wait_for(1, Duration::from_millis(50)).await;
    }

    #[test]
    fn received_helpers_decode_mime() {
        let data = "From: a@example.com\r\n\
Subject: =?UTF-8?B?UmV2aWV3IGRvbmUg4pyU?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 =3D ok\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+aGk8L3A+\r\n\
--b1--\r\n";
        let m = Received {
            mail_from: "a@example.com".into(),
            rcpt_to: vec!["b@example.com".into()],
            data: data.into(),
            tls: true,
            auth_user: None,
        };
        assert_eq!(m.subject(), "Review done \u{2714}");
        assert_eq!(m.header("from").as_deref(), Some("a@example.com"));
        assert_eq!(m.header("X-Missing"), None);
        assert_eq!(m.text_body().trim_end(), "café = ok");
        assert_eq!(m.html_body().as_deref(), Some("<p>hi</p>"));
    }
}

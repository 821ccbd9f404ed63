//! Task log batching: lines from git and the container are masked (known
//! secrets replaced by `***`), cut to whole lines, and sent in batches.

use ai_review_protocol::runner::LogLineIn;
use std::sync::Mutex;

/// Collects log lines for one task.
pub struct LogBuffer {
    secrets: Vec<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    full: bool,
    lines: Vec<LogLineIn>,
    partial_stderr: Vec<u8>,
    tail: std::collections::VecDeque<String>,
}

/// Lines kept for failure reasons.
const TAIL_LINES: usize = 20;

/// Most lines waiting to be sent while the server is unreachable.
pub const MAX_PENDING_LINES: usize = 20_000;

impl LogBuffer {
    /// A buffer masking `secrets` (empty ones are ignored).
    pub fn new(secrets: Vec<String>) -> Self {
        Self {
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Replaces every known secret in `s` with `***`.
    pub fn mask(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Adds one line from `stream` (`runner`, `stdout` or `stderr`).
    pub fn line(&self, stream: &str, text: &str) {
        let text = self.mask(text.trim_end_matches(['\r', '\n']));
        if let Ok(mut g) = self.inner.lock() {
            if g.tail.len() == TAIL_LINES {
                g.tail.pop_front();
            }
            g.tail.push_back(text.clone());
            g.lines.push(LogLineIn {
                text,
                stream: Some(stream.to_owned()),
                at: Some(ai_review_domain::Timestamp::now()),
            });
        }
    }

    /// Adds raw stderr bytes, splitting them into lines (a trailing partial
    /// line waits for the rest).
    pub fn stderr_bytes(&self, bytes: &[u8]) {
        let complete: Vec<String> = {
            let Ok(mut g) = self.inner.lock() else { return };
            g.partial_stderr.extend_from_slice(bytes);
            let mut out = Vec::new();
            while let Some(pos) = g.partial_stderr.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = g.partial_stderr.drain(..=pos).collect();
                out.push(String::from_utf8_lossy(&line).into_owned());
            }
            out
        };
        for l in complete {
            self.line("stderr", &l);
        }
    }

    /// Flushes a trailing partial stderr line.
    pub fn finish(&self) {
        let rest = self
            .inner
            .lock()
            .map(|mut g| std::mem::take(&mut g.partial_stderr))
            .unwrap_or_default();
        if !rest.is_empty() {
            self.line("stderr", &String::from_utf8_lossy(&rest));
        }
    }

    /// Takes the lines waiting to be sent.
    pub fn drain(&self) -> Vec<LogLineIn> {
        self.inner
            .lock()
            .map(|mut g| std::mem::take(&mut g.lines))
            .unwrap_or_default()
    }

    /// Puts lines that could not be sent back in front of the queue, to be
    /// sent with the next batch. At most [`MAX_PENDING_LINES`] wait: when
    /// the server stays unreachable the oldest are dropped, and one line
    /// says how many.
    pub fn unread(&self, mut lines: Vec<LogLineIn>) {
        let Ok(mut g) = self.inner.lock() else { return };
        lines.append(&mut g.lines);
        if lines.len() > MAX_PENDING_LINES {
            let dropped = lines.len() - MAX_PENDING_LINES + 1;
            lines.drain(..dropped);
            lines.insert(
                0,
                LogLineIn {
                    text: format!("[{dropped} log lines dropped: the server was unreachable]"),
                    stream: Some("runner".to_owned()),
                    at: Some(ai_review_domain::Timestamp::now()),
                },
            );
        }
        g.lines = lines;
    }

    /// Whether lines are waiting to be sent.
    pub fn has_pending(&self) -> bool {
        self.inner
            .lock()
            .map(|g| !g.lines.is_empty() && !g.full)
            .unwrap_or(false)
    }

    /// Records that the server's per-task log cap was reached.
    pub fn mark_full(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.full = true;
        }
    }

    /// Whether the server's per-task log cap was reached.
    pub fn is_full(&self) -> bool {
        self.inner.lock().map(|g| g.full).unwrap_or(false)
    }

    /// The last lines seen, for failure reasons.
    pub fn tail(&self) -> String {
        self.inner
            .lock()
            .map(|g| g.tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_and_splits_partial_lines() {
        let b = LogBuffer::new(vec!["air_SECRETKEY".into(), String::new()]);
        b.stderr_bytes(b"token air_SECRETKEY used\npart");
        b.stderr_bytes(b"ial line\n");
        b.stderr_bytes(b"no newline");
        b.finish();
        let lines: Vec<_> = b.drain().into_iter().map(|l| l.text).collect();
        assert_eq!(lines, ["token *** used", "partial line", "no newline"]);
        assert!(b.drain().is_empty());
        assert!(b.tail().ends_with("no newline"));
    }

    #[test]
    fn unsent_lines_go_back_in_order_and_are_bounded() {
        let b = LogBuffer::new(Vec::new());
        b.line("runner", "one");
        b.line("runner", "two");
        let first = b.drain();
        b.line("runner", "three");
        b.unread(first);
        let texts: Vec<String> = b.drain().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        let many: Vec<LogLineIn> = (0..MAX_PENDING_LINES + 5)
            .map(|i| LogLineIn {
                text: i.to_string(),
                stream: None,
                at: None,
            })
            .collect();
        b.unread(many);
        let kept = b.drain();
        assert_eq!(kept.len(), MAX_PENDING_LINES);
        assert!(
            kept[0].text.contains("6 log lines dropped"),
            "{}",
            kept[0].text
        );
        assert_eq!(kept[1].text, "6");
    }
}

//! A small Prometheus registry: counters and histograms kept as things
//! happen, gauges handed in at scrape time, rendered in the text
//! exposition format 0.0.4.
//!
//! Each server and each runner owns its own [`Registry`] rather than a
//! process-global recorder: several of them run in one process (the
//! tests, `ai-review review`'s embedded server and runner) and each must
//! count only its own work. A registry is built over a table of
//! [`Family`]s, the documented list of what it exposes (the README's
//! metrics tables are those lists); counting into a family that is not in
//! the table, or with other labels, is a bug caught by a debug assertion.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

/// The `Content-Type` of the exposition text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What kind of series a family holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// A value read at scrape time.
    Gauge,
    /// Observations in cumulative buckets (the upper bounds, `+Inf` implied).
    Histogram(&'static [f64]),
}

impl Kind {
    /// The name `# TYPE` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// One documented metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Metric name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Label names every series of the family carries, in order (`le`
    /// aside).
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// A series' labels: names with values.
pub type Labels = Vec<(&'static str, String)>;

/// Gauge values read at scrape time, by family name.
pub type Gauges = BTreeMap<&'static str, Vec<(Labels, f64)>>;

#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// One instance's counters and histograms over its table of families.
#[derive(Debug)]
pub struct Registry {
    families: &'static [Family],
    series: Mutex<Series>,
}

impl Registry {
    /// An empty registry exposing `families`.
    pub fn new(families: &'static [Family]) -> Self {
        Self {
            families,
            series: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Series> {
        // A panic while holding the lock leaves plain numbers behind:
        // still valid to read.
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn family(&self, name: &str, kind: &str, labels: &Labels) -> Option<&'static Family> {
        let f = self.families.iter().find(|f| f.name == name);
        debug_assert!(
            f.is_some_and(|f| f.kind.as_str() == kind
                && f.labels.len() == labels.len()
                && f.labels.iter().zip(labels).all(|(a, (b, _))| a == b)),
            "{name} is not a documented {kind} with labels {labels:?}"
        );
        f
    }

    /// Adds `by` to a counter (0 makes the series exist, so `rate()` and
    /// `increase()` see its first event).
    pub fn inc(&self, name: &'static str, labels: Labels, by: u64) {
        if self.family(name, "counter", &labels).is_some() {
            *self.lock().counters.entry((name, labels)).or_default() += by;
        }
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, labels: Labels, value: f64) {
        let Some(Family {
            kind: Kind::Histogram(bounds),
            ..
        }) = self.family(name, "histogram", &labels)
        else {
            return;
        };
        let mut s = self.lock();
        let h = s.histograms.entry((name, labels)).or_insert(Histogram {
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        });
        for (i, b) in bounds.iter().enumerate() {
            if value <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += value;
        h.count += 1;
    }

    /// The exposition text: every family with its `HELP` and `TYPE`, the
    /// series kept here, and the scrape-time `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let s = self.lock();
        let mut out = String::new();
        for f in self.families {
            let name = f.name;
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind.as_str());
            match f.kind {
                Kind::Counter => {
                    for ((n, labels), v) in &s.counters {
                        if *n == name {
                            let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                        }
                    }
                }
                Kind::Gauge => {
                    for (labels, v) in gauges.get(name).map(Vec::as_slice).unwrap_or_default() {
                        let _ = writeln!(out, "{name}{} {}", label_text(labels, None), num(*v));
                    }
                }
                Kind::Histogram(bounds) => {
                    for ((n, labels), h) in &s.histograms {
                        if *n != name {
                            continue;
                        }
                        for (b, c) in bounds.iter().zip(&h.counts) {
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {c}",
                                label_text(labels, Some(("le", num(*b))))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            label_text(labels, Some(("le", "+Inf".to_owned()))),
                            h.count
                        );
                        let _ =
                            writeln!(out, "{name}_sum{} {}", label_text(labels, None), num(h.sum));
                        let _ =
                            writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
                    }
                }
            }
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A float as Prometheus writes it.
fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILIES: &[Family] = &[
        Family {
            name: "t_seconds",
            kind: Kind::Histogram(&[0.025, 0.05]),
            labels: &["route"],
            help: "Time.",
        },
        Family {
            name: "t_total",
            kind: Kind::Counter,
            labels: &[],
            help: "Things.",
        },
        Family {
            name: "t_level",
            kind: Kind::Gauge,
            labels: &["state"],
            help: "Level.",
        },
    ];

    #[test]
    fn histograms_are_cumulative_labels_escaped_and_gauges_rendered() {
        let m = Registry::new(FAMILIES);
        let route = || vec![("route", "/a\"b".to_owned())];
        m.observe("t_seconds", route(), 0.03);
        m.observe("t_seconds", route(), 7.0);
        m.inc("t_total", Vec::new(), 2);
        let mut gauges = Gauges::new();
        gauges.insert(
            "t_level",
            vec![(vec![("state", "up".to_owned())], f64::INFINITY)],
        );
        let text = m.render(&gauges);
        for line in [
            "# HELP t_seconds Time.\n# TYPE t_seconds histogram\n",
            "t_seconds_bucket{route=\"/a\\\"b\",le=\"0.025\"} 0\n",
            "t_seconds_bucket{route=\"/a\\\"b\",le=\"0.05\"} 1\n",
            "t_seconds_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 2\n",
            "t_seconds_sum{route=\"/a\\\"b\"} 7.03\n",
            "t_seconds_count{route=\"/a\\\"b\"} 2\n",
            "# TYPE t_total counter\nt_total 2\n",
            "# TYPE t_level gauge\nt_level{state=\"up\"} +Inf\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is not a documented counter")]
    fn counting_with_undocumented_labels_is_caught() {
        Registry::new(FAMILIES).inc("t_total", vec![("x", "1".to_owned())], 1);
    }
}

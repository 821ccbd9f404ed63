//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! checking what `/metrics` answers: every sample line must parse, belong
//! to a family declared by `# TYPE` before it, carry well-formed labels,
//! and histograms must have increasing `le` buckets ending in `+Inf` that
//! are cumulative and equal `_count`.

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name as written (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Labels in order.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: BTreeMap<String, String>,
    /// Family name → help.
    pub help: BTreeMap<String, String>,
    /// Samples in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample named `name` whose labels include all of
    /// `labels`, if exactly one matches (panics on several).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("label without =")?;
        let key = &rest[..eq];
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if out.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label: {rest:?}"));
        }
    }
    Ok(out)
}

/// Parses and checks `text`; `Err` says which line is wrong and why.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type".into()))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at(format!("unknown type {kind}")));
            }
            if e.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(at("TYPE given twice".into()));
            }
            if e.samples.iter().any(|s| s.name.starts_with(name)) {
                return Err(at("TYPE after its samples".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            e.help.insert(name.to_owned(), help.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').ok_or_else(|| at("no value".into()))?;
        let value = parse_value(value).map_err(at)?;
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| at("labels not closed".into()))?;
                (name, parse_labels(inner).map_err(at)?)
            }
            None => (head, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| e.types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        let Some(kind) = e.types.get(family) else {
            return Err(at(format!("no # TYPE for {family}")));
        };
        if kind == "histogram" && name == family {
            return Err(at("a histogram sample needs _bucket, _sum or _count".into()));
        }
        if kind == "counter" && value < 0.0 {
            return Err(at("negative counter".into()));
        }
        e.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&e)?;
    Ok(e)
}

/// A series' labels without `le`.
type LabelKey = Vec<(String, String)>;

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut series: BTreeMap<LabelKey, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e.samples.iter().filter(|s| s.name == bucket) {
            let le = s
                .labels
                .get("le")
                .ok_or_else(|| format!("{bucket} without le"))?;
            let le = parse_value(le)?;
            let key: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in series {
            let les: Vec<f64> = buckets.iter().map(|b| b.0).collect();
            if !les.windows(2).all(|w| w[0] < w[1]) || les.last() != Some(&f64::INFINITY) {
                return Err(format!(
                    "{family}{key:?}: le not increasing to +Inf: {les:?}"
                ));
            }
            if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                return Err(format!("{family}{key:?}: buckets not cumulative"));
            }
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let count = e.value(&format!("{family}_count"), &labels);
            if count != buckets.last().map(|b| b.1) {
                return Err(format!("{family}{key:?}: +Inf bucket != _count"));
            }
            if e.value(&format!("{family}_sum"), &labels).is_none() {
                return Err(format!("{family}{key:?}: no _sum"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_good_text_and_refuses_bad() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
        let e = parse(good).expect("good");
        assert_eq!(e.value("a_total", &[("x", "q\"")]), Some(3.0));
        for bad in [
            "a 1\n",
            "# TYPE a counter\na{x=1} 1\n",
            "# TYPE a counter\na -1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

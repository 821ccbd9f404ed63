//! Server-rendered SVG charts: no script, no external library. Every value
//! drawn is a number or a label we format, and labels are escaped anyway.

use std::fmt::Write;

/// One point of a series: a label for the x axis and a value.
#[derive(Debug, Clone)]
pub struct Point {
    /// X-axis label (shown for some points).
    pub label: String,
    /// Value.
    pub value: f64,
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn frame(out: &mut String, title: &str, max: f64, unit: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        out,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y}"/><line class="axis" x1="{LEFT}" y1="{y}" x2="{W}" y2="{y}"/>"#,
        y = H - BOTTOM
    );
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="end">{m}{u}</text><text x="{x}" y="{b}" text-anchor="end">0</text>"#,
        x = LEFT - 4.0,
        y = TOP + 10.0,
        m = fmt_num(max),
        u = esc(unit),
        b = H - BOTTOM
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn x_of(i: usize, n: usize) -> f64 {
    let span = W - LEFT - 8.0;
    if n <= 1 {
        LEFT + span / 2.0
    } else {
        LEFT + 4.0 + span * (i as f64) / ((n - 1) as f64)
    }
}

fn y_of(v: f64, max: f64) -> f64 {
    let h = H - BOTTOM - TOP;
    H - BOTTOM - if max > 0.0 { h * v / max } else { 0.0 }
}

fn labels(out: &mut String, points: &[Point], every: usize) {
    for (i, p) in points.iter().enumerate() {
        if i % every.max(1) == 0 {
            let _ = write!(
                out,
                r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{l}</text>"#,
                x = x_of(i, points.len()),
                y = H - 8.0,
                l = esc(&p.label)
            );
        }
    }
}

/// A line chart with a shaded area (e.g. queue depth over time).
pub fn line(title: &str, unit: &str, points: &[Point]) -> String {
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        .ceil();
    let mut out = String::new();
    frame(&mut out, title, max, unit);
    if !points.is_empty() {
        let coords: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x_of(i, points.len()), y_of(p.value, max)))
            .collect();
        let base = H - BOTTOM;
        let _ = write!(
            out,
            r#"<polygon class="area" points="{:.1},{base} {} {:.1},{base}"/><polyline class="series" points="{}"/>"#,
            x_of(0, points.len()),
            coords.join(" "),
            x_of(points.len() - 1, points.len()),
            coords.join(" ")
        );
    }
    labels(&mut out, points, points.len().div_ceil(8));
    out.push_str("</svg>");
    out
}

/// A bar chart (e.g. median review duration per hour); zero bars are not
/// drawn.
pub fn bars(title: &str, unit: &str, points: &[Point]) -> String {
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        .ceil();
    let mut out = String::new();
    frame(&mut out, title, max, unit);
    let n = points.len().max(1);
    let width = ((W - LEFT - 8.0) / n as f64 * 0.7).max(1.0);
    for (i, p) in points.iter().enumerate() {
        if p.value <= 0.0 {
            continue;
        }
        let y = y_of(p.value, max);
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{h:.1}"><title>{l}: {v}{u}</title></rect>"#,
            x = x_of(i, n) - width / 2.0,
            h = H - BOTTOM - y,
            l = esc(&p.label),
            v = fmt_num(p.value),
            u = esc(unit)
        );
    }
    labels(&mut out, points, n.div_ceil(8));
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_escaped_labels() {
        let pts: Vec<Point> = (0..24)
            .map(|i| Point {
                label: format!("{i}<h>"),
                value: f64::from(i % 5),
            })
            .collect();
        for svg in [
            line("Queue <depth>", "", &pts),
            bars("Duration", " s", &pts),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert!(!svg.contains("<h>") && !svg.contains("<depth>"), "{svg}");
            assert!(svg.contains("&lt;h&gt;"));
        }
        let b = bars("d", "", &pts);
        assert_eq!(
            b.matches("<rect").count(),
            pts.iter().filter(|p| p.value > 0.0).count()
        );
        assert!(line("empty", "", &[]).ends_with("</svg>"));
    }
}

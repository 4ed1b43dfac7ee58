//! Charts as inline SVG, drawn on the server: no script, and the numbers stay in the page as
//! text (each mark has a `<title>` with its label and value).

use maud::{Markup, html};

const W: f64 = 720.0;
const H: f64 = 180.0;
const PAD: f64 = 28.0;

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn max_of(points: &[(String, f64)]) -> f64 {
    points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0)
}

fn empty(id: &str) -> Markup {
    html! { p.muted id=(id) { "no data in this range" } }
}

/// Vertical bars, one per point, with the first and last labels under the axis.
pub(super) fn bars(id: &str, points: &[(String, f64)]) -> Markup {
    if points.is_empty() {
        return empty(id);
    }
    let max = max_of(points);
    let step = (W - 2.0 * PAD) / points.len() as f64;
    let scale = (H - 2.0 * PAD) / max;
    html! {
        svg.chart id=(id) viewBox={ "0 0 " (W) " " (H) } role="img" {
            text x="2" y="14" { (fmt(max)) }
            line.axis x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) {}
            @for (i, (label, v)) in points.iter().enumerate() {
                @let h = v * scale;
                rect.bar x=(format!("{:.1}", PAD + i as f64 * step + step * 0.1))
                    y=(format!("{:.1}", H - PAD - h)) width=(format!("{:.1}", step * 0.8))
                    height=(format!("{:.1}", h)) {
                    title { (label) ": " (fmt(*v)) }
                }
            }
            text x=(PAD) y=(H - 8.0) { (points[0].0) }
            text x=(W - PAD) y=(H - 8.0) text-anchor="end" { (points[points.len() - 1].0) }
        }
    }
}

/// A polyline through the points, with a dot per point.
pub(super) fn line(id: &str, points: &[(String, f64)]) -> Markup {
    if points.is_empty() {
        return empty(id);
    }
    let max = max_of(points);
    let step = if points.len() > 1 {
        (W - 2.0 * PAD) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let scale = (H - 2.0 * PAD) / max;
    let xy: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| (PAD + i as f64 * step, H - PAD - v * scale))
        .collect();
    let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    html! {
        svg.chart id=(id) viewBox={ "0 0 " (W) " " (H) } role="img" {
            text x="2" y="14" { (fmt(max)) }
            line.axis x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) {}
            polyline.series points=(path.join(" ")) {}
            @for ((x, y), (label, v)) in xy.iter().zip(points) {
                circle.dot cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {
                    title { (label) ": " (fmt(*v)) }
                }
            }
            text x=(PAD) y=(H - 8.0) { (points[0].0) }
            text x=(W - PAD) y=(H - 8.0) text-anchor="end" { (points[points.len() - 1].0) }
        }
    }
}

/// Horizontal bars with their label and value written beside them.
pub(super) fn hbars(id: &str, points: &[(String, f64)], unit: &str) -> Markup {
    if points.is_empty() {
        return empty(id);
    }
    let max = max_of(points);
    let row = 20.0;
    let label_w = 220.0;
    let height = row * points.len() as f64 + 4.0;
    let scale = (W - label_w - 80.0) / max;
    html! {
        svg.chart id=(id) viewBox={ "0 0 " (W) " " (height) } role="img" {
            @for (i, (label, v)) in points.iter().enumerate() {
                @let y = i as f64 * row;
                text x=(label_w - 6.0) y=(format!("{:.1}", y + 14.0)) text-anchor="end" { (label) }
                rect.bar x=(label_w) y=(format!("{:.1}", y + 3.0)) width=(format!("{:.1}", v * scale))
                    height=(row - 6.0) {
                    title { (label) ": " (fmt(*v)) (unit) }
                }
                text x=(format!("{:.1}", label_w + v * scale + 4.0)) y=(format!("{:.1}", y + 14.0)) {
                    (fmt(*v)) (unit)
                }
            }
        }
    }
}

//! The run report's charts as inline SVG strings, made from plain numbers: horizontal bars, a
//! sparkline and a timeline of steps. Every chart carries a `<title>` and a `<desc>` (named by
//! `aria-labelledby`) and escapes its labels itself: the strings go into the page as they are.

use std::fmt::Write as _;

/// What a chart is called, for screen readers and as its tooltip.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// An id unique in the page (letters, digits and `-`): the title's and description's ids
    /// are made from it.
    pub id: &'a str,
    /// Short name (`<title>`).
    pub title: &'a str,
    /// What it shows, in words (`<desc>`).
    pub desc: &'a str,
}

/// Width of every chart's drawing, in SVG units (it scales with the page).
const WIDTH: f64 = 720.0;
/// Left column of the bar and timeline charts, for the labels.
const LABEL_WIDTH: f64 = 250.0;
/// Right margin, for the value written after each bar.
const VALUE_WIDTH: f64 = 90.0;
/// Height of one bar's row.
const ROW: f64 = 24.0;
/// Labels longer than this are cut (the full text is in the table beside the chart).
const MAX_LABEL_CHARS: usize = 34;

/// `&`, `<`, `>`, `"` and `'` as entities: safe in SVG text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number usable as a length: NaN, infinities and negatives count as 0.
fn clean(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// A label cut to [`MAX_LABEL_CHARS`], escaped.
fn label(text: &str) -> String {
    if text.chars().count() > MAX_LABEL_CHARS {
        let cut: String = text.chars().take(MAX_LABEL_CHARS - 1).collect();
        escape(&format!("{cut}…"))
    } else {
        escape(text)
    }
}

/// A value as written beside a bar: whole numbers with thousands separators, others with one
/// decimal.
pub fn number(value: f64) -> String {
    let value = clean(value);
    if value.fract() != 0.0 && value < 1000.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The opening tag, title and description of a chart `height` units high.
fn open(chart: &Chart, height: f64, class: &str) -> String {
    let id = escape(chart.id);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{class}\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
         role=\"img\" aria-labelledby=\"{id}-title {id}-desc\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(chart.title),
        escape(chart.desc)
    )
}

/// The chart of an empty series: its frame and a line saying there is nothing to draw.
fn empty(chart: &Chart, class: &str) -> String {
    let mut svg = open(chart, ROW * 2.0, class);
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{:.0}\" class=\"none\">nothing to draw</text></svg>",
        ROW
    );
    svg
}

/// Horizontal bars, one per `(label, value)`, longest for the largest value, each followed by
/// its value.
pub fn bars(chart: &Chart, items: &[(&str, f64)]) -> String {
    if items.is_empty() {
        return empty(chart, "chart bars");
    }
    let max = items.iter().map(|(_, v)| clean(*v)).fold(0.0, f64::max);
    let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
    let mut svg = open(chart, ROW * items.len() as f64 + 4.0, "chart bars");
    for (i, (name, value)) in items.iter().enumerate() {
        let value = clean(*value);
        let y = ROW * i as f64 + 2.0;
        let width = if max > 0.0 { value / max * span } else { 0.0 };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL_WIDTH:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{}</text>",
            LABEL_WIDTH - 8.0,
            y + ROW * 0.65,
            label(name),
            y + 3.0,
            ROW - 6.0,
            LABEL_WIDTH + width + 6.0,
            y + ROW * 0.65,
            number(value)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Height of a sparkline.
const SPARK_HEIGHT: f64 = 60.0;
/// Width of a sparkline (it shares a row with two others).
const SPARK_WIDTH: f64 = 240.0;

/// A small line chart of `values` in order (oldest first), from 0 at the bottom to the largest
/// value at the top; the last value is marked with a dot, and the values at the positions in
/// `marked` (failed runs) with a ring.
pub fn sparkline(chart: &Chart, values: &[f64], marked: &[usize]) -> String {
    if values.is_empty() {
        return empty(chart, "chart spark");
    }
    let max = values.iter().copied().map(clean).fold(0.0, f64::max);
    let (pad, inner) = (4.0, SPARK_HEIGHT - 8.0);
    let step = if values.len() > 1 {
        (SPARK_WIDTH - 2.0 * pad) / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let height = if max > 0.0 {
                clean(*v) / max * inner
            } else {
                0.0
            };
            (pad + step * i as f64, pad + inner - height)
        })
        .collect();
    let id = escape(chart.id);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart spark\" \
         viewBox=\"0 0 {SPARK_WIDTH} {SPARK_HEIGHT}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\"><title id=\"{id}-title\">{}</title>\
         <desc id=\"{id}-desc\">{}</desc>",
        escape(chart.title),
        escape(chart.desc)
    );
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" class=\"axis\"/>",
        pad + inner,
        SPARK_WIDTH - pad
    );
    if points.len() > 1 {
        svg.push_str("<polyline points=\"");
        for (i, (x, y)) in points.iter().enumerate() {
            let sep = if i > 0 { " " } else { "" };
            let _ = write!(svg, "{sep}{x:.1},{y:.1}");
        }
        svg.push_str("\"/>");
    }
    for (x, y) in marked.iter().filter_map(|&i| points.get(i)) {
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" class=\"marked\"/>"
        );
    }
    if let Some((x, y)) = points.last() {
        let _ = write!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"/>");
    }
    svg.push_str("</svg>");
    svg
}

/// The steps of a run one after the other: each `(label, milliseconds)` a bar starting where
/// the previous one ended, on one time axis of `total_millis` (or the steps' sum when larger).
pub fn timeline(chart: &Chart, steps: &[(&str, f64)], total_millis: f64) -> String {
    if steps.is_empty() {
        return empty(chart, "chart timeline");
    }
    let sum: f64 = steps.iter().map(|(_, v)| clean(*v)).sum();
    let total = clean(total_millis).max(sum);
    let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
    let scale = if total > 0.0 { span / total } else { 0.0 };
    let height = ROW * (steps.len() as f64 + 1.0) + 4.0;
    let mut svg = open(chart, height, "chart timeline");
    let mut start = 0.0;
    for (i, (name, millis)) in steps.iter().enumerate() {
        let millis = clean(*millis);
        let y = ROW * i as f64 + 2.0;
        let x = LABEL_WIDTH + start * scale;
        // A step too short to see still gets a sliver, so every step is visible.
        let width = (millis * scale).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{} ms</text>",
            LABEL_WIDTH - 8.0,
            y + ROW * 0.65,
            label(name),
            y + 3.0,
            ROW - 6.0,
            x + width + 6.0,
            y + ROW * 0.65,
            number(millis)
        );
        start += millis;
    }
    let axis_y = ROW * steps.len() as f64 + 6.0;
    let _ = write!(
        svg,
        "<line x1=\"{LABEL_WIDTH}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" class=\"axis\"/>\
         <text x=\"{LABEL_WIDTH}\" y=\"{:.1}\" class=\"value\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"value\">{} ms</text></svg>",
        LABEL_WIDTH + span,
        axis_y + 16.0,
        LABEL_WIDTH + span,
        axis_y + 16.0,
        number(total)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART: Chart = Chart {
        id: "c1",
        title: "Rejects by reason",
        desc: "Rows rejected, by reason",
    };

    /// The values of attribute `name` on every `<tag ` element, as numbers.
    fn attrs(svg: &str, tag: &str, name: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .map(|element| {
                let element = format!(" {element}");
                let at = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                let rest = &element[at..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    fn well_formed(svg: &str) {
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains("role=\"img\" aria-labelledby=\"c1-title c1-desc\""));
        assert!(svg.contains("<title id=\"c1-title\">Rejects by reason</title>"));
        assert!(svg.contains("<desc id=\"c1-desc\">Rows rejected, by reason</desc>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn bars_are_proportional_to_their_values() {
        let svg = bars(
            &CHART,
            &[("bad date", 40.0), ("negative", 10.0), ("zero", 0.0)],
        );
        well_formed(&svg);
        let widths = attrs(&svg, "rect", "width");
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        assert_eq!(widths, [span, span / 4.0, 0.0]);
        let ys = attrs(&svg, "rect", "y");
        assert!(ys.windows(2).all(|w| w[1] - w[0] == ROW), "{ys:?}");
        assert!(
            svg.contains(">bad date</text>") && svg.contains(">40</text>"),
            "{svg}"
        );
    }

    #[test]
    fn labels_and_titles_are_escaped_and_cut() {
        let hostile = Chart {
            id: "c1",
            title: "<script>alert(1)</script>",
            desc: "x\" onload=\"alert(2)",
        };
        let svg = bars(&hostile, &[("<img src=x onerror=alert(1)>", 1.0)]);
        assert!(!svg.contains("<script") && !svg.contains("<img"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("x&quot; onload=&quot;alert(2)"), "{svg}");
        assert!(svg.contains("&lt;img src=x onerror=alert(1)&gt;"), "{svg}");
        let long = "a".repeat(100);
        let svg = bars(&CHART, &[(&long, 1.0)]);
        assert!(svg.contains(&format!(">{}…</text>", "a".repeat(MAX_LABEL_CHARS - 1))));
    }

    #[test]
    fn odd_numbers_draw_nothing_rather_than_break_the_chart() {
        let svg = bars(
            &CHART,
            &[("a", f64::NAN), ("b", -5.0), ("c", f64::INFINITY)],
        );
        well_formed(&svg);
        assert_eq!(attrs(&svg, "rect", "width"), [0.0, 0.0, 0.0]);
        for chart in [
            bars(&CHART, &[]),
            sparkline(&CHART, &[], &[]),
            timeline(&CHART, &[], 5.0),
        ] {
            well_formed(&chart);
            assert!(chart.contains("nothing to draw"), "{chart}");
        }
    }

    #[test]
    fn sparkline_puts_the_largest_value_on_top_and_zero_at_the_bottom() {
        let svg = sparkline(&CHART, &[0.0, 50.0, 100.0, 25.0], &[]);
        well_formed(&svg);
        let polyline = svg.split("points=\"").nth(1).unwrap();
        let points: Vec<(f64, f64)> = polyline[..polyline.find('"').unwrap()]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 4);
        assert!(
            points.windows(2).all(|w| w[1].0 > w[0].0),
            "x grows: {points:?}"
        );
        assert_eq!(points[0].1, SPARK_HEIGHT - 4.0, "0 at the bottom");
        assert_eq!(points[2].1, 4.0, "the largest at the top");
        assert_eq!(points[1].1, (points[0].1 + points[2].1) / 2.0);
        assert_eq!(attrs(&svg, "circle", "cx"), [points[3].0]);
        // Marked values get a ring (a position past the end is ignored).
        let svg = sparkline(&CHART, &[0.0, 50.0, 100.0, 25.0], &[1, 9]);
        assert_eq!(attrs(&svg, "circle", "cx"), [points[1].0, points[3].0]);
        assert_eq!(svg.matches("class=\"marked\"").count(), 1);
        // One value: a dot, no line.
        let one = sparkline(&CHART, &[7.0], &[]);
        assert!(
            !one.contains("<polyline") && one.contains("<circle"),
            "{one}"
        );
    }

    #[test]
    fn timeline_steps_follow_each_other_on_one_axis() {
        let svg = timeline(&CHART, &[("a.sql", 100.0), ("b.sql", 300.0)], 800.0);
        well_formed(&svg);
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        let xs = attrs(&svg, "rect", "x");
        let widths = attrs(&svg, "rect", "width");
        assert_eq!(xs, [LABEL_WIDTH, LABEL_WIDTH + span / 8.0]);
        assert_eq!(widths, [span / 8.0, span * 3.0 / 8.0]);
        assert!(
            svg.contains(">800 ms</text>"),
            "the axis ends at the run's time: {svg}"
        );
        // Steps longer than the given total stretch the axis instead of overflowing it.
        let svg = timeline(&CHART, &[("a", 600.0), ("b", 600.0)], 1000.0);
        let ends: Vec<f64> = attrs(&svg, "rect", "x")
            .iter()
            .zip(attrs(&svg, "rect", "width"))
            .map(|(x, w)| x + w)
            .collect();
        assert_eq!(ends[1], LABEL_WIDTH + span);
        assert!(svg.contains(">1,200 ms</text>"), "{svg}");
        // A step of 0 ms is still drawn.
        let svg = timeline(&CHART, &[("quick", 0.0), ("slow", 1000.0)], 0.0);
        assert_eq!(attrs(&svg, "rect", "width")[0], 1.0);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(999.0), "999");
        assert_eq!(number(1000.0), "1,000");
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(2.34), "2.3");
        assert_eq!(number(-3.0), "0");
    }
}

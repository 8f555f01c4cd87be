//! The benchmark's chart, drawn as SVG without dependencies: two panels against the number of
//! entities (a log scale): cold ingest time, and p99 latencies (push-to-visible and each
//! loaded route), one line per mode and series.

use std::fmt::Write as _;

use super::{Measurement, Mode};

const WIDTH: f64 = 960.0;
const PANEL_WIDTH: f64 = 400.0;
const PANEL_HEIGHT: f64 = 280.0;
const TOP: f64 = 60.0;
const COLOURS: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d",
];

/// One line: a name and its (entities, value) points.
struct Series {
    /// What is measured (`by-name`): one colour in both modes.
    what: String,
    name: String,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The chart of `measurements` (empty panels when there are none).
pub fn svg(measurements: &[Measurement]) -> String {
    let modes: Vec<Mode> = {
        let mut modes: Vec<Mode> = measurements.iter().map(|m| m.mode).collect();
        modes.dedup();
        modes.sort_by_key(|mode| *mode as u8);
        modes.dedup();
        modes
    };
    let mut ingest = Vec::new();
    let mut latency = Vec::new();
    for mode in &modes {
        let mut rows: Vec<&Measurement> = measurements.iter().filter(|m| m.mode == *mode).collect();
        rows.sort_by_key(|m| m.entities);
        let dashed = *mode == Mode::Distributed;
        ingest.push(Series {
            what: "ingest".to_owned(),
            name: format!("{mode}"),
            dashed,
            points: rows
                .iter()
                .map(|m| (m.entities as f64, m.ingest_seconds))
                .collect(),
        });
        latency.push(Series {
            what: "push".to_owned(),
            name: format!("push→visible ({mode})"),
            dashed,
            points: rows
                .iter()
                .map(|m| (m.entities as f64, m.push.visible_p99_ms))
                .collect(),
        });
        let routes: Vec<String> = rows
            .first()
            .map(|m| m.routes.iter().map(|r| r.route.clone()).collect())
            .unwrap_or_default();
        for route in routes {
            latency.push(Series {
                what: route.clone(),
                name: format!("{route} ({mode})"),
                dashed,
                points: rows
                    .iter()
                    .filter_map(|m| {
                        m.routes
                            .iter()
                            .find(|r| r.route == route)
                            .map(|r| (m.entities as f64, r.p99_ms))
                    })
                    .collect(),
            });
        }
    }
    // Tall enough for the longer legend (two entries a row under each panel).
    let legend_rows = ingest.len().max(latency.len()).div_ceil(2) as f64;
    let height = TOP + PANEL_HEIGHT + 50.0 + legend_rows * 15.0 + 10.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <text x=\"{x}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\
         Cadastre at scale: cold ingest and p99 latencies against catalog size</text>",
        x = WIDTH / 2.0
    );
    panel(&mut out, 60.0, "Cold ingest (s)", &ingest);
    panel(&mut out, 540.0, "p99 latency (ms)", &latency);
    out.push_str("</svg>\n");
    out
}

/// One panel at `left`: log-log axes, gridlines at powers of ten, the lines and a legend.
fn panel(out: &mut String, left: f64, title: &str, series: &[Series]) {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        if y > 0.0 {
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    if x_min > x_max {
        (x_min, x_max) = (1_000.0, 1_000_000.0);
    }
    if y_min > y_max {
        (y_min, y_max) = (1.0, 1_000.0);
    }
    // Whole decades around the data.
    let (x_lo, x_hi) = decades(x_min, x_max);
    let (y_lo, y_hi) = decades(y_min, y_max);
    let x_at = |x: f64| left + (x.log10() - x_lo) / (x_hi - x_lo) * PANEL_WIDTH;
    let y_at =
        |y: f64| TOP + PANEL_HEIGHT - (y.max(1e-3).log10() - y_lo) / (y_hi - y_lo) * PANEL_HEIGHT;
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-weight=\"bold\">{title}</text>\
         <rect x=\"{left}\" y=\"{TOP}\" width=\"{PANEL_WIDTH}\" height=\"{PANEL_HEIGHT}\" \
         fill=\"none\" stroke=\"#9ca3af\"/>",
        x = left + PANEL_WIDTH / 2.0,
        y = TOP - 10.0,
    );
    for decade in (x_lo as i32)..=(x_hi as i32) {
        let x = x_at(10f64.powi(decade));
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{x:.1}\" y=\"{label}\" text-anchor=\"middle\">{text}</text>",
            bottom = TOP + PANEL_HEIGHT,
            label = TOP + PANEL_HEIGHT + 16.0,
            text = short(10f64.powi(decade)),
        );
    }
    for decade in (y_lo as i32)..=(y_hi as i32) {
        let y = y_at(10f64.powi(decade));
        let _ = write!(
            out,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{label}\" y=\"{y:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\">{text}</text>",
            right = left + PANEL_WIDTH,
            label = left - 6.0,
            text = short(10f64.powi(decade)),
        );
    }
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">entities</text>",
        x = left + PANEL_WIDTH / 2.0,
        y = TOP + PANEL_HEIGHT + 32.0,
    );
    let mut measured: Vec<&str> = Vec::new();
    for line in series {
        if !measured.contains(&line.what.as_str()) {
            measured.push(&line.what);
        }
    }
    for (index, line) in series.iter().enumerate() {
        let colour_index = measured
            .iter()
            .position(|w| *w == line.what)
            .unwrap_or(index);
        let colour = COLOURS[colour_index % COLOURS.len()];
        let dash = if line.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let path: Vec<String> = line
            .points
            .iter()
            .filter(|(_, y)| *y > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
            .collect();
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            path.join(" ")
        );
        for point in &path {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                out,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        // The legend: two columns under the panel.
        let (column, row) = (index % 2, index / 2);
        let lx = left + column as f64 * (PANEL_WIDTH / 2.0);
        let ly = TOP + PANEL_HEIGHT + 50.0 + row as f64 * 15.0;
        let _ = write!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{x2}\" y2=\"{ly}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dash}/><text x=\"{tx}\" y=\"{ly}\" dominant-baseline=\"middle\">{name}</text>",
            x2 = lx + 18.0,
            tx = lx + 24.0,
            name = escape(&line.name),
        );
    }
}

/// The whole decades (as exponents) around `lo..=hi`, at least one apart.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let low = lo.log10().floor();
    let high = hi.log10().ceil().max(low + 1.0);
    (low, high)
}

fn short(value: f64) -> String {
    match value {
        v if v >= 1_000_000.0 => format!("{}M", v / 1_000_000.0),
        v if v >= 1_000.0 => format!("{}k", v / 1_000.0),
        v if v >= 1.0 => format!("{v}"),
        v => format!("{v}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::{PushFigures, load::RouteFigures};
    use super::*;

    fn measured(mode: Mode, entities: usize, ingest: f64) -> Measurement {
        Measurement {
            mode,
            entities,
            stored: entities as u64,
            ingest_seconds: ingest,
            ingest_per_second: entities as f64 / ingest,
            push: PushFigures {
                visible_p99_ms: 300.0,
                ..PushFigures::default()
            },
            routes: vec![RouteFigures {
                route: "by-name".into(),
                requests: 10,
                errors: 0,
                requests_per_second: 100.0,
                p50_ms: 1.0,
                p99_ms: 4.0,
            }],
            peak_rss_mib: Vec::new(),
            peak_heap_mib: Vec::new(),
            store_disk_mib: 1.0,
            index_disk_mib: 1.0,
            ingest_cpu: Default::default(),
        }
    }

    #[test]
    fn the_chart_draws_a_line_per_series_on_log_axes() {
        let chart = svg(&[
            measured(Mode::Embedded, 10_000, 20.0),
            measured(Mode::Embedded, 100_000, 180.0),
            measured(Mode::Distributed, 10_000, 30.0),
        ]);
        assert!(chart.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(chart.trim_end().ends_with("</svg>"));
        // Ingest per mode, and push plus by-name per mode.
        assert_eq!(chart.matches("<polyline").count(), 2 + 4);
        assert!(chart.contains(">push→visible (embedded)</text>"));
        assert!(chart.contains(">by-name (distributed)</text>"));
        // Decade gridlines labelled on the entities axis.
        assert!(chart.contains(">10k</text>") && chart.contains(">100k</text>"));
        // The embedded ingest line rises from 10k to 100k: its second point is higher up.
        let line = chart.split("<polyline points=\"").nth(1).unwrap();
        let points: Vec<(f64, f64)> = line
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 2);
        assert!(
            points[1].0 > points[0].0 && points[1].1 < points[0].1,
            "{points:?}"
        );
        assert_eq!(svg(&[]).matches("<polyline").count(), 0);
    }
}

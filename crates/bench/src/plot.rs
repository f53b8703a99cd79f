//! SVG plots for the README (plotters, SVG backend only): medians as bars or lines, the
//! spread as whiskers, targets as dashed lines.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::app::AppThroughput;
use super::green::{self, TimeToGreen};
use super::rls::RlsAtScale;

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);
const ORANGE_: RGBColor = RGBColor(255, 127, 14);
const GREY_: RGBColor = RGBColor(160, 160, 160);
const PURPLE_: RGBColor = RGBColor(148, 103, 189);
const FONT: &str = "sans-serif";

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

/// One horizontal bar: the median, whiskers from `lo` to `hi`.
struct Bar {
    label: String,
    median: f64,
    lo: f64,
    hi: f64,
    color: RGBColor,
    text: String,
}

struct HBars<'a> {
    title: &'a str,
    x_desc: &'a str,
    bars: Vec<Bar>,
    /// A target line: value and label.
    line: Option<(f64, String)>,
    log: bool,
}

fn fmt_axis(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

fn hbars(path: &Path, spec: &HBars<'_>) -> Result<()> {
    let n = spec.bars.len();
    let height = 90 + 44 * n as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let tx = |v: f64| if spec.log { v.max(1e-6).log10() } else { v };
    let top = spec
        .bars
        .iter()
        .map(|b| b.hi.max(b.median))
        .chain(spec.line.as_ref().map(|l| l.0))
        .fold(0.0_f64, f64::max);
    let (x0, x1) = if spec.log {
        let bottom = spec
            .bars
            .iter()
            .map(|b| b.lo.min(b.median))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let lo = if bottom.is_finite() {
            bottom.log10().floor()
        } else {
            -1.0
        };
        (lo, top.max(1e-6).log10().ceil() + 0.6)
    } else {
        // Room on the right for the value labels drawn after each bar.
        (0.0, top * 1.6)
    };
    let labels: Vec<String> = spec.bars.iter().rev().map(|b| b.label.clone()).collect();
    let log = spec.log;
    let x_fmt = move |v: &f64| {
        if log {
            if (v - v.round()).abs() < 1e-9 {
                fmt_axis(10f64.powf(*v))
            } else {
                String::new()
            }
        } else {
            fmt_axis(*v)
        }
    };
    let y_fmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, (FONT, 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(230)
        .build_cartesian_2d(x0..x1, (0..n.saturating_sub(1)).into_segmented())
        .map_err(err)?;
    let x_labels = if log {
        ((x1 - x0).ceil() as usize) + 1
    } else {
        8
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(x_labels)
        .y_labels(n)
        .x_desc(spec.x_desc)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let text_style =
        TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let pad = (x1 - x0) * 0.01;
    for (i, b) in spec.bars.iter().enumerate() {
        let y = n - 1 - i;
        let mut rect = Rectangle::new(
            [
                (x0, SegmentValue::Exact(y)),
                (tx(b.median), SegmentValue::Exact(y + 1)),
            ],
            b.color.mix(0.85).filled(),
        );
        rect.set_margin(9, 9, 0, 0);
        chart.draw_series(std::iter::once(rect)).map_err(err)?;
        if b.hi > b.lo {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (tx(b.lo), SegmentValue::CenterOf(y)),
                        (tx(b.hi), SegmentValue::CenterOf(y)),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                b.text.clone(),
                (tx(b.hi.max(b.median)) + pad, SegmentValue::CenterOf(y)),
                text_style.clone(),
            )))
            .map_err(err)?;
    }
    if let Some((value, label)) = &spec.line {
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![
                    (tx(*value), SegmentValue::Exact(0)),
                    (tx(*value), SegmentValue::Exact(n)),
                ],
                6,
                4,
                RED_.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (tx(*value) + pad, SegmentValue::Exact(n)),
                TextStyle::from((FONT, 12).into_font())
                    .color(&RED_)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// `setup.svg` and `per_test_database.svg`.
pub fn time_to_green(out: &Path, g: &TimeToGreen) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if !g.setup.is_empty() {
        let mut bars = Vec::new();
        for s in &g.setup {
            for (what, stats, color) in [
                ("setup", &s.setup_secs, BLUE_),
                ("setup again", &s.again_secs, GREEN_),
                ("teardown", &s.teardown_secs, PURPLE_),
            ] {
                bars.push(Bar {
                    label: format!("{} · {what}", s.backend),
                    median: stats.median,
                    lo: stats.p10,
                    hi: stats.p90,
                    color,
                    text: format!("{:.2} s", stats.median),
                });
            }
        }
        let path = out.join("setup.svg");
        hbars(
            &path,
            &HBars {
                title: "setup and teardown (median, p10–p90)",
                x_desc: "seconds",
                bars,
                line: Some((
                    green::TARGET_SETUP_SECS,
                    format!("target ≤ {} s", green::TARGET_SETUP_SECS),
                )),
                log: false,
            },
        )?;
        written.push(path);
    }
    if let Some(c) = &g.clone {
        let mut bars: Vec<Bar> = c
            .paths
            .iter()
            .map(|p| {
                let (label, color) = match p.key.as_str() {
                    "harness" => ("harness (TestDatabase)", BLUE_),
                    "per_connection" => ("harness before (per connection)", PURPLE_),
                    "harness_file_copy" => ("harness, FILE_COPY", BLUE_),
                    "bare" => ("bare, on disk, WAL_LOG", GREY_),
                    "bare_scratch" => ("limit: bare, scratch tablespace", GREEN_),
                    _ => ("bare, on disk, FILE_COPY", GREY_),
                };
                Bar {
                    label: label.into(),
                    median: p.total_ms.median,
                    lo: p.total_ms.p10,
                    hi: p.total_ms.p90,
                    color,
                    text: format!(
                        "{:.1} ms (create {:.1} + drop {:.1})",
                        p.total_ms.median, p.create_ms.median, p.drop_ms.median
                    ),
                }
            })
            .collect();
        bars.push(Bar {
            label: "pgsql-test (quoted)".into(),
            median: 200.0,
            lo: 170.0,
            hi: 230.0,
            color: GREY_,
            text: "~170–230 ms".into(),
        });
        let path = out.join("per_test_database.svg");
        hbars(
            &path,
            &HBars {
                title: "per-test database: what a test waits for (median, p10–p90)",
                x_desc: "milliseconds (log scale)",
                bars,
                line: Some((
                    green::TARGET_PER_TEST_MS,
                    format!("target ≤ {} ms", green::TARGET_PER_TEST_MS),
                )),
                // Memory and disk paths differ by 20×: a log scale keeps both readable.
                log: true,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

/// `rls_latency.svg`: both queries, three variants, log scale.
pub fn rls(out: &Path, r: &RlsAtScale) -> Result<PathBuf> {
    let mut bars = Vec::new();
    for q in &r.queries {
        for v in &q.variants {
            let Some(s) = v.latency_ms else { continue };
            let (name, color) = match v.key.as_str() {
                "rls" => ("RLS (real path)", BLUE_),
                "limit" => ("limit (explicit filter)", GREEN_),
                "v2" => ("RLS, V2 function (SET search_path)", PURPLE_),
                _ => ("naive policy, no index", RED_),
            };
            bars.push(Bar {
                label: format!("{} · {name}", q.key),
                median: s.median,
                lo: s.p10,
                hi: s.p90,
                color,
                text: if s.median < 1.0 {
                    format!("{:.3} ms", s.median)
                } else {
                    format!("{:.1} ms", s.median)
                },
            });
        }
    }
    let path = out.join("rls_latency.svg");
    let title = format!(
        "RLS at {} todos: statement latency (median, p10–p90, log scale)",
        short_count(r.dataset.todos)
    );
    hbars(
        &path,
        &HBars {
            title: &title,
            x_desc: "milliseconds (log scale)",
            bars,
            line: None,
            log: true,
        },
    )?;
    Ok(path)
}

fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// `app_throughput.svg`: req/s against concurrent users, app and pgbench, list and mix.
pub fn app(out: &Path, a: &AppThroughput) -> Result<PathBuf> {
    let path = out.join("app_throughput.svg");
    let mut levels: Vec<usize> = a.rows.iter().map(|r| r.users).collect();
    levels.sort_unstable();
    levels.dedup();
    let n = levels.len().max(1);
    let top = a
        .rows
        .iter()
        .flat_map(|r| {
            [Some(r.app.rps.max), r.pgbench.as_ref().map(|p| p.rps.max)]
                .into_iter()
                .flatten()
        })
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path.as_path(), (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let level_labels: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
    let x_fmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => level_labels.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "throughput by concurrent users (median of runs, min–max)",
            (FONT, 20),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..top * 1.2)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .x_labels(n)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("requests (transactions) per second")
        .x_desc("concurrent users")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let series: [(&str, &str, bool, RGBColor); 4] = [
        ("list", "app · list", true, BLUE_),
        ("list", "pgbench · list", false, ORANGE_),
        ("mix", "app · 90/10 list/insert", true, PURPLE_),
        ("mix", "pgbench · 90/10 list/insert", false, GREY_),
    ];
    for (workload, name, is_app, color) in series {
        let points: Vec<(SegmentValue<usize>, f64, f64, f64)> = a
            .rows
            .iter()
            .filter(|r| r.workload == workload)
            .filter_map(|r| {
                let idx = levels.iter().position(|l| *l == r.users)?;
                let s = if is_app {
                    r.app.rps
                } else {
                    r.pgbench.as_ref()?.rps
                };
                Some((SegmentValue::CenterOf(idx), s.median, s.min, s.max))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let style = color.stroke_width(if workload == "list" { 3 } else { 2 });
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0.clone(), p.1)),
                style,
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.0.clone(), p.1), 4, color.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(points.iter().map(|p| {
                PathElement::new(
                    vec![(p.0.clone(), p.2), (p.0.clone(), p.3)],
                    color.stroke_width(1),
                )
            }))
            .map_err(err)?;
    }
    // The ratio app ÷ pgbench above each list point.
    let style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for r in a.rows.iter().filter(|r| r.workload == "list") {
        let (Some(ratio), Some(idx)) = (r.ratio, levels.iter().position(|l| *l == r.users)) else {
            continue;
        };
        let y = r
            .pgbench
            .as_ref()
            .map_or(r.app.rps.median, |p| p.rps.max.max(r.app.rps.max));
        chart
            .draw_series(std::iter::once(Text::new(
                format!("app ÷ pgbench {:.2}×", ratio.median),
                (SegmentValue::CenterOf(idx), y + top * 0.05),
                style.clone(),
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    drop(chart);
    drop(root);
    Ok(path)
}

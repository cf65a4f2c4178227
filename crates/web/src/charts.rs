//! The site's charts: SVG made on the server with `plotters` (its SVG backend only), shown
//! inline so they need no JavaScript, each page putting the table of the numbers beside it.
//!
//! Every chart is bounded whatever the data: at most [`MAX_BARS`] bars or
//! [`MAX_SPARKLINE_POINTS`] points (callers pass windows of days), so an SVG stays a few
//! kilobytes. Labels are the caller's (dates, numbers); plotters escapes any text it writes.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Most bars a bar chart draws; more are left out from the start (the oldest days).
pub(crate) const MAX_BARS: usize = 400;
/// Most points a sparkline draws; more are left out from the start.
pub(crate) const MAX_SPARKLINE_POINTS: usize = 400;

/// A colour from the site's palette (style.css).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tone {
    Ok,
    Partial,
    Problem,
    Neutral,
}

impl Tone {
    fn color(self) -> RGBColor {
        match self {
            Tone::Ok => RGBColor(0x17, 0x72, 0x3a),
            Tone::Partial => RGBColor(0xd0, 0x8c, 0x00),
            Tone::Problem => RGBColor(0xb3, 0x26, 0x1e),
            Tone::Neutral => RGBColor(0x0b, 0x5c, 0xad),
        }
    }
}

/// One stacked part of every bar: its name (for the legend) and its value per bar.
pub(crate) struct Series<'a> {
    pub(crate) name: &'a str,
    pub(crate) tone: Tone,
    pub(crate) values: Vec<i64>,
}

/// A stacked bar chart: one bar per label, the series stacked in order from the axis up.
pub(crate) struct StackedBars<'a> {
    /// What the chart shows, for screen readers (the SVG's title).
    pub(crate) title: &'a str,
    pub(crate) labels: Vec<String>,
    pub(crate) series: Vec<Series<'a>>,
}

/// Drawn at about the width it is shown at beside its table on a laptop (some 500 to 650
/// pixels), so that its labels, in [`LABEL_FONT`], are shown at 11 to 14 pixels rather than
/// scaled down to unreadable.
const BAR_CHART_SIZE: (u32, u32) = (600, 280);
/// The axes' and the legend's font size as plotters takes it (its SVG says 0.8 of this).
const LABEL_FONT: f64 = 18.0;
const SPARKLINE_SIZE: (u32, u32) = (120, 28);

/// The chart as an `<svg>` element.
pub(crate) fn stacked_bars(chart: &StackedBars) -> String {
    let skip = chart.labels.len().saturating_sub(MAX_BARS);
    let labels = &chart.labels[skip..];
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, BAR_CHART_SIZE).into_drawing_area();
        draw_stacked_bars(&root, labels, &chart.series, skip)
    };
    if let Err(error) = drawn {
        tracing::error!(%error, "web: a chart could not be drawn");
        return String::new();
    }
    titled(svg, chart.title)
}

fn draw_stacked_bars(
    root: &DrawingArea<SVGBackend, Shift>,
    labels: &[String],
    series: &[Series],
    skip: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let bars = labels.len();
    let totals: Vec<i64> = (0..bars)
        .map(|bar| {
            series
                .iter()
                .map(|s| s.values.get(bar + skip).copied().unwrap_or(0).max(0))
                .sum()
        })
        .collect();
    let top = totals.iter().copied().max().unwrap_or(0).max(1);
    // Room above the tallest bar for the legend, one line per series: the plot is about
    // `PLOT_HEIGHT` pixels tall, a legend line some 22.
    const PLOT_HEIGHT: i64 = 226;
    let legend = 14 + 22 * series.len() as i64;
    let top = top * PLOT_HEIGHT / (PLOT_HEIGHT - legend).max(PLOT_HEIGHT / 3) + 1;
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(64)
        // One segment per bar: plotters' range is inclusive, and the last bar ends at the
        // right edge (`SegmentValue::Last`) rather than leaving an empty slot after it.
        .build_cartesian_2d((0..bars.max(1) as u32 - 1).into_segmented(), 0..top)?;
    let label_of = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(bar) | SegmentValue::Exact(bar) => {
            labels.get(*bar as usize).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.clamp(1, 8))
        .x_label_formatter(&label_of)
        .y_labels(6)
        .y_label_formatter(&|value| value.to_string())
        .label_style(("sans-serif", LABEL_FONT))
        .light_line_style(RGBColor(0xee, 0xf0, 0xf2))
        .bold_line_style(RGBColor(0xdd, 0xe2, 0xe6))
        .axis_style(RGBColor(0x5c, 0x66, 0x70))
        .draw()?;
    let mut base = vec![0_i64; bars];
    for part in series {
        let color = part.tone.color();
        let rectangles: Vec<_> = (0..bars)
            .filter_map(|bar| {
                let value = part.values.get(bar + skip).copied().unwrap_or(0).max(0);
                let bottom = base[bar];
                base[bar] += value;
                (value > 0).then(|| {
                    let mut rectangle = Rectangle::new(
                        [
                            (SegmentValue::Exact(bar as u32), bottom),
                            (
                                if bar + 1 == bars {
                                    SegmentValue::Last
                                } else {
                                    SegmentValue::Exact(bar as u32 + 1)
                                },
                                bottom + value,
                            ),
                        ],
                        color.filled(),
                    );
                    rectangle.set_margin(0, 0, 1, 1);
                    rectangle
                })
            })
            .collect();
        chart
            .draw_series(rectangles)?
            .label(part.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", LABEL_FONT))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(0xdd, 0xe2, 0xe6))
        .draw()?;
    root.present()?;
    Ok(())
}

/// A small line of `values` without axes, for a trend in a table cell.
pub(crate) fn sparkline(title: &str, values: &[i64]) -> String {
    let values = &values[values.len().saturating_sub(MAX_SPARKLINE_POINTS)..];
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, SPARKLINE_SIZE).into_drawing_area();
        draw_sparkline(&root, values)
    };
    if let Err(error) = drawn {
        tracing::error!(%error, "web: a sparkline could not be drawn");
        return String::new();
    }
    titled(svg, title)
}

fn draw_sparkline(
    root: &DrawingArea<SVGBackend, Shift>,
    values: &[i64],
) -> Result<(), Box<dyn std::error::Error>> {
    let top = values.iter().copied().max().unwrap_or(0).max(1);
    let last = values.len().saturating_sub(1).max(1) as i64;
    let mut chart = ChartBuilder::on(root)
        .margin(3)
        .build_cartesian_2d(0..last, 0..top)?;
    let line = Tone::Neutral.color().stroke_width(2);
    chart.draw_series(LineSeries::new(
        values
            .iter()
            .enumerate()
            .map(|(n, value)| (n as i64, *value)),
        line,
    ))?;
    root.present()?;
    Ok(())
}

/// `svg` (one `<svg …>` element) marked as an image with `title` for screen readers.
fn titled(svg: String, title: &str) -> String {
    let Some(end_of_tag) = svg.find('>') else {
        return svg;
    };
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "{} role=\"img\" aria-label=\"{title}\" class=\"chart\"><title>{title}</title>{}",
        &svg[..end_of_tag],
        &svg[end_of_tag + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(days: usize) -> String {
        stacked_bars(&StackedBars {
            title: "Messages <per> day",
            labels: (0..days).map(|n| format!("11-{n:02}")).collect(),
            series: vec![
                Series {
                    name: "DMARC pass",
                    tone: Tone::Ok,
                    values: (0..days as i64).collect(),
                },
                Series {
                    name: "DMARC fail",
                    tone: Tone::Problem,
                    values: vec![3; days],
                },
            ],
        })
    }

    #[test]
    fn a_bar_chart_is_one_titled_svg_with_a_bar_per_nonzero_value() {
        let svg = bars(5);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<title>Messages &lt;per&gt; day</title>"));
        assert!(svg.contains("role=\"img\""));
        // 4 pass bars (the first is 0), 5 fail bars, 2 legend boxes, the background and the
        // legend's frame.
        let fill_ok = svg.matches("fill=\"#17723A\"").count();
        let fill_problem = svg.matches("fill=\"#B3261E\"").count();
        assert_eq!((fill_ok, fill_problem), (4 + 1, 5 + 1), "{svg}");
        assert!(svg.contains("DMARC fail"));
    }

    #[test]
    fn a_chart_stays_small_whatever_the_number_of_days() {
        let svg = bars(10_000);
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        let empty = bars(0);
        assert!(empty.starts_with("<svg"));
    }

    #[test]
    fn a_sparkline_is_a_titled_polyline() {
        let svg = sparkline("trend", &[1, 5, 2, 8]);
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("<title>trend</title>"));
        assert!(sparkline("none", &[]).starts_with("<svg"));
    }
}

//! Charts drawn on the server as SVG (no script, no CDN): alerts per day
//! and priority, and horizontal bars. Axes have round ticks with
//! gridlines; counts are written as whole numbers, days with one decimal.

use std::fmt::Write;

use super::esc;

const COLORS: [&str; 3] = ["#c0392b", "#e67e22", "#2e86c1"];

/// Round ticks from 0 to at least `max` (about five): 0, 50, 100, ...
pub(crate) fn ticks(max: f64) -> Vec<f64> {
    let max = max.max(1.0);
    let raw = max / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
        .max(1.0);
    let mut out = vec![0.0];
    while *out.last().unwrap_or(&0.0) < max {
        let next = out.len() as f64 * step;
        out.push(next);
    }
    out
}

/// A number as a page writes it: whole numbers without decimals.
pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Stacked columns of P1, P2, P3 alerts per day (`YYYY-MM-DD`), with a
/// count axis and a date under every seventh column.
pub(crate) fn alerts_per_day(days: &[(String, [u64; 3])]) -> String {
    let (w, h, left, pad) = (720.0_f64, 240.0_f64, 44.0_f64, 30.0_f64);
    let most = days
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let ticks = ticks(most as f64);
    let top = ticks.last().copied().unwrap_or(1.0).max(1.0);
    let plot_h = h - 2.0 * pad;
    let n = days.len().max(1) as f64;
    let bw = (w - left - 10.0) / n;
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="일별 알림 건수" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for t in &ticks {
        let y = h - pad - t / top * plot_h;
        let _ = write!(
            svg,
            r#"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{}</text>"#,
            w - 10.0,
            left - 4.0,
            y + 4.0,
            number(*t)
        );
    }
    for (i, (day, counts)) in days.iter().enumerate() {
        let x = left + i as f64 * bw;
        let mut y = h - pad;
        for (slot, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let bh = c as f64 / top * plot_h;
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} P{}: {c}건</title></rect>"#,
                (bw - 1.0).max(1.0),
                COLORS[slot],
                esc(day),
                slot + 1
            );
        }
        // a date under every seventh column, and the last (none too close)
        let last = i + 1 == days.len();
        let room = (days.len() - 1 - i) as f64 * bw;
        if last || (i % 7 == 0 && room > 40.0) {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
                x + bw / 2.0,
                h - 12.0,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" class="base"/>"#,
        h - pad,
        w - 10.0
    );
    legend(&mut svg, w - 150.0, &["P1", "P2", "P3"], 45.0);
    svg.push_str("</svg>");
    svg
}

fn legend(svg: &mut String, from: f64, names: &[&str], gap: f64) {
    for (i, name) in names.iter().enumerate() {
        let x = from + i as f64 * gap;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="4" width="10" height="10" fill="{}"/><text x="{:.1}" y="13" class="axis">{}</text>"#,
            COLORS[i % COLORS.len()],
            x + 13.0,
            esc(name)
        );
    }
}

/// Horizontal bars, one row per label, each with one or more values
/// (drawn side by side in the colours of `series`), over a value axis
/// with gridlines.
pub(crate) fn bars(rows: &[(String, Vec<f64>)], series: &[&str], unit: &str) -> String {
    let row_h = 22.0_f64;
    let (w, label_w, right) = (720.0_f64, 200.0_f64, 80.0_f64);
    let per_row = series.len().max(1) as f64;
    let h = row_h * rows.len().max(1) as f64 * per_row + 48.0;
    let most = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let ticks = ticks(most);
    let top = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let plot_w = w - label_w - right;
    let mut svg = format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for t in &ticks {
        let x = label_w + t / top * plot_w;
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
            h - 22.0,
            h - 8.0,
            number(*t)
        );
    }
    let mut y = 22.0;
    for (label, values) in rows {
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}" class="axis">{}</text>"#,
            y + 14.0,
            esc(label)
        );
        for (i, v) in values.iter().enumerate() {
            let bw = v / top * plot_w;
            let shown = number(*v);
            let _ = write!(
                svg,
                r#"<rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="{}"><title>{}: {shown} {}</title></rect><text x="{:.1}" y="{:.1}" class="axis">{shown} {}</text>"#,
                row_h - 4.0,
                COLORS[i % COLORS.len()],
                esc(series.get(i).copied().unwrap_or_default()),
                esc(unit),
                label_w + bw + 4.0,
                y + 14.0,
                esc(unit)
            );
            y += row_h;
        }
    }
    legend(&mut svg, label_w, series, 160.0);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_stack_the_day_s_priorities_over_round_ticks() {
        let svg = alerts_per_day(&[
            ("2026-11-30".into(), [1, 2, 3]),
            ("2026-12-01".into(), [0, 0, 6]),
        ]);
        assert_eq!(
            svg.matches("<rect x=").count(),
            4 + 3,
            "4 segments and 3 legend keys"
        );
        assert!(svg.contains("2026-11-30 P3: 3건"));
        assert!(
            svg.contains(">11-30<") && svg.contains(">12-01<"),
            "dates on the axis"
        );
        assert!(svg.matches(r#"class="grid""#).count() >= 3, "gridlines");
        let svg = bars(&[("P1".into(), vec![2.5])], &["중앙값"], "일");
        assert!(svg.contains("2.5 일"));
        let svg = bars(
            &[("생연2동".into(), vec![66.0, 3.0])],
            &["연락 대기", "기한초과"],
            "",
        );
        assert!(
            svg.contains(">66 <") && !svg.contains("66.0"),
            "counts are whole"
        );
    }

    #[test]
    fn ticks_are_round_and_reach_the_largest_value() {
        assert_eq!(ticks(301.0), vec![0.0, 100.0, 200.0, 300.0, 400.0]);
        assert_eq!(ticks(4.0), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(ticks(45.0), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
    }
}

//! Charts drawn on the server as SVG (no script, no CDN): alerts per day
//! and priority, and horizontal bars.

use std::fmt::Write;

use super::esc;

const COLORS: [&str; 3] = ["#c0392b", "#e67e22", "#2e86c1"];

/// Stacked columns of P1, P2, P3 alerts per day.
pub fn alerts_per_day(days: &[(String, [u64; 3])]) -> String {
    let (w, h, pad) = (720.0_f64, 220.0_f64, 30.0_f64);
    let max = days
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = days.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="일별 알림 alerts per day" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="14" class="axis">최대 max {max}</text><line x1="{pad}" y1="{}" x2="{}" y2="{}" class="base"/>"#,
        h - pad,
        w - pad,
        h - pad
    );
    for (i, (day, counts)) in days.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let mut y = h - pad;
        for (slot, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let bh = c as f64 / max * (h - 2.0 * pad);
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} P{}: {c}</title></rect>"#,
                (bw - 1.0).max(1.0),
                COLORS[slot],
                esc(day),
                slot + 1
            );
        }
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            r#"<text x="{pad}" y="{}" class="axis">{}</text><text x="{}" y="{}" class="axis" text-anchor="end">{}</text>"#,
            h - 10.0,
            esc(&first.0),
            w - pad,
            h - 10.0,
            esc(&last.0)
        );
    }
    for (slot, color) in COLORS.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="6" width="10" height="10" fill="{color}"/><text x="{}" y="15" class="axis">P{}</text>"#,
            w - 150.0 + slot as f64 * 45.0,
            w - 137.0 + slot as f64 * 45.0,
            slot + 1
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one row per label, each with one or more values
/// (drawn side by side in the colours of `series`).
pub fn bars(rows: &[(String, Vec<f64>)], series: &[&str], unit: &str) -> String {
    let row_h = 22.0_f64;
    let (w, label_w) = (720.0_f64, 220.0_f64);
    let h = row_h * rows.len().max(1) as f64 * series.len().max(1) as f64 + 30.0;
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mut svg = format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let mut y = 20.0;
    for (label, values) in rows {
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}" class="axis">{}</text>"#,
            y + 14.0,
            esc(label)
        );
        for (i, v) in values.iter().enumerate() {
            let bw = v / max * (w - label_w - 80.0);
            let _ = write!(
                svg,
                r#"<rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="{}"><title>{}: {v:.1} {}</title></rect><text x="{:.1}" y="{:.1}" class="axis">{v:.1} {}</text>"#,
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
    for (i, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="2" width="10" height="10" fill="{}"/><text x="{}" y="11" class="axis">{}</text>"#,
            label_w + i as f64 * 160.0,
            COLORS[i % COLORS.len()],
            label_w + 14.0 + i as f64 * 160.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_stack_the_day_s_priorities() {
        let svg = alerts_per_day(&[
            ("2026-11-30".into(), [1, 2, 3]),
            ("2026-12-01".into(), [0, 0, 6]),
        ]);
        assert_eq!(
            svg.matches("<rect x=").count(),
            4 + 3,
            "4 segments and 3 legend keys"
        );
        assert!(svg.contains("2026-11-30 P3: 3"));
        let svg = bars(&[("P1".into(), vec![2.5])], &["중앙값 median"], "일 days");
        assert!(svg.contains("2.5 일 days"));
    }
}

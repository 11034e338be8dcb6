//! The demo's `report.html`: the counts per task, and two charts drawn as inline
//! SVG — what the phones were told was done against what the database holds, over
//! time, and each service's backlog — with the injected faults marked on both.

use std::fmt::Write as _;
use std::time::Duration;

use super::sample::Sample;
use super::DemoArgs;
use crate::count::Tally;
use crate::web::pages::escape;

const W: f64 = 760.0;
const H: f64 = 260.0;
const PAD: f64 = 40.0;
const COLORS: [&str; 4] = ["#2563eb", "#16a34a", "#d97706", "#9333ea"];

/// One line of a chart: (seconds, value) points.
struct Series {
    name: String,
    dashed: bool,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

/// A line chart of `series`, with `notes` as vertical marks.
fn chart(title: &str, series: &[Series], notes: &[(f64, String)]) -> String {
    let t_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(notes.iter().map(|n| n.0)).fold(1.0_f64, f64::max);
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0_f64, f64::max);
    let x = |t: f64| PAD + (t / t_max) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - (v / y_max) * (H - 2.0 * PAD);
    let mut svg = format!("<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">", escape(title), escape(title));
    let _ = write!(svg, "<line x1=\"{PAD}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" class=\"axis\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{0}\" class=\"axis\"/>", H - PAD, W - PAD);
    let _ = write!(svg, "<text x=\"{PAD}\" y=\"{}\" class=\"tick\">{y_max:.0}</text><text x=\"{}\" y=\"{}\" class=\"tick\">{t_max:.0} s</text>", PAD - 6.0, W - PAD - 20.0, H - PAD + 16.0);
    for (t, what) in notes {
        let _ = write!(svg, "<line x1=\"{0:.1}\" y1=\"{PAD}\" x2=\"{0:.1}\" y2=\"{1}\" class=\"note\"><title>{2}</title></line>", x(*t), H - PAD, escape(what));
    }
    for s in series {
        let path: Vec<String> = s.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let dash = if s.dashed { " stroke-dasharray=\"5 4\"" } else { "" };
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}</title></polyline>", s.color, path.join(" "), escape(&s.name));
    }
    svg.push_str("</svg><ul class=\"legend\">");
    for s in series {
        let _ = write!(svg, "<li><span style=\"border-color:{}\" class=\"{}\"></span>{}</li>", s.color, if s.dashed { "dashed" } else { "solid" }, escape(&s.name));
    }
    svg.push_str("</ul></figure>");
    svg
}

pub fn html(args: &DemoArgs, tallies: &[Tally], poison: &str, samples: &[Sample], notes: &[(f64, String)], burst: Duration, total: Duration) -> String {
    let mode = args.mode.name();
    let mut rows = String::new();
    for t in tallies {
        let bad = if t.lost > 0 || t.duplicated > 0 || t.out_of_order > 0 { " class=\"bad\"" } else { "" };
        let _ = write!(
            rows,
            "<tr{bad}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.task),
            t.attempted,
            t.acknowledged,
            t.stored,
            t.lost,
            t.lost_after_ack,
            t.duplicated,
            t.out_of_order
        );
    }
    let tasks = ["uploads", "comments", "plays"];
    let mut progress = Vec::new();
    for (i, task) in tasks.iter().enumerate() {
        progress.push(Series { name: format!("{task}: acknowledged"), dashed: true, color: COLORS[i], points: samples.iter().map(|s| (s.at, s.acked[i] as f64)).collect() });
        progress.push(Series { name: format!("{task}: stored"), dashed: false, color: COLORS[i], points: samples.iter().map(|s| (s.at, s.stored[i] as f64)).collect() });
    }
    let names = ["upload jobs (Storage Queue)", "comments (Service Bus)", "undelivered events (Event Grid)", "uncounted plays (Event Hubs)"];
    let backlogs: Vec<Series> =
        names.iter().enumerate().map(|(i, n)| Series { name: n.to_string(), dashed: false, color: COLORS[i], points: samples.iter().map(|s| (s.at, s.backlog[i] as f64)).collect() }).collect();
    let backlog_chart = if args.mode == crate::mobile::Mode::Messaging { chart("Backlog per service", &backlogs, notes) } else { String::new() };
    let note_list: String = notes.iter().map(|(t, w)| format!("<li>{t:.1} s: {}</li>", escape(w))).collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>music-share demo: {mode} mode</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 820px; color: #1f2937; }}
h1 {{ font-size: 1.5rem; }} table {{ border-collapse: collapse; width: 100%; }}
th, td {{ padding: .35rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} tr.bad td {{ color: #b91c1c; font-weight: 600; }}
svg {{ width: 100%; height: auto; background: #f9fafb; }} .axis {{ stroke: #9ca3af; }} .note {{ stroke: #ef4444; stroke-dasharray: 2 3; }}
.tick {{ font-size: 11px; fill: #6b7280; }} figcaption {{ font-weight: 600; margin: 1rem 0 .3rem; }}
.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; font-size: 13px; }}
.legend span {{ display: inline-block; width: 22px; border-top: 3px solid; margin-right: .4rem; vertical-align: middle; }} .legend span.dashed {{ border-top-style: dashed; }}
</style></head><body>
<h1>music-share demo — {mode} mode</h1>
<p>{phones} phones, each {uploads} uploads, {comments} comments and {plays} plays, over a network that drops {drop:.0}% of attempts, one phone in ten offline for the first 2 s; burst {burst:.1} s, settled after {total:.1} s.</p>
<table><thead><tr><th>task</th><th>attempted</th><th>acknowledged</th><th>stored</th><th>lost</th><th>lost after ack</th><th>duplicated</th><th>out of order</th></tr></thead><tbody>{rows}</tbody></table>
<p>{poison}</p>
{progress_chart}
{backlog_chart}
<p>Faults (red marks):</p><ul>{note_list}</ul>
</body></html>
"#,
        poison = escape(poison),
        phones = args.phones,
        uploads = args.uploads,
        comments = args.comments,
        plays = args.plays,
        drop = args.drop * 100.0,
        burst = burst.as_secs_f64(),
        total = total.as_secs_f64(),
        progress_chart = chart("Acknowledged to the phones (dashed) and stored in the database (solid)", &progress, notes),
    )
}

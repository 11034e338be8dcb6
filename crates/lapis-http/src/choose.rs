//! `GET /choose` on the HTTP port: the advisor of `lapis choose` as a page. Without a
//! query it shows the questions as a form (and the music-share app's four tasks as
//! links); with one it shows the advice, the connection string and a snippet. Plain
//! HTML, every value escaped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use lapis_core::advisor::snippets::{connection, snippet, Endpoints};
use lapis_core::advisor::{advise, music_share, scenario, Delivery, Kind, Protocol, Task};

use crate::server::HttpResponse;

pub const PATH: &str = "/choose";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The task a query describes (the form's fields, or `scenario=<music-share task>`).
fn task_of(query: &str) -> Task {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), percent_encoding::percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(name) = get("scenario") {
        if let Some(t) = scenario(name) {
            return t;
        }
    }
    let on = |k: &str| get(k).is_some_and(|v| v == "on" || v == "true" || v == "1");
    let number = |k: &str, d: f64| get(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0).unwrap_or(d);
    Task {
        kind: if get("kind") == Some("event") { Kind::Event } else { Kind::Message },
        ordered: on("ordered"),
        dedup: on("dedup"),
        transactions: on("transactions"),
        sessions: on("sessions"),
        size_kb: number("size_kb", 1.0) as u64,
        backlog_gb: number("backlog_gb", 1.0),
        per_second: number("rate", 10.0) as u64,
        streaming: on("streaming"),
        handlers: number("handlers", 1.0).min(10_000.0) as u32,
        delivery: Delivery::from_word(get("delivery").unwrap_or("")),
        replay: on("replay"),
        protocol: Protocol::from_word(get("protocol").unwrap_or("")),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1d2433}\
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:1.6rem}fieldset{border:1px solid #cfd6e4;border-radius:8px;margin:.8rem 0}\
label{display:block;margin:.25rem 0}input[type=number]{width:7rem}pre{background:#f3f5f9;padding:.8rem;border-radius:6px;overflow-x:auto}\
.use{font-size:1.3rem;font-weight:600;color:#0b5cad}button{padding:.4rem 1.2rem;font-size:1rem}";

fn form() -> String {
    let scenarios: String = music_share().iter().map(|(name, what, _)| format!("<li><a href=\"{PATH}?scenario={name}\">{}</a> — {}</li>", escape(name), escape(what))).collect();
    format!(
        "<h2>Your task</h2><form method=\"get\" action=\"{PATH}\">\
<fieldset><legend>What is sent</legend>\
<label><input type=\"radio\" name=\"kind\" value=\"message\" checked> a message: work the sender expects done</label>\
<label><input type=\"radio\" name=\"kind\" value=\"event\"> an event: something happened; the sender expects nothing</label></fieldset>\
<fieldset><legend>What it needs</legend>\
<label><input type=\"checkbox\" name=\"ordered\"> handled in the order sent</label>\
<label><input type=\"checkbox\" name=\"dedup\"> a retried send stored once</label>\
<label><input type=\"checkbox\" name=\"transactions\"> several operations committed together</label>\
<label><input type=\"checkbox\" name=\"sessions\"> related items to one consumer at a time</label>\
<label><input type=\"checkbox\" name=\"streaming\"> a continuous stream (telemetry, clicks, logs)</label>\
<label><input type=\"checkbox\" name=\"replay\"> consumers can read again what they read</label></fieldset>\
<fieldset><legend>How much</legend>\
<label>item size, KB <input type=\"number\" name=\"size_kb\" value=\"1\" min=\"0\"></label>\
<label>most waiting, GB <input type=\"number\" name=\"backlog_gb\" value=\"1\" min=\"0\" step=\"any\"></label>\
<label>items per second at peak <input type=\"number\" name=\"rate\" value=\"10\" min=\"0\"></label>\
<label>independent handlers that each get every item <input type=\"number\" name=\"handlers\" value=\"1\" min=\"1\"></label></fieldset>\
<fieldset><legend>How it is delivered</legend>\
<label><input type=\"radio\" name=\"delivery\" value=\"either\" checked> either</label>\
<label><input type=\"radio\" name=\"delivery\" value=\"push\"> the service calls the handlers (push)</label>\
<label><input type=\"radio\" name=\"delivery\" value=\"pull\"> handlers ask when ready (pull)</label>\
<label>protocol <select name=\"protocol\"><option value=\"any\">any</option><option value=\"http\">HTTP</option><option value=\"amqp\">AMQP</option><option value=\"kafka\">Kafka</option></select></label></fieldset>\
<button type=\"submit\">Advise</button></form>\
<h2>The music-share app's tasks</h2><ul>{scenarios}</ul>"
    )
}

fn advice_html(task: &Task, e: &Endpoints) -> String {
    let a = advise(task);
    let mut html = format!("<p class=\"use\">Use: {}</p>", escape(a.service.name()));
    if !a.with.is_empty() {
        html.push_str("<ul>");
        for (s, role) in &a.with {
            html.push_str(&format!("<li>with {}: {}</li>", escape(s.name()), escape(role)));
        }
        html.push_str("</ul>");
    }
    html.push_str("<h2>Why</h2><ul>");
    for r in &a.reasons {
        html.push_str(&format!("<li>{}</li>", escape(r)));
    }
    html.push_str("</ul><h2>Why not</h2><ul>");
    for (s, why) in &a.not {
        html.push_str(&format!("<li><b>{}</b>: {}</li>", escape(s.name()), escape(why)));
    }
    html.push_str(&format!(
        "</ul><h2>On this Lapis</h2><pre>{}</pre><h2>Python</h2><pre>{}</pre><p><a href=\"{PATH}\">Another task</a></p>",
        escape(&connection(a.service, e)),
        escape(&snippet(a.service, e))
    ));
    html
}

pub fn page(query: Option<&str>, e: &Endpoints) -> HttpResponse {
    let body = match query.filter(|q| !q.is_empty()) {
        None => form(),
        Some(q) => advice_html(&task_of(q), e),
    };
    let html = format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lapis: which service?</title><style>{STYLE}</style></head><body><h1>Which Azure messaging service?</h1>{body}</body></html>");
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(html)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_a_task_and_text_is_escaped() {
        assert!(task_of("scenario=comment").dedup);
        let t = task_of("kind=event&streaming=on&rate=60000&delivery=pull&protocol=kafka");
        assert_eq!((t.kind, t.streaming, t.per_second, t.delivery, t.protocol), (Kind::Event, true, 60_000, Delivery::Pull, Protocol::Kafka));
        assert_eq!(task_of("rate=-5&size_kb=nope").per_second, 10, "nonsense falls back to the defaults");
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}

//! The web site's pages: plain server-rendered HTML with a little JavaScript (the
//! live "trending now" and "just published" lists, and counting a play when the
//! player starts). Every value from users is escaped.

use std::fmt::Write as _;

use serde_json::Value;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

const STYLE: &str = r#"
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --accent: #4338ca; --bad: #b91c1c; --good: #15803d; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; background: #f8fafc; }
header { background: var(--accent); color: white; padding: .8rem 1.5rem; display: flex; align-items: baseline; gap: 1rem; }
header a { color: white; text-decoration: none; } header h1 { margin: 0; font-size: 1.3rem; } header span { opacity: .8; font-size: .9rem; }
main { max-width: 980px; margin: 1.5rem auto; padding: 0 1rem; display: grid; grid-template-columns: 2fr 1fr; gap: 1.5rem; }
section, aside > div { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.2rem; margin-bottom: 1.2rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
ul.tracks, ul.live, ol.comments { list-style: none; margin: 0; padding: 0; }
ul.tracks li, ol.comments li { padding: .5rem 0; border-bottom: 1px solid var(--line); } ul.tracks li:last-child, ol.comments li:last-child { border: 0; }
ul.live li { padding: .25rem 0; font-size: .92rem; }
.meta { color: var(--muted); font-size: .85rem; }
form { display: grid; gap: .5rem; } label { font-size: .9rem; color: var(--muted); }
input[type=text], textarea { width: 100%; padding: .45rem .6rem; border: 1px solid #cbd5e1; border-radius: 6px; font: inherit; }
button { background: var(--accent); color: white; border: 0; border-radius: 6px; padding: .5rem 1rem; font: inherit; cursor: pointer; justify-self: start; }
.flash { padding: .6rem .9rem; border-radius: 6px; margin-bottom: 1rem; } .flash.ok { background: #dcfce7; color: var(--good); } .flash.bad { background: #fee2e2; color: var(--bad); }
audio { width: 100%; margin: .5rem 0 1rem; }
a { color: var(--accent); }
@media (max-width: 760px) { main { grid-template-columns: 1fr; } }
"#;

const LIVE: &str = r#"
// Titles and artists are what uploaders typed: escaped before they become HTML.
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
async function refresh() {
  for (const [id, url, line] of [
    ["trending", "/live/trending", t => `${esc(t.title)} — ${esc(t.artist)} <span class="meta">${Number(t.plays)} plays</span>`],
    ["published", "/live/published", t => `${esc(t.title)} — ${esc(t.artist)}`],
  ]) {
    const el = document.getElementById(id);
    if (!el) continue;
    try {
      const items = await (await fetch(url)).json();
      el.innerHTML = items.length ? items.map(t => `<li><a href="/tracks/${encodeURIComponent(t.id)}">${line(t)}</a></li>`).join("") : '<li class="meta">nothing yet</li>';
    } catch (e) { /* the next tick tries again */ }
  }
}
refresh(); setInterval(refresh, 2000);
const player = document.querySelector("audio[data-track]");
if (player) player.addEventListener("play", () => fetch(`/tracks/${player.dataset.track}/plays`, {method: "POST"}));
"#;

/// A whole page around `body`, with the live side bar.
pub fn page(title: &str, mode: &str, flash: Option<(&str, bool)>, body: &str) -> String {
    let flash = flash.map(|(m, ok)| format!("<div class=\"flash {}\" role=\"status\">{}</div>", if ok { "ok" } else { "bad" }, escape(m))).unwrap_or_default();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · music-share</title><style>{STYLE}</style></head><body>
<header><a href="/"><h1>music-share</h1></a><span>{mode} mode</span><a href="/admin" style="margin-left:auto">admin</a></header>
<main><div>{flash}{body}</div>
<aside><div><h2>Trending now</h2><ul class="live" id="trending"></ul></div><div><h2>Just published</h2><ul class="live" id="published"></ul></div></aside></main>
<script>{LIVE}</script></body></html>"#,
        title = escape(title),
        mode = escape(mode),
    )
}

pub fn home(tracks: &[Value], upload_id: &str) -> String {
    let mut list = String::new();
    for t in tracks {
        let _ = write!(
            list,
            "<li><a href=\"/tracks/{id}\">{title}</a> — {artist}<div class=\"meta\">{plays} plays · {comments} comments</div></li>",
            id = escape(text(t, "id")),
            title = escape(text(t, "title")),
            artist = escape(text(t, "artist")),
            plays = t["plays"].as_i64().unwrap_or(0),
            comments = t["comments"].as_i64().unwrap_or(0)
        );
    }
    if list.is_empty() {
        list = "<li class=\"meta\">No tracks yet: upload the first.</li>".into();
    }
    format!(
        r#"<section><h2>Upload a track</h2>
<form method="post" action="/upload" enctype="multipart/form-data">
<input type="hidden" name="upload_id" value="{upload_id}">
<label for="title">Title</label><input type="text" id="title" name="title" required maxlength="200">
<label for="artist">Artist</label><input type="text" id="artist" name="artist" required maxlength="200">
<label for="audio">Audio file (MP3, WAV, Ogg, FLAC or M4A, up to 64 MB)</label><input type="file" id="audio" name="audio" accept="audio/*" required>
<button type="submit">Upload</button></form></section>
<section><h2>Tracks</h2><ul class="tracks" id="tracks">{list}</ul></section>"#,
        upload_id = escape(upload_id)
    )
}

pub fn track(t: &Value, comments: &[Value], comment_id: &str) -> String {
    let id = escape(text(t, "id"));
    let mut list = String::new();
    for c in comments {
        let _ = write!(list, "<li><strong>{}</strong> <span class=\"meta\">#{}</span><div>{}</div></li>", escape(text(c, "author")), c["seq"].as_i64().unwrap_or(0), escape(text(c, "body")));
    }
    if list.is_empty() {
        list = "<li class=\"meta\">No comments yet.</li>".into();
    }
    format!(
        r#"<section><h2>{title}</h2><div class="meta">{artist} · {plays} plays</div>
<audio controls preload="none" data-track="{id}" src="/tracks/{id}/audio"></audio></section>
<section><h2>Comments</h2><ol class="comments" id="comments">{list}</ol></section>
<section><h2>Add a comment</h2><form method="post" action="/tracks/{id}/comments">
<input type="hidden" name="comment_id" value="{comment_id}">
<label for="author">Your name</label><input type="text" id="author" name="author" required maxlength="200">
<label for="body">Comment</label><textarea id="body" name="body" rows="3" required maxlength="2000"></textarea>
<button type="submit">Post comment</button></form></section>"#,
        title = escape(text(t, "title")),
        artist = escape(text(t, "artist")),
        plays = t["plays"].as_i64().unwrap_or(0),
        comment_id = escape(comment_id),
    )
}

/// The admin page: what could not be stored, and the backlogs.
pub fn admin(dead_comments: &[(String, String, String)], poison_uploads: &[String], backlog: &str) -> String {
    let mut dead = String::new();
    for (id, reason, body) in dead_comments {
        let _ = write!(dead, "<li><strong>{}</strong> <span class=\"meta\">{}</span><div><code>{}</code></div></li>", escape(id), escape(reason), escape(body));
    }
    if dead.is_empty() {
        dead = "<li class=\"meta\">The dead-letter queue is empty.</li>".into();
    }
    let mut poison = String::new();
    for p in poison_uploads {
        let _ = write!(poison, "<li><code>{}</code></li>", escape(p));
    }
    if poison.is_empty() {
        poison = "<li class=\"meta\">No poison upload jobs.</li>".into();
    }
    format!(
        r#"<section><h2>Dead-lettered comments (Service Bus <code>comments/$deadletterqueue</code>)</h2><ol class="comments" id="dead-letters">{dead}</ol></section>
<section><h2>Poison upload jobs (Storage Queue <code>upload-jobs-poison</code>)</h2><ul class="tracks" id="poison">{poison}</ul></section>
<section><h2>Backlogs</h2><p>{}</p></section>"#,
        escape(backlog)
    )
}

//! `music-share count`: what the users tried (the simulator's ledger) against what the
//! database holds, per task — attempted, acknowledged to the user, stored, lost
//! (tried and not stored), lost after an acknowledgement (the worst kind),
//! duplicated — and, for the "track published" handlers, which stored uploads each
//! one heard of. Comments are also checked for order: a phone's comments on a track
//! must be numbered in the order the phone sent them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::db::Db;
use crate::handlers::HANDLERS;
use crate::mobile::{Attempt, Ledger};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub task: String,
    pub attempted: usize,
    pub acknowledged: usize,
    pub stored: usize,
    pub lost: usize,
    pub lost_after_ack: usize,
    pub duplicated: usize,
    /// Comments only: stored out of the order their phone sent them.
    pub out_of_order: usize,
    /// Handlers only: deliveries beyond the first, absorbed by the handler.
    pub redelivered: usize,
}

fn tally(task: &str, tried: &[Attempt], stored: &BTreeMap<String, usize>) -> Tally {
    let attempted: BTreeSet<&str> = tried.iter().map(|a| a.id.as_str()).collect();
    let present = attempted.iter().filter(|id| stored.contains_key(**id)).count();
    Tally {
        task: task.into(),
        attempted: attempted.len(),
        acknowledged: tried.iter().filter(|a| a.acknowledged).count(),
        stored: present,
        lost: attempted.len() - present,
        lost_after_ack: tried.iter().filter(|a| a.acknowledged && !stored.contains_key(&a.id)).count(),
        duplicated: attempted.iter().filter_map(|id| stored.get(*id)).map(|n| n.saturating_sub(1)).sum(),
        out_of_order: 0,
        redelivered: 0,
    }
}

/// The number after the last non-digit of an id (`phone3-comment12` → 12).
fn index_of(id: &str) -> Option<usize> {
    let digits: String = id.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Comments stored out of their phone's order, per (author, track).
async fn out_of_order(db: &Arc<Db>) -> anyhow::Result<usize> {
    let rows = db.rows("SELECT author, track_id, id FROM comments ORDER BY author, track_id, seq".into()).await?;
    let wrong = rows.windows(2).filter(|p| p[0][0] == p[1][0] && p[0][1] == p[1][1] && index_of(&p[0][2]) > index_of(&p[1][2])).count();
    Ok(wrong)
}

/// Every task's tally for `ledger` against the database.
pub async fn count(db: &Arc<Db>, ledger: &Ledger) -> anyhow::Result<Vec<Tally>> {
    let uploads = db.counts("SELECT upload_id, COUNT(*) FROM tracks GROUP BY upload_id".into()).await?;
    let comments = db.counts("SELECT id, COUNT(*) FROM comments GROUP BY id".into()).await?;
    let plays = db.counts("SELECT id, COUNT(*) FROM plays WHERE id IS NOT NULL GROUP BY id".into()).await?;
    let mut out = vec![tally("uploads", &ledger.uploads, &uploads), tally("comments", &ledger.comments, &comments), tally("plays", &ledger.plays, &plays)];
    out[1].out_of_order = out_of_order(db).await?;
    // A handler should hear of every upload that was stored, once.
    let stored: Vec<Attempt> = ledger.uploads.iter().filter(|a| uploads.contains_key(&a.id)).map(|a| Attempt { acknowledged: true, ..a.clone() }).collect();
    for handler in HANDLERS {
        let heard = db.counts(format!("SELECT event_id, COUNT(*) FROM deliveries WHERE handler = '{handler}' GROUP BY event_id")).await?;
        let mut t = tally(&format!("published → {handler}"), &stored, &heard);
        t.acknowledged = stored.len();
        t.redelivered = db.scalar(format!("SELECT CAST(COALESCE(SUM(times - 1), 0) AS BIGINT) FROM deliveries WHERE handler = '{handler}'")).await? as usize;
        out.push(t);
    }
    Ok(out)
}

pub fn table(tallies: &[Tally]) -> String {
    let mut out = format!(
        "{:<26} {:>9} {:>12} {:>7} {:>5} {:>14} {:>10} {:>12}\n",
        "task", "attempted", "acknowledged", "stored", "lost", "lost after ack", "duplicated", "out of order"
    );
    for t in tallies {
        out.push_str(&format!("{:<26} {:>9} {:>12} {:>7} {:>5} {:>14} {:>10} {:>12}\n", t.task, t.attempted, t.acknowledged, t.stored, t.lost, t.lost_after_ack, t.duplicated, t.out_of_order));
    }
    out
}

//! `music-share count`: what the users tried (the simulator's ledger) against what the
//! database holds, per task — attempted, acknowledged to the user, stored, lost
//! (tried and not stored), lost after an acknowledgement (the worst kind), duplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::mobile::{Attempt, Ledger};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub attempted: usize,
    pub acknowledged: usize,
    pub stored: usize,
    pub lost: usize,
    pub lost_after_ack: usize,
    pub duplicated: usize,
}

fn tally(tried: &[Attempt], stored: &BTreeMap<String, usize>) -> Tally {
    let attempted: BTreeSet<&str> = tried.iter().map(|a| a.id.as_str()).collect();
    let present = attempted.iter().filter(|id| stored.contains_key(**id)).count();
    Tally {
        attempted: attempted.len(),
        acknowledged: tried.iter().filter(|a| a.acknowledged).count(),
        stored: present,
        lost: attempted.len() - present,
        lost_after_ack: tried.iter().filter(|a| a.acknowledged && !stored.contains_key(&a.id)).count(),
        duplicated: attempted.iter().filter_map(|id| stored.get(*id)).map(|n| n.saturating_sub(1)).sum(),
    }
}

fn counts(c: &Connection, sql: &str) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// (uploads, comments) for `ledger` against the database at `db`.
pub fn count(db: &Path, ledger: &Ledger) -> anyhow::Result<(Tally, Tally)> {
    let c = Connection::open(db)?;
    let uploads = counts(&c, "SELECT upload_id, COUNT(*) FROM tracks GROUP BY upload_id")?;
    let comments = counts(&c, "SELECT id, COUNT(*) FROM comments GROUP BY id")?;
    Ok((tally(&ledger.uploads, &uploads), tally(&ledger.comments, &comments)))
}

pub fn table(uploads: &Tally, comments: &Tally) -> String {
    let mut out = format!("{:<10} {:>9} {:>12} {:>7} {:>5} {:>14} {:>10}\n", "task", "attempted", "acknowledged", "stored", "lost", "lost after ack", "duplicated");
    for (name, t) in [("uploads", uploads), ("comments", comments)] {
        out.push_str(&format!("{:<10} {:>9} {:>12} {:>7} {:>5} {:>14} {:>10}\n", name, t.attempted, t.acknowledged, t.stored, t.lost, t.lost_after_ack, t.duplicated));
    }
    out
}

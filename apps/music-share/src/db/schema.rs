//! The schema and its migrations, in each database's words (SQLite's INTEGER is
//! PostgreSQL's BIGINT here; everything else is the same). `schema_version` says how
//! many migrations have run; each runs once, in its own transaction.

use super::sql::{Conn, Dialect, Param};
use super::DbResult;

/// Each migration, in order, with `{int}` for the 64-bit integer type.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE tracks (
        id TEXT PRIMARY KEY,
        upload_id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        artist TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size_bytes {int} NOT NULL,
        media_path TEXT NOT NULL,
        created_at_ms {int} NOT NULL
    );
    CREATE TABLE comments (
        id TEXT PRIMARY KEY,
        track_id TEXT NOT NULL REFERENCES tracks(id),
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        seq {int} NOT NULL,
        created_at_ms {int} NOT NULL
    );
    CREATE INDEX comments_by_track ON comments(track_id, seq);
    CREATE TABLE plays (
        track_id TEXT NOT NULL REFERENCES tracks(id),
        at_ms {int} NOT NULL
    );
    CREATE INDEX plays_by_track ON plays(track_id, at_ms)",
    // Messaging: plays keyed by the client's id, the trending aggregator's place in
    // each partition, and the "track published" handlers' records.
    "ALTER TABLE plays ADD COLUMN id TEXT;
    CREATE UNIQUE INDEX plays_by_id ON plays(id);
    CREATE TABLE checkpoints (
        consumer_group TEXT NOT NULL,
        partition_id TEXT NOT NULL,
        sequence_number {int} NOT NULL,
        PRIMARY KEY (consumer_group, partition_id)
    );
    CREATE TABLE deliveries (
        handler TEXT NOT NULL,
        event_id TEXT NOT NULL,
        track_id TEXT NOT NULL,
        received_at_ms {int} NOT NULL,
        times {int} NOT NULL,
        PRIMARY KEY (handler, event_id)
    )",
];

/// The app's tables, for a demo that starts from nothing on a server's database.
const TABLES: &[&str] = &["deliveries", "checkpoints", "plays", "comments", "tracks", "schema_version"];

fn for_dialect(sql: &str, d: Dialect) -> String {
    sql.replace("{int}", if d == Dialect::Postgres { "BIGINT" } else { "INTEGER" })
}

pub fn migrate(c: &mut Conn) -> DbResult<()> {
    c.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    // Two processes may start on a fresh database at once (the API and the
    // workers); the write transaction makes one wait for the other's migrations.
    c.write(|c| {
        if c.dialect() == Dialect::Postgres {
            c.batch("LOCK TABLE schema_version IN EXCLUSIVE MODE")?;
        }
        let done = c.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?.map(|r| r[0].int()).unwrap_or(0);
        let dialect = c.dialect();
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            c.batch(&for_dialect(sql, dialect))?;
            c.execute("INSERT INTO schema_version (version) VALUES ($1)", &[Param::Int(i as i64 + 1)])?;
        }
        Ok(())
    })
}

/// Drops the app's tables (the demo's fresh start on PostgreSQL).
pub fn drop_all(c: &mut Conn) -> DbResult<()> {
    for t in TABLES {
        c.batch(&format!("DROP TABLE IF EXISTS {t}{}", if c.dialect() == Dialect::Postgres { " CASCADE" } else { "" }))?;
    }
    Ok(())
}

//! One connection to either database the app runs on — SQLite (a file) or
//! PostgreSQL (a URL) — and the little the queries need from it: run a statement,
//! read rows, a write transaction. Queries are written once, with `$1, $2, …`
//! placeholders (numbered in order) and SQL both databases speak; the few places
//! where they differ ask [`Conn::dialect`].

use std::path::PathBuf;
use std::time::Duration;

use super::{DbError, DbResult};

/// Which database, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
    /// A NULL in a text column.
    Null,
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(s.to_string())
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(s)
    }
}

impl From<&String> for Param {
    fn from(s: &String) -> Self {
        Param::Text(s.clone())
    }
}

impl From<i64> for Param {
    fn from(n: i64) -> Self {
        Param::Int(n)
    }
}

impl From<Option<String>> for Param {
    fn from(s: Option<String>) -> Self {
        s.map(Param::Text).unwrap_or(Param::Null)
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Null,
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Null => String::new(),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            Cell::Text(s) => s.parse().unwrap_or(0),
            Cell::Null => 0,
        }
    }
}

pub type Row = Vec<Cell>;

pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            Param::Text(s) => s.as_str().into(),
            Param::Int(n) => (*n).into(),
            Param::Null => rusqlite::types::Null.into(),
        })
    }
}

/// SQLite numbers its placeholders `?N`; `$N` would be named ones.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn pg_params(params: &[Param]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(n) => Box::new(*n),
                Param::Null => Box::new(None::<String>),
            }
        })
        .collect()
}

fn pg_cell(row: &postgres::Row, i: usize) -> DbResult<Cell> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let cell = if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?.map(|n| Cell::Int(n as i64))
    } else {
        row.try_get::<_, Option<String>>(i)?.map(Cell::Text)
    };
    Ok(cell.unwrap_or(Cell::Null))
}

fn sqlite_cell(v: rusqlite::types::ValueRef<'_>) -> Cell {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Real(r) => Cell::Int(r as i64),
        ValueRef::Null | ValueRef::Blob(_) => Cell::Null,
    }
}

impl Conn {
    pub fn open(target: &Target) -> DbResult<Conn> {
        match target {
            Target::Sqlite(path) => {
                let c = rusqlite::Connection::open(path)?;
                // WAL lets readers run beside the writer; the busy timeout makes
                // writers queue instead of failing at once.
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                c.busy_timeout(Duration::from_secs(5))?;
                Ok(Conn::Sqlite(c))
            }
            Target::Postgres(url) => Ok(Conn::Postgres(Box::new(postgres::Client::connect(url, postgres::NoTls)?))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Param]) -> DbResult<u64> {
        match self {
            Conn::Sqlite(c) => Ok(c.prepare_cached(&sqlite_sql(sql))?.execute(rusqlite::params_from_iter(params.iter()))? as u64),
            Conn::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
                Ok(c.execute(sql, &refs)?)
            }
        }
    }

    pub fn query(&mut self, sql: &str, params: &[Param]) -> DbResult<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&sqlite_sql(sql))?;
                let n = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| (0..n).map(|i| r.get_ref(i).map(sqlite_cell)).collect::<rusqlite::Result<Row>>())?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Conn::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
                let rows = c.query(sql, &refs)?;
                rows.iter().map(|r| (0..r.len()).map(|i| pg_cell(r, i)).collect()).collect()
            }
        }
    }

    pub fn query_one(&mut self, sql: &str, params: &[Param]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn batch(&mut self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => Ok(c.batch_execute(sql)?),
        }
    }

    /// Runs `f` in a write transaction, committed if it succeeds and rolled back if
    /// not. SQLite's is `IMMEDIATE`: a transaction that reads and then writes must
    /// hold the write lock from the start, or a concurrent writer makes it fail
    /// instead of wait.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Conn) -> DbResult<T>) -> DbResult<T> {
        self.batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        })?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e.to_string())
    }
}

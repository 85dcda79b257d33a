//! Connecting a service to its SeaORM store.
//!
//! One function opens the pool for any supported backend (PostgreSQL,
//! MariaDB/MySQL, SQLite) with the settings each one needs, and hooks a
//! statement counter into SeaORM so every executed statement shows up in
//! `/metrics` and can be counted by tests and benchmarks (to prove that a
//! batch costs one query).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, DatabaseBackend, DatabaseConnection, DbErr};

use crate::settings::DatabaseSettings;
use shopgraph_core::health::ReadinessCheck;

/// Counts statements executed through one connection pool, and among them
/// those that write, so a test can prove that a batch costs one query or
/// that an idle service writes nothing.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter {
    all: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl StatementCounter {
    /// Statements executed so far.
    pub fn get(&self) -> u64 {
        self.all.load(Ordering::Relaxed)
    }

    /// Statements executed so far that change data or schema (`INSERT`,
    /// `UPDATE`, `DELETE`, `REPLACE`, `CREATE`, `ALTER`, `DROP`), whether
    /// or not they matched a row.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Counts one executed statement of text `sql`.
    fn record(&self, sql: &str) {
        self.all.fetch_add(1, Ordering::Relaxed);
        if is_write(sql) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether `sql` is a statement that writes (by its first keyword; a
/// leading `WITH` is read up to the statement it introduces).
fn is_write(sql: &str) -> bool {
    const WRITES: [&str; 7] = [
        "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP",
    ];
    let mut words = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return false;
    };
    if first.eq_ignore_ascii_case("WITH") {
        return words.any(|w| WRITES.iter().any(|k| w.eq_ignore_ascii_case(k)));
    }
    WRITES.iter().any(|k| first.eq_ignore_ascii_case(k))
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    /// The SQLite file's directory could not be created.
    #[error("cannot create the directory for the SQLite file {path}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The database refused or could not be reached.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
}

/// An open pool plus its statement counter.
#[derive(Debug, Clone)]
pub struct Database {
    /// The SeaORM connection pool.
    pub conn: DatabaseConnection,
    /// Statements executed through `conn`.
    pub statements: StatementCounter,
}

impl Database {
    /// Opens a pool for `service` as `settings` describe.
    pub async fn connect(
        settings: &DatabaseSettings,
        service: &'static str,
    ) -> Result<Self, DbOpenError> {
        let url = settings.url.as_str();
        if let Some(path) = sqlite_file_path(url)
            && let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| DbOpenError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }

        let mut options = ConnectOptions::new(url);
        options
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            if is_sqlite_memory(url) {
                // Each connection to `:memory:` is a separate database: keep one.
                options.max_connections(1);
            } else {
                options.map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                });
            }
        }

        let mut conn = sea_orm::Database::connect(options)
            .await
            .map_err(|source| DbOpenError::Connect {
                url: redact_url(url),
                source,
            })?;
        let statements = StatementCounter::default();
        let counter = statements.clone();
        conn.set_metric_callback(move |info| {
            counter.record(&info.statement.sql);
            crate::metrics::record_db_statement(service, info.elapsed, info.failed);
        });
        Ok(Self { conn, statements })
    }

    /// Which SQL dialect the pool speaks.
    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(self) {
        if let Err(err) = self.conn.close().await {
            tracing::warn!(%err, "error while closing the database pool");
        }
    }
}

impl ReadinessCheck for Database {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.conn.ping().await.map_err(|err| err.to_string()) })
    }
}

fn sqlite_file_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !is_sqlite_memory(url)).then_some(path)
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Removes the password from a database URL before it is logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://shop:s3cret@db:5432/product"),
            "postgres://shop:***@db:5432/product"
        );
        assert_eq!(
            redact_url("sqlite://data/product.db"),
            "sqlite://data/product.db"
        );
    }

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(
            sqlite_file_path("sqlite://data/p.db?mode=rwc"),
            Some("data/p.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://x/y"), None);
    }

    #[tokio::test]
    async fn statements_are_counted() {
        let settings = DatabaseSettings {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        };
        let db = Database::connect(&settings, "test").await.unwrap();
        let before = db.statements.get();
        let select = sea_orm::Statement::from_string(db.backend(), "SELECT 1");
        db.conn.query_one_raw(select).await.unwrap();
        assert_eq!(db.statements.get(), before + 1);
        assert!(db.check().await.is_ok());
        let writes = db.statements.writes();
        db.conn
            .execute_unprepared("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap();
        let insert = sea_orm::Statement::from_string(db.backend(), "INSERT INTO t VALUES (1)");
        db.conn.execute_raw(insert).await.unwrap();
        let select = sea_orm::Statement::from_string(db.backend(), "SELECT n FROM t");
        db.conn.query_one_raw(select).await.unwrap();
        assert_eq!(
            db.statements.writes(),
            writes + 1,
            "the INSERT, not the SELECT"
        );
    }

    #[test]
    fn writes_are_told_from_reads() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "  update t SET n = 2",
            "DELETE FROM t",
            "WITH x AS (SELECT 1) UPDATE t SET n = 3",
            "CREATE TABLE u (n INT)",
        ] {
            assert!(is_write(sql), "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "select n from updates",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "BEGIN",
            "",
        ] {
            assert!(!is_write(sql), "{sql}");
        }
    }
}

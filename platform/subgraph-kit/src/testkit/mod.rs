//! Throw-away stores for tests and benchmarks (feature `testkit`).
//!
//! [`TempDatabase`] creates an empty database on a real server (a
//! `shopgraph_test_<uuid>` database on PostgreSQL or MariaDB) or a fresh
//! SQLite file, and removes it when dropped, even when the test panics.
//! Server addresses come from `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TEST_MARIADB_URL`
//! (default `mysql://root@127.0.0.1:3306/test`).

pub mod load;

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};

/// Which server a temporary database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempBackend {
    /// A SQLite file in the temp directory.
    Sqlite,
    /// A database on the PostgreSQL server at `TEST_POSTGRES_URL`.
    Postgres,
    /// A database on the MariaDB server at `TEST_MARIADB_URL`.
    MariaDb,
}

/// An empty database that exists as long as this value.
pub struct TempDatabase {
    /// SeaORM URL of the database.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    DropDatabase {
        admin_url: String,
        name: String,
        force: &'static str,
    },
    RemoveFile(PathBuf),
    Done,
}

/// The MariaDB server tests use.
pub fn mariadb_admin_url() -> String {
    std::env::var("TEST_MARIADB_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// The PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TempDatabase {
    /// Creates an empty database; panics with a hint if the server is down.
    pub async fn create(backend: TempBackend) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            TempBackend::Postgres => {
                // Byte-order collation: NAME ordering is the same on every machine.
                let create = "TEMPLATE template0 LC_COLLATE 'C'";
                Self::on_server(postgres_admin_url(), &unique, create, " WITH (FORCE)").await
            }
            TempBackend::MariaDb => {
                let create = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
                Self::on_server(mariadb_admin_url(), &unique, create, "").await
            }
            TempBackend::Sqlite => {
                let path = std::env::temp_dir().join(format!("shopgraph-test-{unique}.db"));
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: Cleanup::RemoveFile(path),
                }
            }
        }
    }

    async fn on_server(
        admin_url: String,
        unique: &str,
        create_options: &str,
        force: &'static str,
    ) -> Self {
        let name = format!("shopgraph_test_{unique}");
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
            panic!(
                "the database server must be running at {admin_url} (tests/run.sh starts it): {err}"
            )
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} {create_options}"))
            .await
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            cleanup: Cleanup::DropDatabase {
                admin_url,
                name,
                force,
            },
        }
    }

    /// Removes the database now (e.g. to watch readiness fail); idempotent.
    pub fn destroy(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::DropDatabase {
                admin_url,
                name,
                force,
            } => {
                // Drop may run outside a runtime or inside one that is
                // shutting down: use a private runtime on a plain thread.
                let db_name = name.clone();
                let result = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let admin = Database::connect(&admin_url)
                            .await
                            .map_err(std::io::Error::other)?;
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {db_name}{force}"
                            ))
                            .await
                            .map_err(std::io::Error::other)?;
                        admin.close().await.map_err(std::io::Error::other)
                    })
                })
                .join();
                if !matches!(result, Ok(Ok(()))) {
                    eprintln!("warning: could not drop test database {name}: {result:?}");
                }
            }
            Cleanup::RemoveFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Done => {}
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        self.destroy();
    }
}

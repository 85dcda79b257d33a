//! The servers under the shop, private to one chaos run.
//!
//! The run restarts its databases on purpose, so it cannot use the
//! machine's shared PostgreSQL and MariaDB (other test binaries may be
//! using them): it makes a PostgreSQL cluster (`initdb`) and a MariaDB
//! data directory (`mariadb-install-db`) of its own in the run's directory,
//! on free ports, from the same Debian packages `tests/run.sh` installs.
//! The broker is the persistent test broker of `tests/kafka-broker.sh`
//! (its data outlives a `kill -9`); Redis is the machine's, used under key
//! prefixes of this run only and cleaned up afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::process::{Child, Command};

use crate::free_port;

pub use crate::broker::Broker;

/// The repository root (for `tests/kafka-broker.sh` and the supergraph).
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `command` to completion, failing the run with its output if it
/// does not succeed.
async fn run(what: &str, command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|err| panic!("{what}: cannot start: {err}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether this process runs as root (the database servers refuse to, or
/// must be told to).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == 0
    })
}

/// Connects to `url`, retrying until `within` has passed.
pub async fn connect(url: &str, within: Duration) -> DatabaseConnection {
    let deadline = Instant::now() + within;
    loop {
        match Database::connect(url).await {
            Ok(db) if db.execute_unprepared("SELECT 1").await.is_ok() => return db,
            Ok(_) => {}
            Err(err) if Instant::now() >= deadline => panic!("{url} does not answer: {err}"),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "{url} does not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PostgreSQL cluster of this run's own (product, basket and
/// notification stores). Stopped, with its data, on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// `initdb` in `dir`, then starts the server on a free port.
    pub async fn start(dir: &Path) -> Self {
        let bin = postgres_bin_dir();
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home).expect("the PostgreSQL directory");
        if is_root() {
            // PostgreSQL refuses to run as root: its files belong to the
            // `postgres` user the Debian package creates.
            run(
                "chown postgres",
                Command::new("chown").arg("postgres").arg(&home),
            )
            .await;
        }
        let server = Self {
            data: home.join("data"),
            log: home.join("server.log"),
            port: free_port(),
            bin,
        };
        run(
            "initdb",
            Command::from(server.as_owner(&server.bin.join("initdb")))
                .arg("-D")
                .arg(&server.data)
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]),
        )
        .await;
        server.start_server().await;
        server
    }

    /// A command that runs `program` as the cluster's owner.
    fn as_owner(&self, program: &Path) -> std::process::Command {
        if is_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    fn pg_ctl(&self) -> std::process::Command {
        let mut command = self.as_owner(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(&self.data);
        command
    }

    async fn start_server(&self) {
        let socket_dir = self
            .data
            .parent()
            .unwrap_or(&self.data)
            .display()
            .to_string();
        run(
            "pg_ctl start",
            Command::from(self.pg_ctl())
                .arg("-l")
                .arg(&self.log)
                .arg("-o")
                .arg(format!(
                    "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 \
                     -c max_connections=300 -c fsync=off",
                    self.port
                ))
                .args(["-w", "-t", "60", "start"]),
        )
        .await;
    }

    /// `postgres://` URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub async fn create_database(&self, name: &str) {
        let admin = connect(&self.url("postgres"), Duration::from_secs(30)).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name}: {err}"));
    }

    /// Stops the server at once, as a crash would (`-m immediate`: no
    /// checkpoint, every connection cut; the next start replays the WAL),
    /// waits `down`, and starts it again on the same port and data.
    pub async fn crash_and_restart(&self, down: Duration) {
        run(
            "pg_ctl stop -m immediate",
            Command::from(self.pg_ctl()).args(["-m", "immediate", "-w", "stop"]),
        )
        .await;
        tokio::time::sleep(down).await;
        self.start_server().await;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest installed PostgreSQL's programs (`initdb`, `pg_ctl`):
/// Debian keeps them under `/usr/lib/postgresql/<major>/bin`.
fn postgres_bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (tests/run.sh installs it)");
    versions
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// A MariaDB server of this run's own (the payment store). Killed, with
/// its data, on drop.
pub struct MariaDb {
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    server: Option<Child>,
}

impl MariaDb {
    /// `mariadb-install-db` in `dir`, then starts the server on a free port.
    pub async fn start(dir: &Path) -> Self {
        let home = dir.join("mariadb");
        std::fs::create_dir_all(&home).expect("the MariaDB directory");
        let data = home.join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg("--user=root");
        }
        run("mariadb-install-db", &mut install).await;
        let mut server = Self {
            log: home.join("server.log"),
            data,
            port: free_port(),
            server: None,
        };
        server.start_server().await;
        server
    }

    async fn start_server(&mut self) {
        let home = self.data.parent().unwrap_or(&self.data).to_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the MariaDB log");
        let mut command = Command::new("/usr/sbin/mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", home.join("mariadb.sock").display()))
            .arg(format!("--pid-file={}", home.join("mariadb.pid").display()))
            .args([
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=300",
            ])
            .stdout(Stdio::from(log.try_clone().expect("the MariaDB log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if is_root() {
            command.arg("--user=root");
        }
        self.server = Some(command.spawn().expect("mariadbd starts"));
        connect(&self.url("mysql"), Duration::from_secs(60)).await;
    }

    /// `mysql://` URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub async fn create_database(&self, name: &str) {
        let admin = connect(&self.url("mysql"), Duration::from_secs(30)).await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name}: {err}"));
    }

    /// `kill -9` of the server (InnoDB recovers on the next start), waits
    /// `down`, and starts it again on the same port and data.
    pub async fn crash_and_restart(&mut self, down: Duration) {
        if let Some(mut server) = self.server.take() {
            server.kill().await.expect("kill mariadbd");
        }
        tokio::time::sleep(down).await;
        self.start_server().await;
    }
}

/// This run's key prefixes on the machine's Redis (`TEST_REDIS_URL`,
/// default the local server), deleted on drop.
pub struct RedisKeys {
    pub url: String,
    pub prefix: String,
}

impl RedisKeys {
    pub fn new(run_id: &str) -> Self {
        Self {
            url: std::env::var("TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            prefix: format!("shopgraph-chaos-{run_id}"),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let script = format!(
            "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r redis-cli -u '{url}' del >/dev/null",
            url = self.url,
            prefix = self.prefix
        );
        let _ = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

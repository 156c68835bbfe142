//! A throwaway Postgres for integration tests.
//!
//! [`fresh_database`] hands each test a brand-new, empty database with a
//! random name, so tests never see each other's rows and can run
//! concurrently. All databases of one test process live on one shared server:
//!
//! - If `DATABASE_URL` is set, that server is used: the URL must let us
//!   `CREATE DATABASE` (it is the admin connection), and each test database's
//!   URL is the same URL with the database name replaced. Call
//!   [`TestDatabase::drop_database`] to clean up there, as such a server
//!   outlives the tests.
//! - Otherwise one cluster is started lazily per test process from the local
//!   Postgres binaries (`PATH`, then the highest `/usr/lib/postgresql/*/bin`),
//!   in a temporary directory, on a free loopback port, with durability off
//!   for speed. A watchdog shell stops it and deletes its directory once the
//!   test process has exited, however it exits.
//!
//! If neither is available, the first call panics with instructions: tests
//! needing Postgres are never skipped silently.
//!
//! **Citus mode** (`STREAM_LIMIT_TEST_CITUS=<coordinator URL>`, set by
//! `scripts/test-citus`): each test gets a fresh *schema* in the
//! coordinator's database instead (a Citus cluster is set up per database),
//! migrated and then distributed with `ecosystem/citus/distribute.sql`, the
//! DDL users run; its URL selects the schema (`options=-c search_path=…`).
//!
//! Connections use no TLS ([`tokio_postgres::NoTls`]).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// How to get a server, appended to every "no server" panic.
const HOW_TO_GET_ONE: &str = "install the postgresql package (apt-get install -y postgresql) \
     or set DATABASE_URL=postgres://user:pass@host:port/db";

/// How long a freshly started cluster may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Debian/Ubuntu install versioned Postgres binaries (`<version>/bin`).
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";

/// The OS user that owns the cluster when we run as root (initdb refuses root).
const POSTGRES_OS_USER: &str = "postgres";

/// A brand-new, empty database owned by one test.
///
/// Dropping it leaves the database in place: on the throwaway cluster it
/// vanishes with the cluster when the test process exits. On an external
/// `DATABASE_URL` server, call [`TestDatabase::drop_database`] at the end of
/// the test to avoid piling up `sl_test_*` databases.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Connection URL for this database, e.g.
    /// `postgres://postgres@127.0.0.1:5433/sl_test_0123…`; usable as the `url`
    /// of a tokio-postgres or deadpool-postgres config.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name (`sl_test_<uuid without dashes>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, terminating any connection still open to it
    /// (`WITH (FORCE)`, Postgres 13+).
    ///
    /// Needed only on an external `DATABASE_URL` server; the throwaway cluster
    /// is deleted whole when the test process exits.
    ///
    /// # Panics
    ///
    /// If the admin connection or the `DROP DATABASE` fails.
    pub async fn drop_database(self) {
        if citus() {
            let admin = connect(&self.admin_url)
                .await
                .expect("connect to the coordinator");
            admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .await
                .expect("drop the test schema");
            return;
        }
        let admin = connect(&self.admin_url).await.unwrap_or_else(|e| {
            panic!("connecting to {} failed: {}", self.admin_url, describe(&e))
        });
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("DROP DATABASE {} failed: {}", self.name, describe(&e)));
    }
}

/// Creates a brand-new, empty database with a random name on the shared
/// server (starting the server on first use) and returns it.
///
/// Safe to call concurrently from many tests: each call uses its own admin
/// connection, and databases are copied from `template0`, which nobody
/// connects to, so concurrent `CREATE DATABASE`s never fail with "source
/// database is being accessed by other users" (which `template1` can cause).
///
/// Must be called inside a Tokio runtime (e.g. `#[tokio::test]`).
///
/// # Panics
///
/// If no server can be had (see the module docs) or the database cannot be
/// created.
pub async fn fresh_database() -> TestDatabase {
    if let Some(coordinator) = citus_url() {
        return fresh_citus_schema(&coordinator).await;
    }
    let admin_url = server_url();
    let name = format!("sl_test_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {admin_url} failed: {}", describe(&e)));
    // Explicit encoding and C locale: template0 allows them, and they keep
    // sorting and text handling identical on every server the tests run on.
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
             LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {}", describe(&e)));
    TestDatabase {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

/// The Citus coordinator the tests run against, if any
/// (`STREAM_LIMIT_TEST_CITUS`).
fn citus_url() -> Option<String> {
    std::env::var("STREAM_LIMIT_TEST_CITUS")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Whether the tests run against a Citus coordinator: stores are then
/// configured with `citus = true`, as the service is there.
pub fn citus() -> bool {
    citus_url().is_some()
}

/// The DDL that distributes a migrated schema on Citus, as users run it.
pub const CITUS_DDL: &str = include_str!("../../ecosystem/citus/distribute.sql");

/// A fresh schema on the Citus coordinator, migrated and distributed.
async fn fresh_citus_schema(coordinator: &str) -> TestDatabase {
    let name = format!("sl_test_{}", uuid::Uuid::new_v4().simple());
    let separator = if coordinator.contains('?') { '&' } else { '?' };
    // The stat counters let tests/tests/citus_shards.rs count multi-shard
    // executions (a superuser setting: scripts/test-citus needs one).
    let url = format!(
        "{coordinator}{separator}options=-c%20search_path%3D{name}%20-c%20citus.enable_stat_counters%3Don"
    );
    let admin = connect(coordinator)
        .await
        .unwrap_or_else(|e| panic!("connecting to {coordinator} failed: {}", describe(&e)));
    admin
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE SCHEMA {name} failed: {}", describe(&e)));
    let store = stream_limit_core::store::postgres::PostgresStore::connect(&{
        let mut config = stream_limit_core::store::postgres::PostgresConfig::new(url.clone());
        config.pool_size = 1;
        config.batch_workers = 1;
        config.citus = true;
        config
    })
    .expect("a valid coordinator URL");
    store
        .migrate()
        .await
        .expect("the migrations apply on Citus");
    drop(store);
    let client = connect(&url).await.expect("connect to the test schema");
    client
        .batch_execute(CITUS_DDL)
        .await
        .unwrap_or_else(|e| panic!("distributing {name} failed: {}", describe(&e)));
    TestDatabase {
        name,
        url,
        admin_url: coordinator.to_owned(),
    }
}

/// Admin URL of the shared server, starting it on first use.
///
/// For the throwaway cluster this is `postgres://postgres@127.0.0.1:<port>/postgres`
/// (superuser, trust auth); with `DATABASE_URL` set it is that URL unchanged.
///
/// # Panics
///
/// If no server can be had; every later call panics with the same message.
pub fn server_url() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    // The outcome is cached either way so that a failed start is reported
    // once per test rather than retried (slowly) by every test.
    match SERVER.get_or_init(choose_server) {
        Ok(url) => url.clone(),
        Err(why) => panic!("no Postgres server for tests: {why}.\nTo get one: {HOW_TO_GET_ONE}"),
    }
}

/// Locates a Postgres binary such as `initdb`, `pg_ctl` or `pgbench`: first on
/// `PATH`, then under the highest-versioned `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin(name: &str) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(versioned_bin_dirs())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `/usr/lib/postgresql/<version>/bin` directories, highest version first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(VERSIONED_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            // "15" or "9.6": compare numerically, so 10 sorts above 9.6.
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// `DATABASE_URL` if set, else a freshly started throwaway cluster.
fn choose_server() -> Result<String, String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            if !url.contains("://") {
                return Err(format!(
                    "DATABASE_URL must be a URL like postgres://user:pass@host:port/db, got {url:?}"
                ));
            }
            Ok(url)
        }
        _ => start_cluster(),
    }
}

/// The binaries of one Postgres installation.
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    pg_ctl: PathBuf,
    pg_basebackup: PathBuf,
}

impl Binaries {
    /// Finds `initdb`, then takes `postgres` and `pg_ctl` from the same
    /// directory (following symlinks), so the three share one version.
    fn find() -> Result<Self, String> {
        let initdb = postgres_bin("initdb")
            .ok_or_else(|| format!("initdb not found on PATH nor under {VERSIONED_ROOT}/*/bin"))?;
        let dir = fs::canonicalize(&initdb)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        let sibling = |name: &str| {
            dir.as_ref()
                .map(|dir| dir.join(name))
                .filter(|path| path.is_file())
                .or_else(|| postgres_bin(name))
                .ok_or_else(|| format!("{name} not found next to {}", initdb.display()))
        };
        Ok(Self {
            postgres: sibling("postgres")?,
            pg_ctl: sibling("pg_ctl")?,
            pg_basebackup: sibling("pg_basebackup")?,
            initdb,
        })
    }
}

/// Starts the per-process throwaway cluster and waits until it accepts
/// connections; returns its admin URL.
fn start_cluster() -> Result<String, String> {
    let cluster = start_custom_cluster(&ClusterSetup::default())?;
    Ok(format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        cluster.port
    ))
}

/// What a cluster of its own has that the shared one does not.
#[derive(Debug, Default)]
pub struct ClusterSetup<'a> {
    /// Files written into the data directory after initdb (for example
    /// `server.crt`, `server.key`, `pg_hba.conf`), readable by the server only.
    pub files: &'a [(&'a str, &'a [u8])],
    /// Server settings, as `name=value` (passed as `-c name=value`).
    pub settings: &'a [&'a str],
    /// Start as a streaming standby of this cluster (a `pg_basebackup -R` of
    /// it) instead of a new `initdb`.
    pub standby_of: Option<&'a CustomCluster>,
}

/// A running cluster of a test's own, stopped and deleted (like the shared
/// one) once the test process exits.
#[derive(Debug, Clone)]
pub struct CustomCluster {
    /// Its loopback TCP port.
    pub port: u16,
    /// The directory of its Unix socket (`local` connections, which the
    /// default `pg_hba.conf` trusts).
    pub socket_dir: PathBuf,
    pg_ctl: PathBuf,
    as_root: bool,
}

impl CustomCluster {
    /// `pg_ctl stop -m immediate`: the server dies as in a crash, without a
    /// shutdown checkpoint.
    pub fn kill(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "immediate"])
    }

    /// The postmaster's process id (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Result<u32, String> {
        let path = self.socket_dir.join("data").join("postmaster.pid");
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("no pid in {}", path.display()))
    }

    /// `pg_ctl promote`, waiting until the standby accepts writes.
    pub fn promote(&self) -> Result<(), String> {
        self.pg_ctl(&["promote", "-w"])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        run(as_cluster_owner(&self.pg_ctl, self.as_root)
            .arg("-D")
            .arg(self.socket_dir.join("data"))
            .args(args))
    }

    /// Key/value settings for the superuser over the Unix socket.
    pub fn socket_settings(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        )
    }
}

/// Starts a cluster with `setup` from the local Postgres binaries and waits
/// until it accepts connections on its Unix socket.
pub fn start_custom_cluster(setup: &ClusterSetup<'_>) -> Result<CustomCluster, String> {
    let bins = Binaries::find()?;
    let as_root = running_as_root();
    let base = tempfile::Builder::new()
        .prefix("sl-pg-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory failed: {e}"))?
        // Kept on purpose: the watchdog deletes it after the test process exits.
        .keep();
    let result = init_and_spawn(&bins, &base, as_root, setup);
    if result.is_err() {
        // The watchdog never started, so nobody else will clean up.
        let _ = fs::remove_dir_all(&base);
    }
    let cluster = CustomCluster {
        port: result?,
        socket_dir: base.clone(),
        pg_ctl: bins.pg_ctl.clone(),
        as_root,
    };
    wait_until_ready(&cluster.socket_settings(), &base)?;
    Ok(cluster)
}

/// Makes `base/data` (initdb, or a base backup) and spawns the watchdog that runs the server;
/// returns the server's port.
fn init_and_spawn(
    bins: &Binaries,
    base: &Path,
    as_root: bool,
    setup: &ClusterSetup<'_>,
) -> Result<u16, String> {
    let data = base.join("data");
    if as_root {
        // initdb and postgres refuse to run as root: the cluster belongs to
        // the postgres OS user, which needs to own the directory.
        run(Command::new("chown")
            .args(["-R", &format!("{POSTGRES_OS_USER}:{POSTGRES_OS_USER}")])
            .arg(base))?;
    }
    if let Some(primary) = setup.standby_of {
        // -R: standby.signal and primary_conninfo, so it starts streaming.
        run(as_cluster_owner(&bins.pg_basebackup, as_root)
            .arg("-D")
            .arg(&data)
            .arg("-h")
            .arg(&primary.socket_dir)
            .args([
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
            ])
            .current_dir(base))?;
    } else {
        initdb(bins, &data, base, as_root)?;
    }
    for (name, contents) in setup.files {
        let path = data.join(name);
        fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))?;
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if as_root {
            run(Command::new("chown")
                .arg(format!("{POSTGRES_OS_USER}:{POSTGRES_OS_USER}"))
                .arg(&path))?;
        }
    }
    let extra: Vec<String> = setup.settings.iter().map(|s| format!("-c {s}")).collect();

    let port = free_port()?;
    // The watchdog runs postgres in the background, polls for the test
    // process, then stops postgres and deletes the directory. Values are
    // passed as environment variables so paths need no shell quoting.
    // `exited` records an early server death so startup fails fast; `wait`
    // lets that subshell finish before the directory is removed.
    const WATCHDOG: &str = r#"
( $AS "$PG_POSTGRES" -D "$PG_DATA" -p "$PG_PORT" -k "$PG_BASE" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB $PG_EXTRA \
    >"$PG_BASE/postgres.log" 2>&1
  echo $? >"$PG_BASE/exited" ) &
while kill -0 "$TEST_PID" 2>/dev/null; do sleep 0.5; done
$AS "$PG_CTL" -D "$PG_DATA" stop -m immediate >/dev/null 2>&1
wait
rm -rf "$PG_BASE"
"#;
    let run_as = if as_root {
        format!("runuser -u {POSTGRES_OS_USER} --")
    } else {
        String::new()
    };
    let mut watchdog = Command::new("sh");
    watchdog
        .args(["-c", WATCHDOG])
        .env("AS", run_as)
        .env("PG_POSTGRES", &bins.postgres)
        .env("PG_CTL", &bins.pg_ctl)
        .env("PG_DATA", &data)
        .env("PG_BASE", base)
        .env("PG_PORT", port.to_string())
        // Split into words by the shell: settings hold no spaces.
        .env("PG_EXTRA", extra.join(" "))
        .env("TEST_PID", std::process::id().to_string())
        .current_dir(base)
        // Nothing of ours to hold open after we exit.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Own process group: a Ctrl-C aimed at the test run must not kill the
    // watchdog before it has cleaned up.
    std::os::unix::process::CommandExt::process_group(&mut watchdog, 0);
    // Spawned and forgotten: dropping a Child neither kills nor waits for it.
    watchdog
        .spawn()
        .map_err(|e| format!("starting the watchdog shell failed: {e}"))?;
    Ok(port)
}

/// A new cluster in `data`, owned by the cluster's user.
fn initdb(bins: &Binaries, data: &Path, base: &Path, as_root: bool) -> Result<(), String> {
    run(as_cluster_owner(&bins.initdb, as_root)
        .arg("-D")
        .arg(data)
        // Locale C: independent of the host's installed locales.
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir(base))
}

/// A command for `program` run as the cluster's owner: through
/// `runuser -u postgres --` when we are root, directly otherwise.
fn as_cluster_owner(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", POSTGRES_OS_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `command` to completion, turning failure into an error with its output.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("running {command:?} failed: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Whether this process runs as root, from `id -u` (no libc, no unsafe).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

/// A loopback port that was free a moment ago (bound, read, released).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free port failed: {e}"))
}

/// Polls until `SELECT 1` succeeds on `url`, the server dies, or
/// [`STARTUP_TIMEOUT`] passes.
///
/// Runs on its own thread with its own runtime, because it is reached from
/// synchronous code that may itself be running inside some Tokio runtime.
fn wait_until_ready(url: &str, base: &Path) -> Result<(), String> {
    let url = url.to_owned();
    let base = base.to_owned();
    let poll = move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building a Tokio runtime failed: {e}"))?;
        runtime.block_on(async {
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            loop {
                let error = match connect(&url).await {
                    Ok(client) => match client.simple_query("SELECT 1").await {
                        Ok(_) => return Ok(()),
                        Err(e) => describe(&e),
                    },
                    Err(e) => describe(&e),
                };
                let log = || fs::read_to_string(base.join("postgres.log")).unwrap_or_default();
                if base.join("exited").exists() {
                    return Err(format!(
                        "postgres exited during startup; its log:\n{}",
                        log()
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "postgres at {url} did not accept connections within {} s \
                         (last error: {error}); its log:\n{}",
                        STARTUP_TIMEOUT.as_secs(),
                        log()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    std::thread::spawn(poll)
        .join()
        .map_err(|_| "the startup poller panicked".to_owned())?
}

/// Connects without TLS and drives the connection on a spawned task, which
/// ends by itself once the returned client is dropped.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // An error here means the server went away; the client reports it
        // on its next query, so there is nothing more to do with it.
        let _ = connection.await;
    });
    Ok(client)
}

/// The error with its causes, e.g. "error connecting to server: Connection
/// refused"; tokio-postgres's `Display` alone can be just "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// `url` with its database name (the path) replaced by `database`, keeping
/// scheme, credentials, host, port and query parameters.
fn with_database(url: &str, database: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{}{authority}/{database}{query}", &url[..after_scheme])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app", "x"),
            "postgres://u:p@h:5432/x"
        );
    }

    #[test]
    fn adds_a_missing_database_name() {
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u@h/", "x"), "postgres://u@h/x");
    }

    #[test]
    fn keeps_query_parameters() {
        assert_eq!(
            with_database("postgresql://u@h:1/app?sslmode=disable", "x"),
            "postgresql://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}

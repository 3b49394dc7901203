//! Database configuration: which database a domain uses, and how to connect to it.
//!
//! # Database URLs
//!
//! | URL | Adapter |
//! | --- | --- |
//! | `memory` | [`MemoryStorage`]: nothing survives the process (the default) |
//! | `sqlite://fidelis.db`, `sqlite:///abs/path.db` | [`SqliteStorage`](crate::store::sqlite::SqliteStorage): an embedded file, created if missing |
//! | `sqlite::memory:` | SQLite in memory, one connection, gone with the process |
//! | `postgres://user:password@host:5432/db`, `postgresql://…` | [`PostgresStorage`](crate::store::postgres::PostgresStorage) |
//!
//! A SQLite URL without a path (`sqlite://`, `sqlite:`) is a configuration error rather than
//! a temporary database that vanishes. PostgreSQL URLs take the usual parameters (`sslmode`,
//! `application_name`, and `options[search_path]=my_schema` to keep Fidelis' tables in a
//! schema of their own); percent-encode `/`, `?`, `#` and `@` in a password.
//!
//! # Where the URL comes from
//!
//! The first of these that is set wins:
//!
//! 1. the builder: `Domain::builder("fidelis").database("sqlite://fidelis.db")`;
//! 2. the environment variable `FIDELIS_DATABASE_URL`;
//! 3. `fidelis.toml` in the current directory:
//!    ```toml
//!    [database]
//!    url = "postgres://fidelis@localhost/fidelis"
//!    pool_size = 10                 # optional
//!    connect_timeout_secs = 10      # optional
//!    acquire_timeout_secs = 30      # optional
//!    ```
//! 4. `memory`.
//!
//! # Processing mode
//!
//! [`Processing::Sync`] (the default) runs projectors in the commit and event handlers before
//! `process` returns; [`Processing::Async`] commits the events and leaves both to the engine
//! (`domain.engine()`). The first of these that is set wins: the builder's
//! [`processing`](crate::DomainBuilder::processing), the environment variable
//! `FIDELIS_PROCESSING` (`sync` or `async`), `fidelis.toml`'s
//! ```toml
//! [processing]
//! mode = "async"
//! ```
//! and `sync`.
//!
//! # Snapshots
//!
//! An event-sourced aggregate gets a snapshot once a commit brings the events since its
//! latest snapshot to the threshold (default [`DEFAULT_SNAPSHOT_THRESHOLD`], 100; `0` turns
//! automatic snapshots off). The first of these that is set wins: the aggregate's own
//! `#[aggregate(event_sourced, snapshot_threshold = N)]`, the builder's
//! [`snapshot_threshold`](crate::DomainBuilder::snapshot_threshold), `fidelis.toml`'s
//! ```toml
//! [snapshots]
//! threshold = 500
//! ```
//! and the default.
//!
//! The command log (every processed command, recorded with its events) is on unless the
//! builder's [`record_commands(false)`](crate::DomainBuilder::record_commands) or
//! `fidelis.toml`'s `[processing] record_commands = false` turns it off.
//!
//! # Broker
//!
//! With a broker, the events of `#[event(.., published)]` types and fact events are written
//! to the outbox with the events and relayed to it by the engine (see
//! [`crate::broker`]). The first of these that is set wins: the builder's
//! [`broker`](crate::DomainBuilder::broker) (or
//! [`broker_adapter`](crate::DomainBuilder::broker_adapter)), the environment variable
//! `FIDELIS_BROKER_URL`, `fidelis.toml`'s
//! ```toml
//! [broker]
//! url = "redis://127.0.0.1:6379"
//! ```
//! and no broker (nothing is written to the outbox).
//!
//! Pool settings given to the builder ([`DomainBuilder::pool_size`](crate::DomainBuilder::pool_size),
//! [`connect_timeout`](crate::DomainBuilder::connect_timeout),
//! [`acquire_timeout`](crate::DomainBuilder::acquire_timeout)) win over `fidelis.toml`, which
//! wins over the defaults of [`PoolOptions`] (the same for every URL).
//!
//! # Features
//!
//! The SQL adapters are behind the `sqlite` and `postgres` features of `fidelis-core`. Both
//! are default features, so `cargo run` and `cargo test` reach every kind of database without
//! flags; a build that only needs memory storage sets `default-features = false`. TLS to
//! PostgreSQL needs the `postgres-tls` feature.
//!
//! Error messages and logs name the URL without its password (see [`redact`]). A PostgreSQL
//! server that refuses the connection, an unknown host or wrong credentials fail `build()` at
//! once; only a server that is starting up (or has too many connections) is waited for, up to
//! the connect timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::model::error::{Error, Result};
use crate::store::Storage;
pub use crate::store::connection::{PoolOptions, redact};
use crate::store::memory::MemoryStorage;

/// The environment variable naming the database URL.
pub const DATABASE_URL_VAR: &str = "FIDELIS_DATABASE_URL";
/// The environment variable naming the broker URL.
pub const BROKER_URL_VAR: &str = "FIDELIS_BROKER_URL";
/// The environment variable naming the processing mode (`sync` or `async`).
pub const PROCESSING_VAR: &str = "FIDELIS_PROCESSING";
/// The configuration file read from the current directory.
pub const CONFIG_FILE: &str = "fidelis.toml";
/// The snapshot threshold when nothing sets one (see "Snapshots" above).
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 100;

/// Resolves the domain's snapshot threshold: `explicit` (the builder's) > `fidelis.toml`'s
/// `[snapshots] threshold` > [`DEFAULT_SNAPSHOT_THRESHOLD`]. `0` turns automatic snapshots
/// off.
pub fn resolve_snapshot_threshold(explicit: Option<u64>) -> Result<u64> {
    resolve_snapshot_threshold_with(explicit, Path::new(CONFIG_FILE))
}

pub(crate) fn resolve_snapshot_threshold_with(explicit: Option<u64>, file: &Path) -> Result<u64> {
    if let Some(threshold) = explicit {
        return Ok(threshold);
    }
    Ok(read_file(file)?
        .snapshot_threshold
        .unwrap_or(DEFAULT_SNAPSHOT_THRESHOLD))
}

/// When a domain's projectors and event handlers run (see the module docs for where the mode
/// is configured).
///
/// ```
/// use fidelis_core::config::Processing;
/// assert_eq!(Processing::default(), Processing::Sync);
/// assert_eq!("async".parse::<Processing>().unwrap(), Processing::Async);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Processing {
    /// In the command: projectors in the commit's transaction, event handlers before
    /// `process` returns (read-your-writes).
    #[default]
    Sync,
    /// After the command: `process` returns once the events are committed, and the engine
    /// (`domain.engine()`) runs projectors and event handlers from the stored events.
    Async,
}

impl std::str::FromStr for Processing {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sync" => Ok(Self::Sync),
            "async" => Ok(Self::Async),
            _ => Err(Error::configuration(format!(
                "unknown processing mode `{text}`: expected `sync` or `async`"
            ))),
        }
    }
}

/// Resolves the processing mode: `explicit` (the builder's) > `FIDELIS_PROCESSING` >
/// `fidelis.toml`'s `[processing] mode` > [`Processing::Sync`]. An unknown mode is a
/// configuration error naming where it came from.
pub fn resolve_processing(explicit: Option<Processing>) -> Result<Processing> {
    resolve_processing_with(
        explicit,
        std::env::var(PROCESSING_VAR).ok(),
        Path::new(CONFIG_FILE),
    )
}

pub(crate) fn resolve_processing_with(
    explicit: Option<Processing>,
    env: Option<String>,
    file: &Path,
) -> Result<Processing> {
    if let Some(mode) = explicit {
        return Ok(mode);
    }
    if let Some(text) = env.filter(|text| !text.trim().is_empty()) {
        return text.parse().map_err(|_| {
            Error::configuration(format!(
                "`{PROCESSING_VAR}={text}`: unknown processing mode, expected `sync` or `async`"
            ))
        });
    }
    Ok(read_file(file)?.processing.unwrap_or_default())
}

/// Whether domains record processed commands: `fidelis.toml`'s `[processing]
/// record_commands`, `true` by default.
pub(crate) fn record_commands() -> Result<bool> {
    record_commands_with(Path::new(CONFIG_FILE))
}

fn record_commands_with(file: &Path) -> Result<bool> {
    Ok(read_file(file)?.record_commands.unwrap_or(true))
}

/// Resolves the broker URL: `explicit` (the builder's) > `FIDELIS_BROKER_URL` >
/// `fidelis.toml`'s `[broker] url` > none. `None`: the domain has no broker.
pub fn resolve_broker(explicit: Option<&str>) -> Result<Option<String>> {
    resolve_broker_with(
        explicit,
        std::env::var(BROKER_URL_VAR).ok(),
        Path::new(CONFIG_FILE),
    )
}

pub(crate) fn resolve_broker_with(
    explicit: Option<&str>,
    env: Option<String>,
    file: &Path,
) -> Result<Option<String>> {
    if let Some(url) = explicit {
        return Ok(Some(url.to_owned()));
    }
    if let Some(url) = env.filter(|url| !url.trim().is_empty()) {
        return Ok(Some(url));
    }
    Ok(read_file(file)?.broker_url)
}

/// Pool settings given explicitly (builder methods): unset ones fall back to `fidelis.toml`,
/// then to [`PoolOptions::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolOverrides {
    pub(crate) max_connections: Option<u32>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) acquire_timeout: Option<Duration>,
}

/// Where a database URL came from, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlSource {
    /// `DomainBuilder::database`.
    Builder,
    /// The `FIDELIS_DATABASE_URL` environment variable.
    Environment,
    /// `fidelis.toml`.
    ConfigFile,
    /// Nothing was configured: memory.
    Default,
}

/// The resolved database settings. `Debug` shows the URL without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The database URL.
    pub url: String,
    /// Where it came from.
    pub source: UrlSource,
    /// The pool settings.
    pub pool: PoolOptions,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact(&self.url))
            .field("source", &self.source)
            .field("pool", &self.pool)
            .finish()
    }
}

/// The `[database]` table of `fidelis.toml`.
#[derive(Debug, Default, PartialEq, Eq)]
struct FileSettings {
    url: Option<String>,
    pool_size: Option<u32>,
    connect_timeout: Option<Duration>,
    acquire_timeout: Option<Duration>,
    /// `[processing] mode`.
    processing: Option<Processing>,
    /// `[snapshots] threshold`.
    snapshot_threshold: Option<u64>,
    /// `[processing] record_commands`.
    record_commands: Option<bool>,
    /// `[broker] url`.
    broker_url: Option<String>,
}

/// Resolves the database settings: `explicit` (the builder's URL) > `FIDELIS_DATABASE_URL` >
/// `fidelis.toml` in the current directory > `memory`. A `fidelis.toml` that cannot be read
/// or parsed is a configuration error.
pub fn resolve(explicit: Option<&str>) -> Result<DatabaseSettings> {
    resolve_with(
        explicit,
        PoolOverrides::default(),
        std::env::var(DATABASE_URL_VAR).ok(),
        Path::new(CONFIG_FILE),
    )
}

pub(crate) fn resolve_with(
    explicit: Option<&str>,
    overrides: PoolOverrides,
    env: Option<String>,
    file: &Path,
) -> Result<DatabaseSettings> {
    let file = read_file(file)?;
    let (url, source) = match (
        explicit,
        env.filter(|url| !url.trim().is_empty()),
        &file.url,
    ) {
        (Some(url), _, _) => (url.to_owned(), UrlSource::Builder),
        (None, Some(url), _) => (url, UrlSource::Environment),
        (None, None, Some(url)) => (url.clone(), UrlSource::ConfigFile),
        (None, None, None) => ("memory".to_owned(), UrlSource::Default),
    };
    let defaults = PoolOptions::default();
    let pool = PoolOptions {
        max_connections: overrides
            .max_connections
            .or(file.pool_size)
            .unwrap_or(defaults.max_connections)
            .max(1),
        connect_timeout: overrides
            .connect_timeout
            .or(file.connect_timeout)
            .unwrap_or(defaults.connect_timeout),
        acquire_timeout: overrides
            .acquire_timeout
            .or(file.acquire_timeout)
            .unwrap_or(defaults.acquire_timeout),
    };
    Ok(DatabaseSettings { url, source, pool })
}

fn read_file(path: &Path) -> Result<FileSettings> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileSettings::default());
        }
        Err(error) => {
            return Err(Error::configuration(format!(
                "cannot read `{}`: {error}",
                path.display()
            )));
        }
    };
    parse_file(&text)
        .map_err(|problem| Error::configuration(format!("`{}`: {problem}", path.display())))
}

fn parse_file(text: &str) -> std::result::Result<FileSettings, String> {
    let document: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| error.to_string())?;
    let mut settings = FileSettings::default();
    if let Some(processing) = document.get("processing") {
        let processing = processing
            .as_table()
            .ok_or("`processing` must be a table: `[processing]`")?;
        for (key, value) in processing {
            match key.as_str() {
                "mode" => {
                    let mode = value
                        .as_str()
                        .ok_or("`processing.mode` must be a string: \"sync\" or \"async\"")?;
                    settings.processing = Some(mode.parse().map_err(|_| {
                        format!("`processing.mode = \"{mode}\"`: expected \"sync\" or \"async\"")
                    })?);
                }
                "record_commands" => {
                    settings.record_commands = Some(
                        value
                            .as_bool()
                            .ok_or("`processing.record_commands` must be `true` or `false`")?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown key `processing.{other}` (expected mode or record_commands)"
                    ));
                }
            }
        }
    }
    if let Some(snapshots) = document.get("snapshots") {
        let snapshots = snapshots
            .as_table()
            .ok_or("`snapshots` must be a table: `[snapshots]`")?;
        for (key, value) in snapshots {
            match key.as_str() {
                "threshold" => {
                    let threshold = value.as_integer().and_then(|n| u64::try_from(n).ok());
                    settings.snapshot_threshold = Some(threshold.ok_or(
                        "`snapshots.threshold` must be a whole number of events (0 turns automatic snapshots off)",
                    )?);
                }
                other => {
                    return Err(format!(
                        "unknown key `snapshots.{other}` (expected threshold)"
                    ));
                }
            }
        }
    }
    if let Some(broker) = document.get("broker") {
        let broker = broker
            .as_table()
            .ok_or("`broker` must be a table: `[broker]`")?;
        for (key, value) in broker {
            match key.as_str() {
                "url" => {
                    settings.broker_url = Some(
                        value
                            .as_str()
                            .ok_or("`broker.url` must be a string: \"redis://…\" or \"nats://…\"")?
                            .to_owned(),
                    );
                }
                other => return Err(format!("unknown key `broker.{other}` (expected url)")),
            }
        }
    }
    let Some(database) = document.get("database") else {
        return Ok(settings);
    };
    let database = database
        .as_table()
        .ok_or("`database` must be a table: `[database]`")?;
    for (key, value) in database {
        match key.as_str() {
            "url" => {
                settings.url = Some(
                    value
                        .as_str()
                        .ok_or("`database.url` must be a string")?
                        .to_owned(),
                )
            }
            "pool_size" => {
                let size = value
                    .as_integer()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0);
                settings.pool_size =
                    Some(size.ok_or("`database.pool_size` must be a positive integer")?);
            }
            "connect_timeout_secs" | "acquire_timeout_secs" => {
                let seconds = value.as_integer().and_then(|n| u64::try_from(n).ok());
                let seconds = seconds
                    .ok_or_else(|| format!("`database.{key}` must be a whole number of seconds"))?;
                let duration = Some(Duration::from_secs(seconds));
                if key == "connect_timeout_secs" {
                    settings.connect_timeout = duration;
                } else {
                    settings.acquire_timeout = duration;
                }
            }
            other => {
                return Err(format!(
                    "unknown key `database.{other}` (expected url, pool_size, connect_timeout_secs, acquire_timeout_secs)"
                ));
            }
        }
    }
    Ok(settings)
}

/// Connects the storage adapter a database URL names, with the default pool settings.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let storage = fidelis_core::config::connect("memory").await.unwrap();
/// assert_eq!(storage.kind(), "memory");
/// # });
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Storage>> {
    connect_with(url, &PoolOptions::default()).await
}

/// Connects the storage adapter a database URL names. An unreachable database is a storage
/// error, an unsupported or malformed URL a configuration error; both name the URL without
/// its password.
pub async fn connect_with(url: &str, pool: &PoolOptions) -> Result<Arc<dyn Storage>> {
    let url = url.trim();
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "memory" => Ok(Arc::new(MemoryStorage::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(
            crate::store::sqlite::SqliteStorage::connect(url, pool).await?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            crate::store::postgres::PostgresStorage::connect(url, pool).await?,
        )),
        _ => {
            let _ = pool;
            Err(Error::configuration(format!(
                "unsupported database URL `{}`: this build of Fidelis supports {}",
                redact(url),
                supported()
            )))
        }
    }
}

fn supported() -> &'static str {
    match (cfg!(feature = "sqlite"), cfg!(feature = "postgres")) {
        (true, true) => "`memory`, `sqlite://path` and `postgres://…`",
        (true, false) => {
            "`memory` and `sqlite://path` (enable the `postgres` feature for PostgreSQL)"
        }
        (false, true) => "`memory` and `postgres://…` (enable the `sqlite` feature for SQLite)",
        (false, false) => "`memory` (enable the `sqlite` or `postgres` feature for a database)",
    }
}

/// Resolves the settings (see the module docs) and connects.
pub(crate) async fn connect_configured(
    explicit: Option<&str>,
    overrides: PoolOverrides,
) -> Result<Arc<dyn Storage>> {
    let settings = resolve_with(
        explicit,
        overrides,
        std::env::var(DATABASE_URL_VAR).ok(),
        Path::new(CONFIG_FILE),
    )?;
    tracing::info!(url = %redact(&settings.url), source = ?settings.source, pool = ?settings.pool, "connecting storage");
    connect_with(&settings.url, &settings.pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:secret@db/x"),
            "postgres://bob:***@db/x"
        );
        assert_eq!(
            redact("postgres://bob:s@cret@db/x"),
            "postgres://bob:***@db/x"
        );
        assert_eq!(
            redact("postgres://bob@db/x?password=secret&sslmode=off"),
            "postgres://bob@db/x?password=***"
        );
        assert_eq!(
            redact("postgres://bob:pa/ss@db/x?application_name=a@b"),
            "postgres://***@b",
            "ambiguous: hidden up to the last `@`"
        );
        assert_eq!(
            redact("postgres://db/x?password=p@ss&sslmode=off"),
            "postgres://***",
            "a password parameter may run on past the `@`"
        );
        assert_eq!(redact("postgres:bob:pw@db"), "postgres:***@db");
        assert_eq!(
            redact("postgres://bob:S3cr%2Fet@[::1]:5432/x"),
            "postgres://bob:***@[::1]:5432/x"
        );
        assert_eq!(
            redact("postgres://bob:S3cr@et@db/x?options[search_path]=s"),
            "postgres://bob:***@db/x?options[search_path]=s"
        );
        let settings = resolve_with(
            Some("postgres://bob:s/ecret@db/x"),
            PoolOverrides::default(),
            None,
            no_file(),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(
            debug.contains("postgres://***@db/x") && !debug.contains("ecret"),
            "{debug}"
        );
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("sqlite://fidelis.db"), "sqlite://fidelis.db");
    }

    fn no_file() -> &'static Path {
        Path::new("/nonexistent/fidelis.toml")
    }

    #[test]
    fn resolution_order() {
        let env = Some("sqlite://env.db".to_owned());
        let builder = resolve_with(
            Some("sqlite://b.db"),
            PoolOverrides::default(),
            env.clone(),
            no_file(),
        )
        .unwrap();
        assert_eq!(
            (builder.url.as_str(), builder.source),
            ("sqlite://b.db", UrlSource::Builder)
        );
        let from_env = resolve_with(None, PoolOverrides::default(), env, no_file()).unwrap();
        assert_eq!(from_env.source, UrlSource::Environment);
        let default = resolve_with(None, PoolOverrides::default(), None, no_file()).unwrap();
        assert_eq!(
            (default.url.as_str(), default.source),
            ("memory", UrlSource::Default)
        );
        assert_eq!(default.pool, PoolOptions::default());
    }

    #[test]
    fn config_file() {
        let dir =
            std::env::temp_dir().join(format!("fidelis-config-{}", crate::Identifier::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        std::fs::write(
            &path,
            "[database]\nurl = \"sqlite://file.db\"\npool_size = 3\nacquire_timeout_secs = 2\n",
        )
        .unwrap();
        let overrides = PoolOverrides {
            max_connections: Some(7),
            ..PoolOverrides::default()
        };
        let settings = resolve_with(None, overrides, None, &path).unwrap();
        assert_eq!(
            (settings.url.as_str(), settings.source),
            ("sqlite://file.db", UrlSource::ConfigFile)
        );
        assert_eq!(
            settings.pool.max_connections, 7,
            "the builder wins over the file"
        );
        assert_eq!(settings.pool.acquire_timeout, Duration::from_secs(2));
        let env =
            resolve_with(None, PoolOverrides::default(), Some("memory".into()), &path).unwrap();
        assert_eq!((env.url.as_str(), env.pool.max_connections), ("memory", 3));

        std::fs::write(&path, "[database]\nurl = 5\n").unwrap();
        let error = resolve_with(None, PoolOverrides::default(), None, &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`database.url` must be a string"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn processing_mode() {
        let dir = std::env::temp_dir().join(format!(
            "fidelis-processing-{}",
            crate::Identifier::generate()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        assert_eq!(
            resolve_processing_with(None, None, &path).unwrap(),
            Processing::Sync
        );
        std::fs::write(&path, "[processing]\nmode = \"async\"\n").unwrap();
        assert_eq!(
            resolve_processing_with(None, None, &path).unwrap(),
            Processing::Async
        );
        assert_eq!(
            resolve_processing_with(None, Some("sync".into()), &path).unwrap(),
            Processing::Sync,
            "the environment wins over the file"
        );
        assert_eq!(
            resolve_processing_with(Some(Processing::Async), Some("sync".into()), &path).unwrap(),
            Processing::Async,
            "the builder wins over the environment"
        );
        let error = resolve_processing_with(None, Some("later".into()), &path).unwrap_err();
        assert!(matches!(error, Error::Configuration { .. }));
        assert!(
            error.to_string().contains("FIDELIS_PROCESSING=later"),
            "{error}"
        );
        std::fs::write(&path, "[processing]\nmode = \"eventually\"\n").unwrap();
        let error = resolve_processing_with(None, None, &path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("processing.mode = \"eventually\""),
            "{error}"
        );
        std::fs::write(&path, "[processing]\nmod = \"async\"\n").unwrap();
        let error = resolve_processing_with(None, None, &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown key `processing.mod`"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshot_threshold() {
        let path =
            std::env::temp_dir().join(format!("fidelis-snapshots-{}.toml", std::process::id()));
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            resolve_snapshot_threshold_with(None, &path).unwrap(),
            DEFAULT_SNAPSHOT_THRESHOLD
        );
        std::fs::write(&path, "[snapshots]\nthreshold = 500\n").unwrap();
        assert_eq!(resolve_snapshot_threshold_with(None, &path).unwrap(), 500);
        assert_eq!(resolve_snapshot_threshold_with(Some(7), &path).unwrap(), 7);
        std::fs::write(&path, "[snapshots]\nthreshold = -1\n").unwrap();
        let error = resolve_snapshot_threshold_with(None, &path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`snapshots.threshold` must be a whole number"),
            "{error}"
        );
        std::fs::write(&path, "[snapshots]\nevery = 5\n").unwrap();
        let error = resolve_snapshot_threshold_with(None, &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown key `snapshots.every`"), "{error}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn record_commands_key() {
        let dir = std::env::temp_dir().join(format!(
            "fidelis-record-commands-{}",
            crate::Identifier::generate()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        assert!(record_commands_with(&path).unwrap(), "on by default");
        std::fs::write(&path, "[processing]\nrecord_commands = false\n").unwrap();
        assert!(!record_commands_with(&path).unwrap());
        std::fs::write(&path, "[processing]\nrecord_commands = \"no\"\n").unwrap();
        let error = record_commands_with(&path).unwrap_err().to_string();
        assert!(
            error.contains("`processing.record_commands` must be `true` or `false`"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broker_url() {
        let dir =
            std::env::temp_dir().join(format!("fidelis-broker-{}", crate::Identifier::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CONFIG_FILE);
        assert_eq!(resolve_broker_with(None, None, &path).unwrap(), None);
        std::fs::write(&path, "[broker]\nurl = \"nats://file:4222\"\n").unwrap();
        assert_eq!(
            resolve_broker_with(None, None, &path).unwrap().as_deref(),
            Some("nats://file:4222")
        );
        assert_eq!(
            resolve_broker_with(None, Some("redis://env".into()), &path)
                .unwrap()
                .as_deref(),
            Some("redis://env"),
            "the environment wins over the file"
        );
        assert_eq!(
            resolve_broker_with(Some("memory"), Some("redis://env".into()), &path)
                .unwrap()
                .as_deref(),
            Some("memory"),
            "the builder wins over the environment"
        );
        std::fs::write(&path, "[broker]\nurl = 6379\n").unwrap();
        let error = resolve_broker_with(None, None, &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`broker.url` must be a string"), "{error}");
        std::fs::write(&path, "[broker]\nadress = \"x\"\n").unwrap();
        let error = resolve_broker_with(None, None, &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown key `broker.adress`"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn unsupported_url_is_a_configuration_error_without_password() {
        let error = connect("mysql://bob:secret@db/x").await.err().unwrap();
        assert!(matches!(error, Error::Configuration { .. }));
        let message = error.to_string();
        assert!(
            message.contains("mysql://bob:***@db/x") && !message.contains("secret"),
            "{message}"
        );
    }
}

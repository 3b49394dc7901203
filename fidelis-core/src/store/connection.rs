//! What every adapter that connects to a database shares: pool settings, and URLs made safe to
//! show. Here rather than in `config` so the adapters need nothing of the runtime;
//! [`crate::config`] re-exports both.

use std::time::Duration;

/// Connection pool settings of the SQL adapters (memory ignores them).
///
/// ```
/// use std::time::Duration;
/// use fidelis_core::config::PoolOptions;
/// let options = PoolOptions { max_connections: 4, ..PoolOptions::default() };
/// assert_eq!(options.acquire_timeout, Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the pool opens (default 10; SQLite in memory always uses 1).
    pub max_connections: u32,
    /// How long connecting to the database may take before it counts as unreachable
    /// (default 10 s).
    pub connect_timeout: Duration,
    /// How long a unit of work waits for a free connection (default 30 s).
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// The URL without its password, for error messages and logs.
///
/// The password of the user info is replaced by `***`, and so is the value of a `password=`
/// (or `sslpassword=`) parameter together with everything after it (a raw `&` or `#` in the
/// password cannot be told apart from the next parameter). The URL is parsed with the `url`
/// crate; when it does not parse, or a password with a raw `/`, `?` or `#` makes it
/// ambiguous (`postgres://bob:pa/ss@db/x`, where an `@` follows the end of the authority),
/// everything between `://` and the last `@` is hidden. The raw input is never returned when
/// it might hold a password.
///
/// ```
/// use fidelis_core::config::redact;
/// assert_eq!(redact("postgres://bob:secret@db/x"), "postgres://bob:***@db/x");
/// assert_eq!(redact("postgres://bob:S3cr/et@db:5432/x"), "postgres://***@db:5432/x");
/// assert_eq!(redact("postgres://bob@db/x?sslmode=require&password=secret"), "postgres://bob@db/x?sslmode=require&password=***");
/// assert_eq!(redact("sqlite://fidelis.db"), "sqlite://fidelis.db");
/// ```
pub fn redact(url: &str) -> String {
    let shown = match url::Url::parse(url) {
        Ok(parsed) if !at_after_authority(url) => hide_password(parsed, url),
        _ => hide_userinfo(url),
    };
    hide_password_parameters(&shown)
}

/// Whether an `@` appears where the `url` crate no longer looks for user info (after the
/// authority ends at the first `/`, `?`, `#` or `\`), or anywhere in a URL without `//`
/// authority: then a database driver may read the user info differently.
fn at_after_authority(url: &str) -> bool {
    match url.split_once("://") {
        Some((_, rest)) => rest
            .find(['/', '?', '#', '\\'])
            .is_some_and(|end| rest[end..].contains('@')),
        None => url.contains('@'),
    }
}

/// The parsed URL with its password replaced; the input as it is when it has none.
fn hide_password(mut parsed: url::Url, url: &str) -> String {
    if parsed.password().is_none() {
        return url.to_owned();
    }
    match parsed.set_password(Some("***")) {
        Ok(()) => parsed.into(),
        Err(()) => hide_userinfo(url),
    }
}

/// Everything between `://` (or the scheme's `:`) and the last `@` replaced by `***`. When
/// the hidden part held a `password=` parameter, whatever follows the `@` may be the rest of
/// its value, so it is hidden too.
fn hide_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => match url.split_once(':') {
            Some((scheme, rest)) => (format!("{scheme}:"), rest),
            None => (String::new(), url),
        },
    };
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    if password_parameter(&rest[..at]).is_some() {
        return format!("{scheme}***");
    }
    format!("{scheme}***{}", &rest[at..])
}

/// The value of a `password=` or `sslpassword=` parameter, and everything after it, replaced
/// by `***`.
fn hide_password_parameters(url: &str) -> String {
    let Some(query) = url.find('?') else {
        return url.to_owned();
    };
    match password_parameter(&url[query..]) {
        Some(value) => format!("{}***", &url[..query + value]),
        None => url.to_owned(),
    }
}

/// Where the value of the first password parameter starts in `text`: a `password=` or
/// `sslpassword=` (any case) right after a `?` or `&`.
fn password_parameter(text: &str) -> Option<usize> {
    let mut start = 0;
    while let Some(offset) = text[start..].find(['?', '&']) {
        let key_start = start + offset + 1;
        let parameter = &text[key_start..];
        for key in ["password=", "sslpassword="] {
            if parameter
                .get(..key.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(key))
            {
                return Some(key_start + key.len());
            }
        }
        start = key_start;
    }
    None
}

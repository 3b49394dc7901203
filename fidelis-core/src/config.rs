//! Database configuration: from a URL to a storage adapter.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::Storage;
use crate::store::memory::MemoryStorage;

/// Connects the storage adapter a database URL names.
pub(crate) async fn connect(url: &str) -> Result<Arc<dyn Storage>> {
    match url {
        "memory" | "memory://" => Ok(Arc::new(MemoryStorage::new())),
        other => Err(Error::configuration(format!(
            "unsupported database URL `{}`: this build of Fidelis supports `memory`",
            redact(other)
        ))),
    }
}

/// The URL without its password, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://bob:secret@db/x"), "postgres://bob:***@db/x");
        assert_eq!(redact("sqlite://fidelis.db"), "sqlite://fidelis.db");
    }
}

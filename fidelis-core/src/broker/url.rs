//! Broker URLs: the address to show in errors (without its password) and the adapter options
//! given as query parameters (`redis://127.0.0.1:6379?maxlen=100000&redeliver_after=10s`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::error::{Error, Result};

/// A parsed broker URL: what the client connects to, what errors show, and the options.
pub(crate) struct BrokerUrl {
    /// The URL without the options, for the client (it keeps the password).
    pub(crate) address: String,
    /// The URL without the password and the options, for errors and status.
    pub(crate) shown: String,
    /// The query parameters not yet taken by the adapter.
    options: BTreeMap<String, String>,
}

impl BrokerUrl {
    /// Parses `url`; a URL that does not parse is an [`Error::Configuration`] that shows it
    /// without anything after its scheme (it may hold a password).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let mut parsed = url::Url::parse(url).map_err(|error| {
            let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
            Error::configuration(format!(
                "the broker URL `{scheme}://…` does not parse: {error}"
            ))
        })?;
        let options = parsed
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        parsed.set_query(None);
        parsed.set_fragment(None);
        let address = parsed.to_string();
        // Only a URL with a host can carry a password; others have nothing to hide.
        let _ = parsed.set_password(None);
        let shown = parsed.to_string();
        Ok(BrokerUrl {
            address,
            shown,
            options,
        })
    }

    /// Takes option `name` as a whole number, or `None` when the URL lacks it.
    #[cfg(feature = "redis")]
    pub(crate) fn take_number(&mut self, name: &str) -> Result<Option<u64>> {
        let Some(value) = self.options.remove(name) else {
            return Ok(None);
        };
        value
            .parse()
            .map(Some)
            .map_err(|_| self.bad_option(name, &value, "a whole number"))
    }

    /// Takes option `name` as a duration (`500ms`, `30s`, `2m`), or `None` when the URL
    /// lacks it.
    pub(crate) fn take_duration(&mut self, name: &str) -> Result<Option<Duration>> {
        let Some(value) = self.options.remove(name) else {
            return Ok(None);
        };
        parse_duration(&value).map(Some).ok_or_else(|| {
            self.bad_option(name, &value, "a duration such as `500ms`, `30s` or `2m`")
        })
    }

    /// Fails on an option no adapter took (a typo must not be silently ignored), naming the
    /// options this adapter knows.
    pub(crate) fn finish(self, known: &[&str]) -> Result<Self> {
        if self.options.is_empty() {
            return Ok(self);
        }
        let unknown: Vec<_> = self.options.keys().map(|key| format!("`{key}`")).collect();
        let known: Vec<_> = known.iter().map(|key| format!("`{key}`")).collect();
        Err(Error::configuration(format!(
            "the broker URL `{}` has unknown option(s) {}; the options are {}",
            self.shown,
            unknown.join(", "),
            known.join(", ")
        )))
    }

    fn bad_option(&self, name: &str, value: &str, expected: &str) -> Error {
        Error::configuration(format!(
            "the broker URL `{}` has `{name}={value}`; `{name}` must be {expected}",
            self.shown
        ))
    }
}

/// `500ms`, `30s`, `2m` (a whole number and a unit).
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_has_no_password_and_no_options() {
        let mut url = BrokerUrl::parse("redis://app:secret@cache:6379/2?maxlen=10").unwrap();
        assert_eq!(url.address, "redis://app:secret@cache:6379/2");
        assert_eq!(url.shown, "redis://app@cache:6379/2");
        assert_eq!(url.take_duration("timeout").unwrap(), None);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn numbers_are_checked() {
        let mut url = BrokerUrl::parse("redis://cache:6379?maxlen=10&other=x").unwrap();
        assert_eq!(url.take_number("maxlen").unwrap(), Some(10));
        assert!(url.finish(&["maxlen"]).is_err());
        let mut url = BrokerUrl::parse("redis://cache:6379?maxlen=many").unwrap();
        assert!(url.take_number("maxlen").is_err());
    }

    #[test]
    fn options_are_checked() {
        let mut url = BrokerUrl::parse("nats://127.0.0.1:4222?ack_wait=soon&timeuot=1s").unwrap();
        let error = url.take_duration("ack_wait").unwrap_err();
        assert_eq!(
            error.to_string(),
            "domain configuration is invalid:\n  - the broker URL `nats://127.0.0.1:4222` has `ack_wait=soon`; \
             `ack_wait` must be a duration such as `500ms`, `30s` or `2m`"
        );
        let error = url.finish(&["ack_wait", "timeout"]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "domain configuration is invalid:\n  - the broker URL `nats://127.0.0.1:4222` has unknown option(s) \
             `timeuot`; the options are `ack_wait`, `timeout`"
        );
    }

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1h"), None);
    }
}

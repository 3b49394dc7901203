//! Where results go: tables and lines for people, one JSON document for scripts.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::error::CliError;

/// How this run prints.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether the run prints JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Whether a progress bar can be drawn: people at a terminal, not scripts.
    pub(crate) fn interactive(&self) -> bool {
        !self.json && std::io::stdout().is_terminal()
    }

    /// Prints the JSON document of a command's result.
    pub(crate) fn document(&self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value).map_err(|error| {
            CliError::new(crate::Exit::Failure, format!("cannot write JSON: {error}"))
        })?;
        self.line(&text);
        Ok(())
    }

    /// Prints a line on stdout. A closed pipe (`| head`) is not an error worth a panic.
    pub(crate) fn line(&self, text: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Prints a table with these headers and rows.
    pub(crate) fn table<R, C>(&self, headers: &[&str], rows: R)
    where
        R: IntoIterator<Item = Vec<C>>,
        C: Into<comfy_table::Cell>,
    {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(headers.to_vec());
        for row in rows {
            table.add_row(row);
        }
        self.line(&table.to_string());
    }

    /// Reports a failure on stderr, as one line (a JSON object with `--json`).
    pub(crate) fn error(&self, error: &CliError) {
        let text = if self.json {
            serde_json::json!({ "error": error.message, "exit_code": error.exit as u8 }).to_string()
        } else {
            format!("error: {}", error.message)
        };
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// A line of progress on stderr, for runs without a terminal.
    pub(crate) fn progress(&self, text: &str) {
        if !self.json {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}

//! The explorer's keys (`user_0` … `user_{N-1}`) put into the database, so
//! that the explorer's prediction is the bridge's plan key for key: what the
//! page says happened, in words, and whether they are in.

use ecoshard_core::DEFAULT_KEY_PREFIX;
use ecoshard_core::wire::BulkResult;

use crate::api::ApiError;
use crate::format::{millis, thousands};
use crate::live::{Live, LogKind};

/// "the explorer's 2,000 keys (user_0 … user_1999)".
pub fn explorer_keys(count: u64) -> String {
    format!(
        "the explorer's {} keys ({DEFAULT_KEY_PREFIX}0 … {DEFAULT_KEY_PREFIX}{})",
        thousands(count),
        count.saturating_sub(1)
    )
}

impl Live {
    /// Whether the database holds the explorer's `count` keys (as this page
    /// inserted them, or found them stored already).
    pub fn explorer_keys_in(&self, count: u64) -> bool {
        self.explorer_keys_stored == Some(count)
    }

    /// The bridge took the explorer's keys: written (201), or every one was
    /// stored already exactly so (200, `inserted: 0`).
    pub(crate) fn explorer_keys_inserted(&mut self, count: u64, result: &BulkResult) {
        let keys = explorer_keys(count);
        let text = if result.inserted == 0 {
            format!("{keys} are in the database already: nothing written")
        } else {
            format!(
                "inserted {keys} on {} in {}",
                result.served_by,
                millis(Some(result.elapsed_ms))
            )
        };
        self.push_log(LogKind::Ok, text);
        self.explorer_keys_stored = Some(count);
    }

    /// The bridge refused the explorer's keys: a collision (409) says which
    /// ids, in the bridge's sentence.
    pub(crate) fn explorer_keys_refused(&mut self, count: u64, error: &ApiError) {
        let keys = explorer_keys(count);
        let text = match error.status {
            Some(409) => format!(
                "{keys} were not inserted: part of that range is in the database already, \
                 stored differently — {}",
                error.message
            ),
            Some(status) => format!(
                "{keys} were not inserted ({status} {}): {}",
                error.code, error.message
            ),
            None => format!("{keys} were not inserted: {}", error.message),
        };
        if error.status == Some(503) {
            self.writes_refused += 1;
        }
        self.push_log(LogKind::Error, text);
    }
}

//! The activity log: the newest lines first, a bounded number of them, and a
//! run of the same line (a refused write ten times a second) kept as one
//! line with a count.

use std::collections::VecDeque;
use std::ops::Deref;

/// Lines kept.
pub const LOG_LENGTH: usize = 12;

/// Good news or bad news.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// Something worked.
    Ok,
    /// Something failed; the text says what.
    Error,
}

/// One line of the activity log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Good or bad.
    pub kind: LogKind,
    /// The line.
    pub text: String,
    /// How many times in a row it happened.
    pub repeats: u32,
    /// Counts entries, as a stable key for the list.
    pub serial: u64,
}

/// The log, newest first; reads as a `VecDeque` of entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivityLog {
    entries: VecDeque<LogEntry>,
    serial: u64,
}

impl ActivityLog {
    /// Adds a line, or counts one more of the newest line when it is the same.
    pub fn push(&mut self, kind: LogKind, text: String) {
        if let Some(newest) = self.entries.front_mut()
            && newest.kind == kind
            && newest.text == text
        {
            newest.repeats += 1;
            return;
        }
        self.serial += 1;
        self.entries.push_front(LogEntry {
            kind,
            text,
            repeats: 1,
            serial: self.serial,
        });
        self.entries.truncate(LOG_LENGTH);
    }
}

impl Deref for ActivityLog {
    type Target = VecDeque<LogEntry>;

    fn deref(&self) -> &VecDeque<LogEntry> {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_bounded_and_runs_counted() {
        let mut log = ActivityLog::default();
        for index in 0..20 {
            log.push(LogKind::Ok, format!("line {index}"));
        }
        assert_eq!(log.len(), LOG_LENGTH);
        assert_eq!(log[0].text, "line 19");
        assert!(log[0].serial > log[1].serial);
        log.push(LogKind::Error, "refused".to_string());
        log.push(LogKind::Error, "refused".to_string());
        log.push(LogKind::Ok, "refused".to_string());
        assert_eq!((log[1].text.as_str(), log[1].repeats), ("refused", 2));
        assert_eq!(log[0].repeats, 1, "same words, other kind: a new line");
    }
}

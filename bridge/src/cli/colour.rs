//! Whether the logs on stderr carry ANSI colour codes: only on a terminal,
//! and never when `NO_COLOR` is set (<https://no-color.org>), so a log
//! redirected to a file or a pipe stays plain text.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

/// Whether stderr gets colour, for this process.
pub(super) fn stderr_in_colour() -> bool {
    in_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// Colour on a terminal unless `NO_COLOR` is set to something (an empty
/// value does not count, as no-color.org says).
fn in_colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        fn check(is_terminal: bool, no_color: Option<&str>, expected: bool) {
            assert_eq!(
                in_colour(is_terminal, no_color.map(OsStr::new)),
                expected,
                "terminal {is_terminal}, NO_COLOR {no_color:?}"
            );
        }
        check(true, None, true);
        check(true, Some(""), true);
        check(true, Some("1"), false);
        check(false, None, false);
        check(false, Some("1"), false);
    }
}

//! Bad arguments as one line on stderr: clap's first line, its "did you
//! mean" hint, and the `--help` of the subcommand that was being parsed.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, Error};

/// `error: unexpected argument '--stratgy' found; did you mean '--strategy'?
/// (see ecoshard plan --help)`, for `args` (the program name first) that
/// `command` refused with `error`.
pub(super) fn one_line(error: &Error, command: &clap::Command, args: &[OsString]) -> String {
    let mut line = first_line(&error.render().to_string());
    if let Some(suggestion) = suggestion(error) {
        line.push_str(&format!("; did you mean {suggestion}?"));
    } else if let Some(ContextValue::Strings(values)) = error.get(ContextKind::ValidValue) {
        line.push_str(&format!("; possible values: {}", values.join(", ")));
    }
    format!("{line} (see {} --help)", command_path(command, args))
}

/// clap's message on one line: its first line, followed by the indented
/// lines that complete it (such as the names of missing arguments).
fn first_line(rendered: &str) -> String {
    let mut lines = rendered.lines().skip_while(|line| line.trim().is_empty());
    let Some(first) = lines.next() else {
        return "error: bad arguments".to_owned();
    };
    let mut line = first.trim_end().to_owned();
    if line.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|item| item.starts_with(' ') && !item.trim().is_empty())
            .map(str::trim)
            .collect();
        if !items.is_empty() {
            line.push(' ');
            line.push_str(&items.join(", "));
        }
    }
    line
}

/// What clap found close to an unknown argument, subcommand or value, quoted.
fn suggestion(error: &Error) -> Option<String> {
    let kinds = [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ];
    kinds
        .into_iter()
        .find_map(|kind| match error.get(kind)? {
            ContextValue::String(one) => Some(vec![one.clone()]),
            ContextValue::Strings(many) if !many.is_empty() => Some(many.clone()),
            _ => None,
        })
        .map(|names| {
            names
                .iter()
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        })
}

/// `ecoshard`, `ecoshard plan`, `ecoshard cluster status`: the subcommands
/// named in `args`, as deep as they go.
fn command_path(command: &clap::Command, args: &[OsString]) -> String {
    let mut path = vec![command.get_name().to_owned()];
    let mut current = command;
    for arg in args.iter().skip(1).filter_map(|arg| arg.to_str()) {
        if let Some(subcommand) = current.find_subcommand(arg) {
            path.push(subcommand.get_name().to_owned());
            current = subcommand;
        }
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_message_is_joined() {
        fn check(rendered: &str, expected: &str) {
            assert_eq!(first_line(rendered), expected, "{rendered:?}");
        }
        check(
            "error: the following required arguments were not provided:\n  --shards <SHARDS>\n  --to <TO>\n\nUsage: …",
            "error: the following required arguments were not provided: --shards <SHARDS>, --to <TO>",
        );
        check(
            "error: unexpected argument 'x' found\n\n  tip: …",
            "error: unexpected argument 'x' found",
        );
        check("\n\n", "error: bad arguments");
    }
}

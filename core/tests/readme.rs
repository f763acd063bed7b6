//! README.md's library example is `core/examples/quickstart.rs` (the file
//! after its `//!` lines), byte for byte: the example builds with the crate,
//! so the README cannot show code that does not. A host-only check.
#![cfg(not(target_arch = "wasm32"))]

const README: &str = include_str!("../../README.md");
const QUICKSTART: &str = include_str!("../examples/quickstart.rs");

/// The file without its leading `//!` lines and the blank line after them.
fn body(source: &str) -> &str {
    let mut rest = source;
    while rest.starts_with("//!") {
        rest = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

#[test]
fn the_readme_example_is_core_examples_quickstart_rs() {
    let block = format!("```rust\n{}```\n", body(QUICKSTART));
    assert!(
        README.contains(&block),
        "README.md has no ```rust block equal to core/examples/quickstart.rs after its //! lines; \
         it should read:\n{block}"
    );
}

#[test]
fn the_body_starts_after_the_module_docs() {
    fn check(source: &str, expected: &str) {
        assert_eq!(body(source), expected, "{source:?}");
    }
    check("//! a\n//! b\n\nuse x;\n", "use x;\n");
    check("use x;\n", "use x;\n");
    check("//! only\n", "");
}

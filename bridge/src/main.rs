//! The `ecoshard` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    ecoshard_bridge::cli::main()
}

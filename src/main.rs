//! Thin entry point: everything lives in the library so tests can drive it.

fn main() -> std::process::ExitCode {
    partner_center_sync::cli::main()
}

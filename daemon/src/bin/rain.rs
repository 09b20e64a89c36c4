fn main() -> std::process::ExitCode {
    rain_daemon::cli::main()
}

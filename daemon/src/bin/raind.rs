fn main() -> std::process::ExitCode {
    rain_daemon::cli::raind_main()
}

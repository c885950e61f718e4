use std::{io::IsTerminal, path::PathBuf};

use clap::{Parser, ValueEnum};

// Every request allocates dozens of small strings (hyper, JSON, rows) across worker threads;
// mimalloc's thread-local free lists make that cheaper and fragment less than glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The webstats collector: receives beacons, pseudonymises them and stores them in ClickHouse.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML); see config/collector.toml for every key.
    #[arg(short, long, env = "WEBSTATS_COLLECTOR_CONFIG", default_value = "config/collector.toml")]
    config: PathBuf,
    /// Validate the configuration, print every problem, and exit.
    #[arg(long)]
    check_config: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "WEBSTATS_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    // A panic message can quote request data (a visitor's text, an address): log where a
    // panic happened, never its message. The request still gets its 500 (service.rs).
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(%location, "panic; its message is not logged, as it may hold personal data");
    }));
    let config = match collector::Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{}: ok", args.config.display());
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(collector::run(config, shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal; and a closed stderr (`| tee` after Ctrl-C) must not panic
    // the logger while the sink is still flushing.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT (Ctrl-C), SIGTERM, or SIGHUP (the terminal closed): each one flushes.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail on Unix");
    let mut hangup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler cannot fail on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = hangup.recv() => tracing::info!("SIGHUP received; shutting down"),
    }
}

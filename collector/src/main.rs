use std::path::PathBuf;

use clap::Parser;
use runtime::LogFormat;

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

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    runtime::init_logging(args.log_format);
    // A panic message can quote request data (a visitor's text, an address): log where a
    // panic happened, never its message. The request still gets its 500 (http/mod.rs).
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let tokio = match builder.enable_all().build() {
        Ok(tokio) => tokio,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match tokio.block_on(collector::run(config, runtime::shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

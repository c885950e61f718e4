//! The process plumbing the collector and the aggregator share, written once: logging to
//! stderr, the signals that stop them, and the clock.

use std::{
    io::IsTerminal,
    time::{SystemTime, UNIX_EPOCH},
};

/// The shape of a log line.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs to stderr at the level of `RUST_LOG` (default `info`). Colours only on a terminal;
/// and a closed stderr (`| tee` after Ctrl-C) must not panic the logger while a binary is
/// still flushing.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

/// Resolves on SIGINT (Ctrl-C), SIGTERM, or SIGHUP (the terminal closed).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail on Unix");
    let mut hangup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler cannot fail on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; stopping"),
        _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = hangup.recv() => tracing::info!("SIGHUP received; stopping"),
    }
}

/// Unix seconds now; `u32` ends in 2106, like ClickHouse's `DateTime`.
pub fn unix_now() -> u32 {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

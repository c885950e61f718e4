//! The HTTP floor of `benches/load.sh`: what the collector's server set-up costs before it
//! does any work of its own. The same stack and settings as `collector/src/http/mod.rs`
//! (hyper 1.x HTTP/1 with the collector's own connection builder on a multi-threaded tokio
//! runtime, mimalloc, `TCP_NODELAY`, the body read whole up to the same limit) and the same
//! 202 with the `Origin` echoed; no parsing, no enrichment, no sink. The collector's CPU per
//! beacon minus this one's per request is the cost of the collector's own work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;

// The collector's allocator (collector/src/main.rs), so that the floor pays what it pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every request 202 with an empty body, as the collector answers an accepted beacon.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// tokio worker threads (0: one per CPU, the collector's default).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.workers > 0 {
        builder.worker_threads(args.workers);
    }
    builder.enable_all().build().context("starting the runtime")?.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    // The collector's default `server.header_read_timeout_ms` (collector/src/config.rs).
    let http = collector::http1_builder(Duration::from_secs(10));
    loop {
        let (stream, _) = listener.accept().await.context("accepting")?;
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer));
        tokio::spawn(connection);
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let read = Limited::new(request.into_body(), collector::MAX_BODY_BYTES).collect().await;
    let mut response = Response::new(Empty::new());
    *response.status_mut() = if read.is_ok() { StatusCode::ACCEPTED } else { StatusCode::BAD_REQUEST };
    if let Some(origin) = origin {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response)
}

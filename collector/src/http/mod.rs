//! The HTTP layer: the state requests read, the layer stack built in one function, and the
//! accept loop with the connection limit and graceful shutdown. Modules: `routes` (the
//! endpoints), `respond` (refusals as responses), `client_ip`, `rate_limit`, `snippet`.

mod client_ip;
mod rate_limit;
mod respond;
mod routes;
mod snippet;

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use ipnet::IpNet;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, SemaphorePermit},
};

pub use self::{rate_limit::RateLimit, snippet::Snippet};
use self::{
    respond::{Body, RejectedFor},
    routes::{Route, endpoint},
};
use crate::{
    config::{MAX_BODY_BYTES, ServerConfig},
    ingest::Ingest,
    metrics::{Endpoint, Metrics},
    refusal::Rejection,
};

/// What a request may read. Built once; shared immutably (control data swaps atomically).
pub struct State {
    ingest: Ingest,
    rate_limit: RateLimit,
    trusted_proxies: Vec<IpNet>,
    snippet: Snippet,
    metrics: Arc<Metrics>,
}

impl State {
    pub fn new(
        ingest: Ingest,
        rate_limit: RateLimit,
        trusted_proxies: Vec<IpNet>,
        snippet: Snippet,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { ingest, rate_limit, trusted_proxies, snippet, metrics }
    }

    /// Lets the rate limiter forget networks that have been quiet.
    pub fn forget_idle_networks(&self) {
        self.rate_limit.forget_idle();
    }
}

/// The peer address, attached to each request by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(IpAddr);

/// The per-request limits of `[server]`, checked in this order before the handler runs.
struct Limits {
    /// Requests handled at once; past it, 503 at once (no queueing).
    concurrency: Semaphore,
    /// The whole handling of one request.
    timeout: Duration,
}

/// One request, outermost first: 1. a declared body over the limit is refused before it is
/// read; 2. past the concurrency limit, 503 at once; 3. the handler, within the request
/// timeout and with a panic confined to its request. Metrics are recorded once, around all of
/// it. A plain function rather than a tower stack: each layer wrapped and moved the handler's
/// future again, which showed in the load benchmark's profile (benches/README.md).
async fn handle(state: &State, limits: &Limits, request: Request<Incoming>) -> Response<Body> {
    let endpoint = endpoint(request.uri().path());
    let started = Instant::now();
    let response = match admit_request(limits, &request) {
        Err(rejection) => respond::rejection(rejection),
        Ok(_slot) => {
            // Boxed once: the handler's future is about 3 KiB, and each wrapper and each
            // `await` up to hyper's dispatcher moved it again (memmove showed in the load
            // benchmark's profile; benches/README.md).
            let serve = Box::pin(Route::serve(state, request));
            tokio::time::timeout(limits.timeout, isolate_panics(&state.metrics, serve))
                .await
                .unwrap_or_else(|_elapsed| respond::rejection(Rejection::Timeout))
        }
    };
    record(&state.metrics, endpoint, &response, started);
    response
}

/// Steps 1 and 2 of [`handle`]: the request's slot among the concurrent ones, or why not.
fn admit_request<'l, B>(limits: &'l Limits, request: &Request<B>) -> Result<SemaphorePermit<'l>, Rejection> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Rejection::PayloadTooLarge);
    }
    limits.concurrency.try_acquire().map_err(|_| Rejection::Overloaded)
}

/// A handler's panic becomes a 500 for its own request; the connection and every other
/// request go on. (Without this, hyper would drop the connection without a response.)
async fn isolate_panics(metrics: &Metrics, handler: impl Future<Output = Response<Body>>) -> Response<Body> {
    AssertUnwindSafe(handler).catch_unwind().await.unwrap_or_else(|_panic| {
        metrics.http_request_panics.inc();
        tracing::error!("a request handler panicked; answered 500");
        respond::rejection(Rejection::Internal)
    })
}

fn record(metrics: &Metrics, endpoint: Endpoint, response: &Response<Body>, started: Instant) {
    metrics.http_requests.with_label_values(&[endpoint.label(), response.status().as_str()]).inc();
    metrics.http_request_duration(endpoint).observe(started.elapsed().as_secs_f64());
    if let (Some(RejectedFor(reason)), Endpoint::Event | Endpoint::EventGif) =
        (response.extensions().get::<RejectedFor>(), endpoint)
    {
        metrics.beacons_rejected.with_label_values(&[reason]).inc();
    }
}

/// Largest request head (request line and headers) read, and most headers.
const MAX_HEAD_BYTES: usize = 32 * 1024;
const MAX_HEADERS: usize = 64;

/// The HTTP/1 connection settings; `benches/floor` serves with the very same.
pub fn http1_builder(header_read_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder
}

/// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
/// (up to `grace`), and returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    config: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let limits = Arc::new(Limits {
        concurrency: Semaphore::new(config.max_concurrent_requests.get()),
        timeout: config.request_timeout_ms.duration(),
    });
    let graceful = GracefulShutdown::new();
    let builder = http1_builder(config.header_read_timeout_ms.duration());
    let connections = Arc::new(Semaphore::new(config.max_connections.get()));
    let drain = Duration::from_millis(config.shutdown_drain_ms);
    let shutdown = async {
        shutdown.await;
        if !drain.is_zero() {
            state.ingest.drain();
            tracing::info!(drain_ms = config.shutdown_drain_ms, "shutting down: /readyz answers 503; still serving");
            tokio::time::sleep(drain).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            state.metrics.http_connections_refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (for_connection, limits) = (state.clone(), limits.clone());
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(SocketAddr::ip(&peer)));
            let (state, limits) = (for_connection.clone(), limits.clone());
            async move { Ok::<_, Infallible>(handle(&state, &limits, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let metrics = state.metrics.clone();
        metrics.http_connections.inc();
        tokio::spawn(async move {
            // Client disconnects and malformed requests end here; they carry no data worth
            // logging, and the peer address must not be logged.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            metrics.http_connections.dec();
            drop(slot);
        });
    }
    state.ingest.stop();
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

/// Answers a connection over the limit with a 503 and closes it, without reading from it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let response = respond::raw_http1(&Rejection::TooManyConnections);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&response)).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        let metrics = Metrics::new();
        let response = isolate_panics(&metrics, async { panic!("bug") }).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.extensions().get::<RejectedFor>().map(|r| r.0), Some("internal_error"));
        assert_eq!(metrics.http_request_panics.get(), 1);
        let fine = isolate_panics(&metrics, async { respond::plain(StatusCode::OK, "ok") }).await;
        assert_eq!(fine.status(), StatusCode::OK);
    }

    #[test]
    fn a_request_past_the_concurrency_limit_or_declaring_a_big_body_is_refused_at_once() {
        let limits = Limits { concurrency: Semaphore::new(1), timeout: Duration::from_secs(1) };
        let request = |length: usize| Request::builder().header("content-length", length).body(()).unwrap();
        let first = admit_request(&limits, &request(10)).expect("a free slot");
        assert!(matches!(admit_request(&limits, &request(10)), Err(Rejection::Overloaded)));
        drop(first);
        assert!(admit_request(&limits, &request(MAX_BODY_BYTES)).is_ok(), "the slot is free again");
        assert!(matches!(admit_request(&limits, &request(MAX_BODY_BYTES + 1)), Err(Rejection::PayloadTooLarge)));
    }
}

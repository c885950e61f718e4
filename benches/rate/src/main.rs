//! `rate`: the open-loop half of `benches/load.sh` (wrk is the closed loop).
//!
//! wrk sends the next request on a connection as soon as the last one is answered, so when
//! the server stalls it also stops sending, and the stall is counted once instead of for every
//! request that should have gone out meanwhile (coordinated omission). `rate` keeps a schedule
//! instead, as wrk2 does: `--rate` requests a second spread evenly over `--connections`
//! HTTP/1.1 keep-alive connections, each request due at a fixed instant.
//!
//! Latency of a request is measured from when it was due if the server was still busy with
//! that connection's previous request then (the server's delay counts), and from when it was
//! sent otherwise (a late timer on this side does not count against the server).
//!
//! The requests are wrk's own: `beacon.lua` writes its request pool to a file when
//! `WEBSTATS_BEACON_POOL` names one, as `<length>\n<raw request bytes>` records, and `rate`
//! cycles through them. The summary is printed as `BENCH key=value` lines with the keys
//! `beacon.lua` prints, so `load.sh` reads both the same way.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, ensure};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, sleep_until, timeout},
};

/// Sends recorded HTTP requests at a constant rate and reports latency percentiles corrected
/// for coordinated omission.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Server address, host:port.
    #[arg(long)]
    addr: String,
    /// The request pool written by beacon.lua (`WEBSTATS_BEACON_POOL`).
    #[arg(long)]
    requests: PathBuf,
    /// Requests per second, all connections together.
    #[arg(long)]
    rate: u32,
    /// Keep-alive connections the rate is spread over.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Seconds of scheduled requests.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds to wait for one response before counting a timeout and reconnecting.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// What one connection saw; summed over connections at the end.
struct Tally {
    /// Latency as described in the module docs (the server's delay counts, this side's not).
    latency_us: Histogram<u64>,
    /// Latency from when each request was due, whatever delayed it (wrk2's measure): above
    /// `latency_us` when this side's timer or CPU share was late.
    from_due_us: Histogram<u64>,
    ok: u64,
    non_2xx: u64,
    errors_connect: u64,
    errors_read: u64,
    errors_write: u64,
    errors_timeout: u64,
    /// Requests never sent: the schedule had run more than `--timeout` past its end.
    unsent: u64,
    /// Requests this side sent more than a millisecond after they were due although the
    /// connection was free: the generator, not the server, fell behind.
    late_sends: u64,
}

/// The largest latency recorded, µs (60 s); longer ones count as this.
const MAX_US: u64 = 60_000_000;

/// 1 µs to [`MAX_US`], 3 significant digits.
fn microseconds() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: microseconds(),
            from_due_us: microseconds(),
            ok: 0,
            non_2xx: 0,
            errors_connect: 0,
            errors_read: 0,
            errors_write: 0,
            errors_timeout: 0,
            unsent: 0,
            late_sends: 0,
        }
    }

    fn add(&mut self, other: &Tally) {
        self.latency_us.add(&other.latency_us).expect("same histogram bounds");
        self.from_due_us.add(&other.from_due_us).expect("same histogram bounds");
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.errors_connect += other.errors_connect;
        self.errors_read += other.errors_read;
        self.errors_write += other.errors_write;
        self.errors_timeout += other.errors_timeout;
        self.unsent += other.unsent;
        self.late_sends += other.late_sends;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rate > 0 && args.connections > 0 && args.duration > 0, "--rate, --connections, --duration: above 0");
    let pool = read_pool(&args.requests)?;
    tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?.block_on(
        async {
            let (total, elapsed) = run(&args, pool).await?;
            report(&args, &total, elapsed);
            Ok(())
        },
    )
}

/// The `<length>\n<bytes>` records of beacon.lua's pool file.
fn read_pool(path: &PathBuf) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pool = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let newline = rest.iter().position(|&b| b == b'\n').context("pool record without a length line")?;
        let len: usize = std::str::from_utf8(&rest[..newline])?.trim().parse().context("pool record length")?;
        rest = &rest[newline + 1..];
        ensure!(rest.len() >= len, "pool record cut short");
        pool.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    ensure!(!pool.is_empty(), "{} holds no requests", path.display());
    Ok(pool)
}

/// Runs the whole schedule; returns the connections' tally and the time from the first due
/// request to the last answer.
async fn run(args: &Args, pool: Vec<Vec<u8>>) -> anyhow::Result<(Tally, Duration)> {
    let pool = std::sync::Arc::new(pool);
    let connections = args.connections;
    // Every connection sends one request per `period`; connection i starts i/rate after the
    // first, so that together they send evenly every 1/rate.
    let period = Duration::from_secs_f64(f64::from(connections) / f64::from(args.rate));
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for i in 0..connections {
        let first = start + Duration::from_secs_f64(f64::from(i) / f64::from(args.rate));
        let plan = Plan {
            addr: args.addr.clone(),
            pool: pool.clone(),
            offset: (i as usize * 997) % pool.len(),
            first,
            period,
            end,
            timeout: Duration::from_secs(args.timeout),
        };
        tasks.push(tokio::spawn(connection(plan)));
    }
    let mut total = Tally::new();
    for task in tasks {
        total.add(&task.await?);
    }
    Ok((total, start.elapsed()))
}

struct Plan {
    addr: String,
    pool: std::sync::Arc<Vec<Vec<u8>>>,
    offset: usize,
    first: Instant,
    period: Duration,
    end: Instant,
    timeout: Duration,
}

/// One connection's schedule: a request every `period` from `first` until `end`.
async fn connection(plan: Plan) -> Tally {
    let mut tally = Tally::new();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut due = plan.first;
    let mut previous_done = Instant::now();
    let mut k = plan.offset;
    while due < plan.end {
        // A server that stalled for longer than the timeout past the schedule's end: the rest
        // is counted as never sent rather than sent late for ever.
        if Instant::now() > plan.end + plan.timeout {
            while due < plan.end {
                tally.unsent += 1;
                due += plan.period;
            }
            break;
        }
        // The server still busy past the due time: measure from then (its delay counts).
        let server_late = previous_done > due;
        sleep_until(due).await;
        let sent = Instant::now();
        if !server_late && sent > due + Duration::from_millis(1) {
            tally.late_sends += 1;
        }
        let request = &plan.pool[k % plan.pool.len()];
        k += 1;
        let outcome = exchange(&mut stream, &plan.addr, request, &mut buf, plan.timeout).await;
        let done = Instant::now();
        previous_done = done;
        let since = if server_late { due } else { sent };
        match outcome {
            Ok(status) => {
                let us = |from: Instant| (done - from).as_micros().clamp(1, u128::from(MAX_US)) as u64;
                tally.latency_us.saturating_record(us(since));
                tally.from_due_us.saturating_record(us(due));
                if (200..300).contains(&status) {
                    tally.ok += 1;
                } else {
                    tally.non_2xx += 1;
                }
            }
            Err(failure) => {
                stream = None;
                match failure {
                    Failure::Connect => tally.errors_connect += 1,
                    Failure::Write => tally.errors_write += 1,
                    Failure::Read | Failure::Closed => tally.errors_read += 1,
                    Failure::Timeout => tally.errors_timeout += 1,
                }
            }
        }
        due += plan.period;
    }
    tally
}

enum Failure {
    Connect,
    Write,
    Read,
    /// The connection ended before any byte of the answer (reported as `Read`).
    Closed,
    Timeout,
}

/// Sends one request on the connection (opening it first if needed) and reads the whole
/// response, within `limit`; returns its status. The connection is dropped when the server
/// says `close`. A kept-alive connection the server closed without saying so (an idle
/// timeout) fails before any answer arrives: then the request is sent once more on a new one.
async fn exchange(
    stream: &mut Option<TcpStream>,
    addr: &str,
    request: &[u8],
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<u16, Failure> {
    timeout(limit, async {
        let reused = stream.is_some();
        match send_and_read(stream, addr, request, buf).await {
            Err(Failure::Write | Failure::Closed) if reused => {
                *stream = None;
                send_and_read(stream, addr, request, buf).await
            }
            outcome => outcome,
        }
    })
    .await
    .map_err(|_| Failure::Timeout)?
}

async fn send_and_read(
    stream: &mut Option<TcpStream>,
    addr: &str,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<u16, Failure> {
    if stream.is_none() {
        let s = TcpStream::connect(addr).await.map_err(|_| Failure::Connect)?;
        s.set_nodelay(true).map_err(|_| Failure::Connect)?;
        *stream = Some(s);
    }
    let s = stream.as_mut().expect("connected above");
    s.write_all(request).await.map_err(|_| Failure::Write)?;
    let (status, close) = read_response(s, buf).await?;
    if close {
        *stream = None;
    }
    Ok(status)
}

/// Reads one response; returns its status and whether the server closes the connection. A
/// body is delimited by `Content-Length`, or by the end of the connection when there is none
/// (and the status allows a body); chunked answers are not expected from either target.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, bool), Failure> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Failure::Closed),
            Ok(0) | Err(_) => return Err(Failure::Read),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(buf) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(Failure::Read),
        };
        let status = response.code.ok_or(Failure::Read)?;
        // HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps alive unless told.
        let mut close = response.version == Some(0);
        let mut length = None;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
                length = Some(value.ok_or(Failure::Read)?);
            } else if h.name.eq_ignore_ascii_case("connection") {
                close = h.value.eq_ignore_ascii_case(b"close");
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Failure::Read);
            }
        }
        let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
        match length {
            _ if bodiless => {}
            Some(length) => {
                while buf.len() < head + length {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return Err(Failure::Read),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
            None => {
                // The body runs to the end of the connection.
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => return Err(Failure::Read),
                    }
                }
                close = true;
            }
        }
        return Ok((status, close));
    }
}

fn report(args: &Args, t: &Tally, elapsed: Duration) {
    let requests = t.ok + t.non_2xx;
    let h = &t.latency_us;
    let achieved = requests as f64 / elapsed.as_secs_f64();
    println!(
        "rate: {} requests/s target over {} connections for {} s to {}",
        args.rate, args.connections, args.duration, args.addr
    );
    println!("Requests/sec: {achieved:.2}");
    if t.non_2xx > 0 {
        println!("Non-2xx or 3xx responses: {}", t.non_2xx);
    }
    println!("BENCH requests={requests} duration_us={} bytes=0", elapsed.as_micros());
    println!(
        "BENCH errors_status={} errors_connect={} errors_read={} errors_write={} errors_timeout={}",
        t.non_2xx, t.errors_connect, t.errors_read, t.errors_write, t.errors_timeout
    );
    println!(
        "BENCH p50_us={} p75_us={} p90_us={} p99_us={} p999_us={} max_us={} mean_us={:.1}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.75),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    );
    let d = &t.from_due_us;
    println!(
        "BENCH from_due_p50_us={} from_due_p99_us={} from_due_p999_us={} from_due_max_us={}",
        d.value_at_quantile(0.5),
        d.value_at_quantile(0.99),
        d.value_at_quantile(0.999),
        d.max()
    );
    println!(
        "BENCH rate_target={} rate_achieved={achieved:.0} ok={} late_sends={} unsent={}",
        args.rate, t.ok, t.late_sends, t.unsent
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_file_is_read_record_by_record() {
        let dir = std::env::temp_dir().join(format!("rate-pool-{}", std::process::id()));
        let body = b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        let mut file = format!("{}\n", body.len()).into_bytes();
        file.extend_from_slice(body);
        file.extend_from_slice(b"3\nabc");
        std::fs::write(&dir, &file).unwrap();
        let pool = read_pool(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(pool, vec![body.to_vec(), b"abc".to_vec()]);
    }

    #[test]
    fn a_cut_short_pool_is_an_error() {
        let dir = std::env::temp_dir().join(format!("rate-cut-{}", std::process::id()));
        std::fs::write(&dir, b"10\nabc").unwrap();
        let err = read_pool(&dir).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn a_missing_pool_is_named_in_the_error() {
        let err = read_pool(&PathBuf::from("/nonexistent/pool")).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/pool"), "{err:#}");
    }

    /// A loopback server running `answer` on each connection it accepts; its address.
    async fn serve<F, Fut>(answer: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(answer(s));
            }
        });
        addr
    }

    fn args(addr: String, rate: u32, connections: u32, timeout: u64) -> Args {
        Args { addr, requests: PathBuf::new(), rate, connections, duration: 1, threads: 1, timeout }
    }

    const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
    const POST: &[u8] = b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn every_scheduled_request_is_sent_and_its_status_counted() {
        // 202 on a kept-alive connection; every tenth answer a 429 with a body.
        let addr = serve(|mut s| async move {
            let (mut buf, mut seen) = ([0u8; 4096], 0u64);
            while s.read(&mut buf).await.unwrap_or(0) > 0 {
                seen += 1;
                let answer: &[u8] = if seen.is_multiple_of(10) {
                    b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 5\r\n\r\nslow!"
                } else {
                    ACCEPTED
                };
                if s.write_all(answer).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let (tally, elapsed) = run(&args(addr, 200, 4, 5), vec![POST.to_vec()]).await.unwrap();
        // 4 connections, one request each every 20 ms for 1 s.
        assert_eq!(tally.ok + tally.non_2xx, 200);
        assert_eq!(tally.non_2xx, 20);
        assert_eq!(tally.latency_us.len(), 200);
        assert_eq!(tally.errors_connect + tally.errors_read + tally.errors_write + tally.errors_timeout, 0);
        assert!(elapsed >= Duration::from_millis(980), "the schedule spans the duration: {elapsed:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_without_notice_is_reopened_and_the_request_sent_again() {
        // Answers one request per connection, then closes it without `Connection: close`.
        let addr = serve(|mut s| async move {
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).await.unwrap_or(0) > 0 {
                let _ = s.write_all(ACCEPTED).await;
            }
        })
        .await;
        let (tally, _) = run(&args(addr, 40, 2, 5), vec![POST.to_vec()]).await.unwrap();
        assert_eq!((tally.ok, tally.errors_read + tally.errors_write), (40, 0));
    }

    #[tokio::test]
    async fn a_stalled_server_ends_the_run_with_timeouts_and_unsent_requests() {
        // Accepts and reads, never answers.
        let addr = serve(|mut s| async move {
            let mut buf = [0u8; 4096];
            while s.read(&mut buf).await.unwrap_or(0) > 0 {}
        })
        .await;
        let (tally, elapsed) = run(&args(addr, 100, 2, 1), vec![POST.to_vec()]).await.unwrap();
        assert_eq!(tally.ok + tally.non_2xx, 0);
        assert!(tally.errors_timeout >= 2, "each connection waited out one answer: {}", tally.errors_timeout);
        assert_eq!(tally.errors_timeout + tally.unsent, 100, "every scheduled request is accounted for");
        assert!(elapsed < Duration::from_secs(5), "the run ends soon after its end plus the timeout: {elapsed:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_counted_not_fatal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let (tally, _) = run(&args(addr, 20, 2, 1), vec![POST.to_vec()]).await.unwrap();
        assert_eq!(tally.ok + tally.non_2xx, 0);
        assert_eq!(tally.errors_connect, 20);
    }
}

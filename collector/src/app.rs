//! Assembly: turns a validated [`Config`] into a running collector. All start-up I/O is here
//! (MMDB files, the cookie key, ClickHouse, the listening socket); the stages it wires
//! together do none.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use beacon::{AgentParser, BotList, GeoDb, HostingNetworks, Pipeline, Signals, SpamReferrers};
use clickhouse::{Client, Compression};
use runtime::unix_now;
use store::Databases;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    control::{self, Control},
    http::{self, RateLimit, Snippet, State},
    ingest::Ingest,
    metrics::Metrics,
    sink::{ReadReplayFilter, ReplayFilter, Sink, Spool},
};

/// Distinct User-Agents remembered; real traffic has a few thousand.
const AGENT_CACHE_CAPACITY: usize = 20_000;
/// How often idle prefixes leave the rate limiter's memory.
const RATE_LIMIT_FORGET_INTERVAL: Duration = Duration::from_secs(60);
/// How often expired dead letters are looked for.
const DEAD_LETTER_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs the collector until `shutdown` resolves, then drains and flushes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let geo = GeoDb::open(config.geoip.location_db.as_deref(), config.geoip.asn_db.as_deref())?
        .keyed_by(config.privacy.ipv4_prefix_len, config.privacy.ipv6_prefix_len);
    let mut agents = AgentParser::new(AGENT_CACHE_CAPACITY, &config.bots.extra_patterns);
    if let Some(path) = &config.bots.list {
        let list = BotList::open(path)?;
        tracing::info!(patterns = list.len(), path = %path.display(), "bot list loaded");
        agents = agents.with_list(list);
    }
    for site in &config.sites {
        site.bot_exclusion_indices(&agents).map_err(anyhow::Error::msg)?;
    }
    let hosting = match &config.bots.hosting {
        Some(path) => {
            let hosting = HostingNetworks::open(path).map_err(anyhow::Error::msg)?;
            tracing::info!(providers = hosting.providers(), asns = hosting.asns(), path = %path.display(), "hosting list loaded");
            hosting
        }
        None => HostingNetworks::default(),
    };
    let signals = Signals { hosting, spam_referrers: SpamReferrers::new(&config.bots.spam_referrers) };
    let cookie_key = if config.sites.iter().any(|s| s.cookie_mode) {
        Some(config.privacy.cookie_key().map_err(|problem| anyhow::anyhow!("{problem}"))?)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new());
    let databases = config.clickhouse.databases();
    let mut client = config.clickhouse.client(Compression::Lz4);
    if config.clickhouse.cluster().is_some() {
        // The ingest tables are Distributed: answer once every shard has its rows, not when
        // the node asked has queued them (docs/operations.md, Running a cluster).
        client = client.with_setting("insert_distributed_sync", "1");
    }

    let control = Arc::new(Control::default());
    let reader = match &config.salts.user {
        Some(user) => config.clickhouse.as_user(user, config.salts.password_env.as_deref()).client(Compression::Lz4),
        None => client.clone(),
    };
    let refresher = tokio::spawn(control::forever(
        reader.clone(),
        databases.clone(),
        control.clone(),
        metrics.clone(),
        config.salts.refresh_interval_s.duration(),
        config.clickhouse.request_timeout(),
        unix_now,
    ));
    let spool = Arc::new(
        Spool::open(&config.spool.dir, config.spool.max_bytes, metrics.clone())
            .with_context(|| format!("cannot open the spool {} (spool.dir)", config.spool.dir.display()))?,
    );
    if !spool.is_empty() {
        tracing::info!(dir = %spool.dir().display(), bytes = spool.bytes(), "replaying the spool");
    }
    let (sink_handle, sink) = Sink::spawn(
        client,
        &databases,
        config.sink.clone(),
        &config.spool,
        spool.clone(),
        replay_filter(reader, databases.clone(), config.clickhouse.request_timeout()),
        config.clickhouse.request_timeout(),
        metrics.clone(),
    );

    let pipeline = Pipeline {
        agents,
        geo,
        signals,
        cookie_key,
        ipv4_prefix_len: config.privacy.ipv4_prefix_len,
        ipv6_prefix_len: config.privacy.ipv6_prefix_len,
    };
    let ingest = Ingest::new(
        &config.sites,
        &config.privacy.query_allowlist,
        pipeline,
        control,
        sink_handle,
        metrics.clone(),
        unix_now,
    )
    .map_err(anyhow::Error::msg)?;
    let state = Arc::new(State::new(
        ingest,
        RateLimit::new(&config.rate_limit, config.privacy.ipv4_prefix_len, config.privacy.ipv6_prefix_len),
        config.server.trusted_proxies.clone(),
        Snippet::new(config.server.script_max_age_s, &config.sites),
        metrics,
    ));

    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    tracing::info!(address = %listener.local_addr()?, sites = config.sites.len(), "collector listening");

    let forgetter = tokio::spawn({
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(RATE_LIMIT_FORGET_INTERVAL);
            loop {
                every.tick().await;
                state.forget_idle_networks();
            }
        }
    });
    let pruner =
        tokio::spawn(prune_dead_letters(spool, Duration::from_secs(u64::from(config.spool.dead_letter_days) * 86_400)));

    // Half of the shutdown time lets open requests finish; the rest flushes the sink.
    let total = config.server.shutdown_timeout_ms.duration();
    http::serve(listener, state, &config.server, shutdown, total / 2).await;
    tracing::info!("stopped accepting; inserting or spooling buffered rows");
    let report = sink.shutdown(total / 2).await;
    refresher.abort();
    forgetter.abort();
    pruner.abort();
    if report.rows_lost > 0 {
        anyhow::bail!("{} rows were neither inserted nor spooled before the shutdown deadline", report.rows_lost);
    }
    if report.spool_bytes > 0 {
        tracing::info!(bytes = report.spool_bytes, "rows left in the spool are replayed at the next start");
    }
    tracing::info!("collector stopped cleanly");
    Ok(())
}

/// What the shippers read before replaying a spool segment: the blocklist and the erasures,
/// through the same client (the `salts.user`) and queries as `control`, within `timeout`.
fn replay_filter(client: Client, databases: Databases, timeout: Duration) -> ReadReplayFilter {
    Arc::new(move || {
        let (client, databases) = (client.clone(), databases.clone());
        Box::pin(async move {
            let read = async {
                let blocklist = control::load_blocklist(&client, &databases).await?;
                let erasures = control::load_erasures(&client, &databases).await?;
                Ok(ReplayFilter::new(blocklist, erasures))
            };
            tokio::time::timeout(timeout, read).await.unwrap_or(Err(clickhouse::error::Error::TimedOut))
        })
    })
}

/// Deletes expired dead letters at start-up and then hourly.
async fn prune_dead_letters(spool: Arc<Spool>, max_age: Duration) {
    let mut every = tokio::time::interval(DEAD_LETTER_PRUNE_INTERVAL);
    loop {
        every.tick().await;
        let spool = spool.clone();
        match tokio::task::spawn_blocking(move || spool.prune_dead_letters(max_age)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(pruned)) => tracing::info!(pruned, "expired dead letters deleted"),
            Ok(Err(error)) => tracing::error!(%error, "cannot prune the dead letters"),
            Err(error) => tracing::error!(%error, "the dead-letter pruner failed"),
        }
    }
}

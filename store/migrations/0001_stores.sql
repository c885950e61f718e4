-- The two purpose-separated stores (privacy-model.md section 5) and the salts table
-- (section 2). Placeholders in braces are database names derived from the configured prefix.
-- Every statement must run on ClickHouse 18.16 and on current releases: no LowCardinality,
-- no TTL, no DateTime64; retention drops whole daily partitions instead.

CREATE DATABASE IF NOT EXISTS {audience};

CREATE DATABASE IF NOT EXISTS {troubleshooting};

-- Purpose A: audience analysis. Pageviews and custom events of people, never of bots.
-- No raw IP, no raw cookie, no full User-Agent: only pseudonyms and derived fields.
CREATE TABLE IF NOT EXISTS {audience}.events
(
    date            Date,
    ts              DateTime('UTC'),
    site            String,
    type            Enum8('pageview' = 1, 'event' = 2, 'timing' = 3, 'error' = 4),
    visitor_id      UInt64,
    cookie_id       UInt64,
    host            String,
    path            String,
    query           String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_term        String,
    utm_content     String,
    ref_host        String,
    ref_path        String,
    name            String,
    prop_keys       Array(String),
    prop_values     Array(String),
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    country         String,
    region          String,
    city            String,
    screen_width    UInt16,
    lang            String
)
ENGINE = MergeTree
PARTITION BY date
ORDER BY (site, type, ts);

-- Purpose T: finding and fixing technical problems. Every beacon (bots included) unless the
-- visitor asked not to be tracked; keeps the full User-Agent and the IP pseudonym and network.
CREATE TABLE IF NOT EXISTS {troubleshooting}.events
(
    date            Date,
    ts              DateTime('UTC'),
    site            String,
    type            Enum8('pageview' = 1, 'event' = 2, 'timing' = 3, 'error' = 4),
    is_bot          UInt8,
    visitor_id      UInt64,
    cookie_id       UInt64,
    ip_id           UInt64,
    network         String,
    asn             UInt32,
    as_org          String,
    country         String,
    host            String,
    path            String,
    ref_host        String,
    ref_path        String,
    name            String,
    user_agent      String,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    ttfb_ms         Nullable(UInt32),
    fcp_ms          Nullable(UInt32),
    dcl_ms          Nullable(UInt32),
    load_ms         Nullable(UInt32),
    lcp_ms          Nullable(UInt32),
    inp_ms          Nullable(UInt32),
    cls             Nullable(Float32),
    error_message   String,
    error_source    String,
    error_line      UInt32,
    error_col       UInt32,
    error_stack     String
)
ENGINE = MergeTree
PARTITION BY date
ORDER BY (site, type, ts);

-- One salt per rotation period. Deleting a salt drops its partition, so nobody can recompute
-- that period's visitor ids afterwards. Only the ingest and admin roles may read this table.
CREATE TABLE IF NOT EXISTS {meta}.salts
(
    period_start DateTime('UTC'),
    period_end   DateTime('UTC'),
    salt         FixedString(32),
    created_at   DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(period_start)
ORDER BY period_start;

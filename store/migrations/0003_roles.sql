-- The paths of the least-privilege roles (privacy-model.md section 8; see store/src/roles.rs).
--
-- ClickHouse 18.16 has no GRANT: a user is limited to a list of databases. So the collector's
-- `ingest` user may use only {ingest}, whose Null tables keep nothing; their materialized views
-- forward every inserted block to the stores. The views write into pass-through Buffer tables
-- in {stage} rather than into the stores directly, because 18.16 does not check the target of
-- a materialized view when it is read: SELECT from a view `TO {audience}.events` would return
-- the store. Reading a Buffer table checks its destination, which `ingest` may not read.
-- A Buffer with all thresholds 0 writes every block through at once.
--
-- A column added to an event table later must be added to its Null and Buffer twins, and the
-- view re-created, in the same migration.

CREATE DATABASE IF NOT EXISTS {stage};

CREATE DATABASE IF NOT EXISTS {ingest};

CREATE DATABASE IF NOT EXISTS {rollups};

CREATE TABLE IF NOT EXISTS {stage}.audience AS {audience}.events
ENGINE = Buffer({audience}, events, 1, 0, 0, 0, 0, 0, 0);

CREATE TABLE IF NOT EXISTS {stage}.troubleshooting AS {troubleshooting}.events
ENGINE = Buffer({troubleshooting}, events, 1, 0, 0, 0, 0, 0, 0);

CREATE TABLE IF NOT EXISTS {ingest}.audience AS {audience}.events
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {ingest}.troubleshooting AS {troubleshooting}.events
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {ingest}.audience_to_store TO {stage}.audience
AS SELECT * FROM {ingest}.audience;

CREATE MATERIALIZED VIEW IF NOT EXISTS {ingest}.troubleshooting_to_store TO {stage}.troubleshooting
AS SELECT * FROM {ingest}.troubleshooting;

-- Analysts' tables (section 5): daily counts per dimension, without pseudonyms, holding only
-- groups of at least k distinct visitors and none of blocked people. The aggregator recomputes
-- recent days on every pass (aggregator/src/rollups.rs); one table per dimension.
CREATE TABLE IF NOT EXISTS {rollups}.daily_totals
(
    date Date, site String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date);

CREATE TABLE IF NOT EXISTS {rollups}.daily_pages
(
    date Date, site String, host String, path String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, host, path);

CREATE TABLE IF NOT EXISTS {rollups}.daily_referrers
(
    date Date, site String, ref_host String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, ref_host);

CREATE TABLE IF NOT EXISTS {rollups}.daily_campaigns
(
    date Date, site String, utm_source String, utm_medium String, utm_campaign String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, utm_source, utm_medium, utm_campaign);

CREATE TABLE IF NOT EXISTS {rollups}.daily_locations
(
    date Date, site String, country String, region String, city String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, country, region, city);

CREATE TABLE IF NOT EXISTS {rollups}.daily_technology
(
    date Date, site String, browser String, os String, device String,
    pageviews UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, browser, os, device);

CREATE TABLE IF NOT EXISTS {rollups}.daily_events
(
    date Date, site String, name String,
    events UInt64, visitors UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, name);

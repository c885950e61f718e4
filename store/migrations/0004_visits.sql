-- Visits, bounces, durations, entry and exit pages, channels, hourly totals and current
-- visitors for analysts (docs/dashboards.md defines every measure). The rollups of 0003 are
-- replaced: they hold only derived counts, so `aggregator rollups --days N` recomputes them
-- from the audience store for every day it still holds.
--
-- Every table holds groups of at least k distinct visitors and no pseudonym; each is
-- recomputed a day at a time (aggregator/src/rollups.rs), so each is partitioned by day.
-- Its columns are listed once more in store/src/rollups.rs, which a test compares with
-- DESCRIBE TABLE.

DROP TABLE IF EXISTS {rollups}.daily_totals;

DROP TABLE IF EXISTS {rollups}.daily_pages;

DROP TABLE IF EXISTS {rollups}.daily_referrers;

DROP TABLE IF EXISTS {rollups}.daily_campaigns;

DROP TABLE IF EXISTS {rollups}.daily_locations;

DROP TABLE IF EXISTS {rollups}.daily_technology;

DROP TABLE IF EXISTS {rollups}.daily_events;

CREATE TABLE IF NOT EXISTS {rollups}.daily_totals
(
    date Date, site String,
    visitors UInt64, visits UInt64, pageviews UInt64, anonymous_pageviews UInt64, events UInt64,
    bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date);

-- A visit, and its pageviews, count in the hour it starts; so "today" is a curve.
CREATE TABLE IF NOT EXISTS {rollups}.hourly_totals
(
    hour DateTime('UTC'), site String,
    visitors UInt64, visits UInt64, pageviews UInt64, anonymous_pageviews UInt64, events UInt64,
    bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY toDate(hour) ORDER BY (site, hour);

CREATE TABLE IF NOT EXISTS {rollups}.daily_pages
(
    date Date, site String, host String, path String,
    visitors UInt64, pageviews UInt64, entries UInt64, exits UInt64, bounces UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, host, path);

CREATE TABLE IF NOT EXISTS {rollups}.daily_channels
(
    date Date, site String, channel String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, channel);

CREATE TABLE IF NOT EXISTS {rollups}.daily_referrers
(
    date Date, site String, ref_host String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, ref_host);

CREATE TABLE IF NOT EXISTS {rollups}.daily_campaigns
(
    date Date, site String, utm_source String, utm_medium String, utm_campaign String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, utm_source, utm_medium, utm_campaign);

-- One table per level of location and technology: a country's visitors are not the sum of
-- its cities' groups that reach k.
CREATE TABLE IF NOT EXISTS {rollups}.daily_countries
(
    date Date, site String, country String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, country);

CREATE TABLE IF NOT EXISTS {rollups}.daily_regions
(
    date Date, site String, country String, region String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, country, region);

CREATE TABLE IF NOT EXISTS {rollups}.daily_cities
(
    date Date, site String, country String, region String, city String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, country, region, city);

CREATE TABLE IF NOT EXISTS {rollups}.daily_browsers
(
    date Date, site String, browser String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, browser);

CREATE TABLE IF NOT EXISTS {rollups}.daily_os
(
    date Date, site String, os String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, os);

CREATE TABLE IF NOT EXISTS {rollups}.daily_devices
(
    date Date, site String, device String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, device);

CREATE TABLE IF NOT EXISTS {rollups}.daily_screens
(
    date Date, site String, screen_class String,
    visitors UInt64, visits UInt64, pageviews UInt64, bounces UInt64, duration_s UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, screen_class);

CREATE TABLE IF NOT EXISTS {rollups}.daily_events
(
    date Date, site String, name String,
    visitors UInt64, events UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, name);

CREATE TABLE IF NOT EXISTS {rollups}.daily_event_props
(
    date Date, site String, name String, prop_key String, prop_value String,
    visitors UInt64, events UInt64
)
ENGINE = MergeTree PARTITION BY date ORDER BY (site, date, name, prop_key, prop_value);

-- Written every minute by `aggregator run`; the day before yesterday's partitions are dropped.
CREATE TABLE IF NOT EXISTS {rollups}.current_visitors
(
    ts DateTime('UTC'), site String, visitors UInt64
)
ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (site, ts);

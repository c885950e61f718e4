-- Why a troubleshooting row counts as a bot (docs/privacy.md, Bots): `<signal>:<detail>`, such
-- as `list:Googlebot`, `automation:webdriver` or `transport:no_origin`; `hosting:<provider>`
-- flags a beacon from a hosting network that the site still counts. Empty when no signal
-- matched. Holds names from lists and fixed words, never request data.
--
-- Appended last, so the leading columns keep their places and a row spooled by an older build
-- gets the empty default on replay (TroubleshootingRow::APPENDED_DEFAULTS). Added to the store,
-- then its Buffer and Null twins (0003): each forwards by `SELECT *`, so no view is re-created
-- and no insert finds a gap. A collector naming the column before this ran is refused with
-- "no such column" and retries from its spool. No `IF NOT EXISTS` (18.16 lacks it for
-- columns): the migrator skips an ALTER whose column exists.
ALTER TABLE {troubleshooting}.events ADD COLUMN bot_reason String;

ALTER TABLE {stage}.troubleshooting ADD COLUMN bot_reason String;

ALTER TABLE {ingest}.troubleshooting ADD COLUMN bot_reason String;

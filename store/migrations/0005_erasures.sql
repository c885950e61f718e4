-- Erasure requests (privacy-model.md section 6), one row per pseudonym and request, written by
-- `aggregator subject erase` before it deletes the rows. Collectors read them before each
-- replay of their spool and drop the rows of an erased pseudonym received up to its latest
-- erasure, so rows that waited in a spool or a dead letter during the erase are not inserted
-- after it. Pseudonyms only, as in the blocklist; read by the ingest_meta role with the rest
-- of {meta}.
CREATE TABLE IF NOT EXISTS {meta}.erasures
(
    site         String,
    subject_kind Enum8('cookie' = 1, 'visitor' = 2),
    subject_id   UInt64,
    ts           DateTime('UTC')
)
ENGINE = ReplacingMergeTree(ts)
ORDER BY (site, subject_kind, subject_id);

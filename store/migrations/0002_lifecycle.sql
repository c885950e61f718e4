-- Data lifecycle and data-subject requests (privacy-model.md sections 5 and 6).

-- Every deletion (retention, salt expiry, erasure) and every data-subject request, with the
-- pseudonym concerned but never a raw value. Read by the admin role only.
CREATE TABLE IF NOT EXISTS {admin}.audit
(
    ts           DateTime('UTC'),
    action       String,
    site         String,
    target       String,
    subject_kind String,
    subject_id   UInt64,
    rows         UInt64,
    detail       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY ts;

-- Block and unblock requests; per (site, kind, id) the row with the highest seq (request
-- time in milliseconds) decides. Collectors drop beacons of blocked pseudonyms, analyst views
-- exclude their past rows.
CREATE TABLE IF NOT EXISTS {meta}.blocklist
(
    site         String,
    subject_kind Enum8('cookie' = 1, 'visitor' = 2),
    subject_id   UInt64,
    blocked      UInt8,
    ts           DateTime('UTC'),
    seq          UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (site, subject_kind, subject_id);

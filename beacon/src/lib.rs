//! From a beacon to pseudonymised rows, with no I/O: the collector's work per beacon, which the
//! property tests and the hot-path benchmark run without a server.
//!
//! - [`parse`]: a JSON body or the GIF's query string into a validated [`Beacon`].
//! - [`urls`]: URL hygiene (hosts, normalised paths, route templates, the kept query).
//! - [`scrub`]: personal data out of free text, replaced by typed placeholders.
//! - [`enrich`]: User-Agents (woothee and the bot patterns) and GeoIP/ASN lookups; [`bots`]:
//!   the maintained bot list; [`signals`]: the verdict on bots and the reason recorded.
//! - [`pipeline`]: [`Pipeline::process`], which applies all of them to a beacon and the facts
//!   of its request, pseudonymises with keyed BLAKE3 (`store::pseudonym`), drops blocked
//!   people ([`Blocklist`]) and routes the rows by purpose;
//! - [`EncodedBeacon`]: those rows in RowBinary, encoded once.
//!
//! Invariant: the raw IP address and cookie value go into [`Pipeline::process`] and never come
//! out; its only storable output is [`Pseudonymised`], which nothing else can construct.

pub mod blocklist;
pub mod bots;
mod encode;
pub mod enrich;
pub mod parse;
pub mod pipeline;
pub mod scrub;
pub mod signals;
mod text;
pub mod urls;

pub use crate::{
    blocklist::Blocklist,
    bots::BotList,
    encode::EncodedBeacon,
    enrich::{AgentParser, DEFAULT_BOT_PATTERNS, GeoDb, ORDINARY_BROWSERS},
    parse::{Beacon, BeaconError, FreeText, from_json, from_query},
    pipeline::{Controls, DoNotTrack, Outcome, Pipeline, Pseudonymised, RequestFacts, Site},
    signals::{BotPolicy, HostingNetworks, Signal, Signals, SpamReferrers},
    urls::Routes,
};

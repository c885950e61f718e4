//! Parsing a beacon (docs/http-api.md) from a JSON body or the GIF's query string. Pure: bad
//! input becomes a [`BeaconError`] naming the field, never a panic. Long free text is cut
//! rather than refused, since browsers produce it (error stacks, titles), but by the pipeline,
//! after scrubbing ([`FreeText`]): here it stays whole, bounded by the body limit, so that a
//! cut never leaves part of a card or an address where no detector can recognise it.

use serde_json::{Map, Value};
use store::EventType;
use url::Url;

use crate::signals::automation_hint;

const MAX_URL_CHARS: usize = 4_096;
const MAX_PROPS: usize = 30;
const MAX_LANG_CHARS: usize = 35;
const MAX_SID_CHARS: usize = 200;

/// The free-text fields and the characters of each that are stored (docs/http-api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeText {
    Name,
    PropKey,
    PropValue,
    ErrorMessage,
    ErrorSource,
    ErrorStack,
}

impl FreeText {
    pub const fn max_chars(self) -> usize {
        match self {
            FreeText::Name => 200,
            FreeText::PropKey => 100,
            FreeText::PropValue => 500,
            FreeText::ErrorMessage | FreeText::ErrorSource => 1_000,
            FreeText::ErrorStack => 4_000,
        }
    }
}

/// A validated beacon. URLs are parsed but not yet reduced; URL hygiene does that later.
#[derive(Debug, Clone, PartialEq)]
pub struct Beacon {
    pub site: String,
    pub kind: Kind,
    pub url: Url,
    pub referrer: Option<Url>,
    pub name: Option<String>,
    pub props: Vec<(String, String)>,
    pub screen_width: Option<u16>,
    pub lang: Option<String>,
    pub timing: Timing,
    pub error: Option<ErrorReport>,
    pub sid: Option<String>,
    /// The browser asked not to be tracked (`dnt: 1`): what the snippet sends when it sees
    /// `navigator.globalPrivacyControl` or `navigator.doNotTrack`, which need not come with a
    /// `Sec-GPC` or `DNT` header.
    pub do_not_track: bool,
    /// Automation the snippet saw in the browser (`auto`), as one of
    /// [`crate::signals::AUTOMATION_HINTS`] or `other`.
    pub automation: Option<&'static str>,
}

/// The beacon's `type`; a newtype so that `Default` is a pageview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(pub EventType);

impl Default for Kind {
    fn default() -> Self {
        Kind(EventType::Pageview)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timing {
    pub ttfb_ms: Option<u32>,
    pub fcp_ms: Option<u32>,
    pub dcl_ms: Option<u32>,
    pub load_ms: Option<u32>,
    pub lcp_ms: Option<u32>,
    pub inp_ms: Option<u32>,
    pub cls: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorReport {
    pub message: String,
    pub source: String,
    pub line: u32,
    pub col: u32,
    pub stack: String,
}

/// Why a beacon was refused: the field at fault (empty for the body as a whole) and a reason
/// a sender can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BeaconError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> BeaconError {
    BeaconError { field, message: message.into() }
}

/// Parses a POST body (already decompressed and size-checked).
pub fn from_json(body: &[u8]) -> Result<Beacon, BeaconError> {
    let text = std::str::from_utf8(body).map_err(|_| err("", "body is not valid UTF-8"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| err("", format!("body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => from_map(&map),
        _ => Err(err("", "body must be a JSON object")),
    }
}

/// Parses the GIF beacon's query string: the same fields as parameters; `props`, `t` and `err`
/// hold JSON objects.
pub fn from_query(query: &str) -> Result<Beacon, BeaconError> {
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = match key.as_ref() {
            "sw" => value.parse::<i64>().map(Value::from).unwrap_or(Value::String(value.into_owned())),
            "props" | "t" | "err" => {
                serde_json::from_str(&value).map_err(|_| err(field_name(&key), "must be a JSON object"))?
            }
            _ => Value::String(value.into_owned()),
        };
        map.insert(key.into_owned(), value);
    }
    from_map(&map)
}

/// Maps a parameter name to the static field name used in errors.
fn field_name(key: &str) -> &'static str {
    match key {
        "props" => "props",
        "t" => "t",
        _ => "err",
    }
}

fn from_map(map: &Map<String, Value>) -> Result<Beacon, BeaconError> {
    let site = required_str(map, "site")?.to_owned();
    if site.is_empty() {
        return Err(err("site", "must not be empty"));
    }
    let kind = match optional_str(map, "type")? {
        None | Some("pageview") => EventType::Pageview,
        Some("event") => EventType::Event,
        Some("timing") => EventType::Timing,
        Some("error") => EventType::Error,
        Some(_) => return Err(err("type", "must be one of pageview, event, timing, error")),
    };
    let url = absolute_url("url", required_str(map, "url")?)?;
    let referrer = match optional_str(map, "ref")? {
        None | Some("") => None,
        Some(r) => Some(absolute_url("ref", r)?),
    };
    let name = optional_str(map, "name")?;
    if kind == EventType::Event && name.is_none_or(str::is_empty) {
        return Err(err("name", "an event needs a name"));
    }
    let name = name.map(str::to_owned);
    let screen_width = match map.get("sw") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|w| u16::try_from(w).ok())
                .ok_or_else(|| err("sw", "must be an integer from 0 to 65535"))?,
        ),
    };
    let timing = match map.get("t") {
        None | Some(Value::Null) if kind != EventType::Timing => Timing::default(),
        Some(Value::Object(t)) => timing(t)?,
        _ => return Err(err("t", "a timing beacon needs an object of milliseconds")),
    };
    let error = match map.get("err") {
        None | Some(Value::Null) if kind != EventType::Error => None,
        Some(Value::Object(e)) => Some(error_report(e)?),
        _ => return Err(err("err", "an error beacon needs an object with msg")),
    };
    Ok(Beacon {
        site,
        kind: Kind(kind),
        url,
        referrer,
        name,
        props: props(map)?,
        screen_width,
        lang: optional_str(map, "lang")?.map(|l| cut(l, MAX_LANG_CHARS)),
        timing,
        error,
        sid: optional_str(map, "sid")?.filter(|s| !s.is_empty()).map(|s| cut(s, MAX_SID_CHARS)),
        do_not_track: match map.get("dnt") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => n.as_u64() == Some(1),
            // The GIF beacon's parameters are strings.
            Some(Value::String(s)) if s == "0" || s == "1" => s == "1",
            Some(_) => return Err(err("dnt", "must be 1, 0, true or false")),
        },
        automation: optional_str(map, "auto")?.and_then(automation_hint),
    })
}

fn required_str<'a>(map: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, BeaconError> {
    optional_str(map, field)?.ok_or_else(|| err(field, "is required"))
}

fn optional_str<'a>(map: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, BeaconError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn absolute_url(field: &'static str, raw: &str) -> Result<Url, BeaconError> {
    if raw.len() > MAX_URL_CHARS {
        return Err(err(field, format!("must be at most {MAX_URL_CHARS} bytes")));
    }
    match Url::parse(raw) {
        Ok(u) if u.has_host() => Ok(u),
        Ok(_) => Err(err(field, "must be an absolute URL with a host")),
        Err(_) => Err(err(field, "must be an absolute URL")),
    }
}

fn props(map: &Map<String, Value>) -> Result<Vec<(String, String)>, BeaconError> {
    let object = match map.get("props") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(err("props", "must be an object")),
    };
    if object.len() > MAX_PROPS {
        return Err(err("props", format!("at most {MAX_PROPS} properties")));
    }
    object
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(err("props", format!("property {:?} must be a string, number or boolean", cut(k, 40))));
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

fn timing(t: &Map<String, Value>) -> Result<Timing, BeaconError> {
    let ms = |key: &str| -> Result<Option<u32>, BeaconError> {
        match t.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x <= f64::from(u32::MAX))
                .map(|x| Some(x.round() as u32))
                .ok_or_else(|| err("t", format!("t.{key} must be a non-negative number of milliseconds"))),
        }
    };
    let cls = match t.get("cls") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x <= 1e6)
                .ok_or_else(|| err("t", "t.cls must be a non-negative number"))? as f32,
        ),
    };
    Ok(Timing {
        ttfb_ms: ms("ttfb")?,
        fcp_ms: ms("fcp")?,
        dcl_ms: ms("dcl")?,
        load_ms: ms("load")?,
        lcp_ms: ms("lcp")?,
        inp_ms: ms("inp")?,
        cls,
    })
}

fn error_report(e: &Map<String, Value>) -> Result<ErrorReport, BeaconError> {
    let text = |key: &str| match e.get(key) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let number = |key: &str| e.get(key).and_then(Value::as_u64).map_or(0, |n| n.min(u64::from(u32::MAX)) as u32);
    if e.get("msg").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(err("err", "err.msg is required"));
    }
    Ok(ErrorReport {
        message: text("msg"),
        source: text("src"),
        line: number("line"),
        col: number("col"),
        stack: text("stack"),
    })
}

/// At most `max` characters, cut on a character boundary.
fn cut(s: &str, max: usize) -> String {
    crate::text::cut_chars(s, max).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(body: &str, field: &str) {
        match from_json(body.as_bytes()) {
            Err(e) => assert_eq!(e.field, field, "{body}: {e}"),
            Ok(b) => panic!("{body} accepted as {b:?}"),
        }
    }

    #[test]
    fn accepts_minimal_pageview() {
        let b = from_json(br#"{"site":"s","url":"https://a.ru/x"}"#).unwrap();
        assert_eq!(b.kind, Kind(EventType::Pageview));
        assert_eq!(b.url.as_str(), "https://a.ru/x");
        assert_eq!(b.referrer, None);
    }

    #[test]
    fn names_the_faulty_field() {
        check_err("[1]", "");
        check_err("{", "");
        check_err(r#"{"url":"https://a.ru/"}"#, "site");
        check_err(r#"{"site":"s"}"#, "url");
        check_err(r#"{"site":"s","url":"/relative"}"#, "url");
        check_err(r#"{"site":"s","url":"https://a.ru/","type":"click"}"#, "type");
        check_err(r#"{"site":"s","url":"https://a.ru/","type":"event"}"#, "name");
        check_err(r#"{"site":"s","url":"https://a.ru/","sw":-1}"#, "sw");
        check_err(r#"{"site":"s","url":"https://a.ru/","sw":"wide"}"#, "sw");
        check_err(r#"{"site":"s","url":"https://a.ru/","ref":"nope"}"#, "ref");
        check_err(r#"{"site":"s","url":"https://a.ru/","props":{"a":[1]}}"#, "props");
        check_err(r#"{"site":"s","url":"https://a.ru/","type":"timing"}"#, "t");
        check_err(r#"{"site":"s","url":"https://a.ru/","type":"timing","t":{"lcp":-5}}"#, "t");
        check_err(r#"{"site":"s","url":"https://a.ru/","type":"error","err":{}}"#, "err");
        check_err(r#"{"site":5,"url":"https://a.ru/"}"#, "site");
        check_err(r#"{"site":"s","url":"https://a.ru/","dnt":2}"#, "dnt");
    }

    #[test]
    fn reads_the_do_not_track_flag_from_the_body_and_the_query() {
        let json = |dnt: &str| from_json(format!(r#"{{"site":"s","url":"https://a.ru/"{dnt}}}"#).as_bytes()).unwrap();
        assert!(!json("").do_not_track);
        assert!(json(r#","dnt":1"#).do_not_track);
        assert!(json(r#","dnt":true"#).do_not_track);
        assert!(!json(r#","dnt":0"#).do_not_track);
        assert!(from_query("site=s&url=https%3A%2F%2Fa.ru%2F&dnt=1").unwrap().do_not_track);
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(from_json(b"{\"site\":\"\xff\"}").unwrap_err().field, "");
    }

    #[test]
    fn rejects_too_many_props() {
        let props: Vec<String> = (0..31).map(|i| format!("\"k{i}\":1")).collect();
        check_err(&format!(r#"{{"site":"s","url":"https://a.ru/","props":{{{}}}}}"#, props.join(",")), "props");
    }

    #[test]
    fn parses_every_field() {
        let b = from_json(
            br#"{"site":"s","type":"error","url":"https://a.ru/p","ref":"https://ya.ru/","sw":1920,
                "lang":"ru-RU","props":{"a":"b","n":2,"f":true},"sid":"abc",
                "err":{"msg":"boom","src":"https://a.ru/app.js","line":3,"col":7,"stack":"at x"}}"#,
        )
        .unwrap();
        assert_eq!(b.kind, Kind(EventType::Error));
        assert_eq!(b.screen_width, Some(1920));
        assert_eq!(b.props, vec![("a".into(), "b".into()), ("f".into(), "true".into()), ("n".into(), "2".into())]);
        assert_eq!(b.error.unwrap().line, 3);
        assert_eq!(b.sid.as_deref(), Some("abc"));
    }

    #[test]
    fn parses_timing_and_rounds_milliseconds() {
        let b =
            from_json(br#"{"site":"s","type":"timing","url":"https://a.ru/","t":{"ttfb":12.6,"cls":0.05,"lcp":900}}"#)
                .unwrap();
        assert_eq!(b.timing.ttfb_ms, Some(13));
        assert_eq!(b.timing.lcp_ms, Some(900));
        assert_eq!(b.timing.cls, Some(0.05));
        assert_eq!(b.timing.inp_ms, None);
    }

    #[test]
    fn parses_query_string_beacon() {
        let b = from_query("site=s&url=https%3A%2F%2Fa.ru%2Fx&sw=800&props=%7B%22k%22%3A%22v%22%7D").unwrap();
        assert_eq!(b.url.as_str(), "https://a.ru/x");
        assert_eq!(b.screen_width, Some(800));
        assert_eq!(b.props, vec![("k".into(), "v".into())]);
        assert_eq!(from_query("site=s").unwrap_err().field, "url");
    }

    #[test]
    fn cuts_long_text_on_char_boundary() {
        assert_eq!(cut("привет", 3), "при");
        assert_eq!(cut("ab", 3), "ab");
    }
}

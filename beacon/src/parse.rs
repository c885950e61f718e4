//! Parsing a beacon (docs/http-api.md) from a JSON body or the GIF's query string. Pure: bad
//! input becomes a [`BeaconError`] naming the field, never a panic. Long free text is cut
//! rather than refused, since browsers produce it (error stacks, titles), but by the pipeline,
//! after scrubbing ([`FreeText`]): here it stays whole, bounded by the body limit, so that a
//! cut never leaves part of a card or an address where no detector can recognise it.

use std::borrow::Cow;

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

/// The top-level fields of a beacon as sent, borrowed from the body where JSON allows (a
/// string without escapes). JSON keeps each value's type; the GIF's query gives strings, with
/// `sw` a number when it is one and `props`, `t` and `err` parsed JSON. Unknown fields are
/// ignored; a field given twice in a JSON body is refused (serde), in a query the last wins.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow)]
    site: Option<Scalar<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    url: Option<Scalar<'a>>,
    #[serde(borrow, rename = "ref")]
    referrer: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow)]
    sw: Option<Scalar<'a>>,
    #[serde(borrow)]
    lang: Option<Scalar<'a>>,
    #[serde(borrow)]
    sid: Option<Scalar<'a>>,
    #[serde(borrow)]
    dnt: Option<Scalar<'a>>,
    #[serde(borrow)]
    auto: Option<Scalar<'a>>,
    props: Option<Value>,
    t: Option<Value>,
    err: Option<Value>,
}

/// A top-level value other than `null` (which `Option` takes): only its kind matters for the
/// ones that must be strings or numbers, so objects and arrays are skipped, not built.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Num(serde_json::Number),
    Other,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'a>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'a>, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Parses a POST body (already decompressed and size-checked).
pub fn from_json(body: &[u8]) -> Result<Beacon, BeaconError> {
    let text = std::str::from_utf8(body).map_err(|_| err("", "body is not valid UTF-8"))?;
    // Valid JSON of another shape ([1], "x", 5) has its own reason; serde would also take an
    // array as the struct's fields in order.
    if !text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        return Err(err("", "body must be a JSON object"));
    }
    let fields = serde_json::from_str::<Fields>(text).map_err(|e| err("", format!("body is not valid JSON: {e}")))?;
    from_fields(fields)
}

/// Parses the GIF beacon's query string: the same fields as parameters; `props`, `t` and `err`
/// hold JSON objects.
pub fn from_query(query: &str) -> Result<Beacon, BeaconError> {
    let mut fields = Fields::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let json = |field: &'static str| -> Result<Option<Value>, BeaconError> {
            serde_json::from_str(&value).map(Some).map_err(|_| err(field, "must be a JSON object"))
        };
        match key.as_ref() {
            "sw" => {
                fields.sw = Some(value.parse::<i64>().map_or(Scalar::Str(value), |n| Scalar::Num(n.into())));
            }
            "props" => fields.props = json("props")?,
            "t" => fields.t = json("t")?,
            "err" => fields.err = json("err")?,
            key => {
                let slot = match key {
                    "site" => &mut fields.site,
                    "type" => &mut fields.kind,
                    "url" => &mut fields.url,
                    "ref" => &mut fields.referrer,
                    "name" => &mut fields.name,
                    "lang" => &mut fields.lang,
                    "sid" => &mut fields.sid,
                    "dnt" => &mut fields.dnt,
                    "auto" => &mut fields.auto,
                    _ => continue,
                };
                *slot = Some(Scalar::Str(value));
            }
        }
    }
    from_fields(fields)
}

fn from_fields(f: Fields) -> Result<Beacon, BeaconError> {
    let site = text("site", &f.site)?.ok_or_else(|| err("site", "is required"))?;
    if site.is_empty() {
        return Err(err("site", "must not be empty"));
    }
    let kind = match text("type", &f.kind)? {
        None | Some("pageview") => EventType::Pageview,
        Some("event") => EventType::Event,
        Some("timing") => EventType::Timing,
        Some("error") => EventType::Error,
        Some(_) => return Err(err("type", "must be one of pageview, event, timing, error")),
    };
    let url = absolute_url("url", text("url", &f.url)?.ok_or_else(|| err("url", "is required"))?)?;
    let referrer = match text("ref", &f.referrer)? {
        None | Some("") => None,
        Some(r) => Some(absolute_url("ref", r)?),
    };
    let name = text("name", &f.name)?;
    if kind == EventType::Event && name.is_none_or(str::is_empty) {
        return Err(err("name", "an event needs a name"));
    }
    let screen_width = match &f.sw {
        None => None,
        Some(v) => Some(
            match v {
                Scalar::Num(n) => n.as_u64().and_then(|w| u16::try_from(w).ok()),
                _ => None,
            }
            .ok_or_else(|| err("sw", "must be an integer from 0 to 65535"))?,
        ),
    };
    let timing = match &f.t {
        None | Some(Value::Null) if kind != EventType::Timing => Timing::default(),
        Some(Value::Object(t)) => timing(t)?,
        _ => return Err(err("t", "a timing beacon needs an object of milliseconds")),
    };
    let error = match &f.err {
        None | Some(Value::Null) if kind != EventType::Error => None,
        Some(Value::Object(e)) => Some(error_report(e)?),
        _ => return Err(err("err", "an error beacon needs an object with msg")),
    };
    Ok(Beacon {
        site: site.to_owned(),
        kind: Kind(kind),
        url,
        referrer,
        name: name.map(str::to_owned),
        props: props(f.props.as_ref())?,
        screen_width,
        lang: text("lang", &f.lang)?.map(|l| cut(l, MAX_LANG_CHARS)),
        timing,
        error,
        sid: text("sid", &f.sid)?.filter(|s| !s.is_empty()).map(|s| cut(s, MAX_SID_CHARS)),
        do_not_track: match &f.dnt {
            None => false,
            Some(Scalar::Bool(b)) => *b,
            Some(Scalar::Num(n)) if matches!(n.as_u64(), Some(0 | 1)) => n.as_u64() == Some(1),
            // The GIF beacon's parameters are strings.
            Some(Scalar::Str(s)) if s == "0" || s == "1" => s == "1",
            Some(_) => return Err(err("dnt", "must be 1, 0, true or false")),
        },
        automation: text("auto", &f.auto)?.and_then(automation_hint),
    })
}

/// A field that must be a string when present.
fn text<'b>(field: &'static str, value: &'b Option<Scalar>) -> Result<Option<&'b str>, BeaconError> {
    match value {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
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

fn props(value: Option<&Value>) -> Result<Vec<(String, String)>, BeaconError> {
    let object = match value {
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
    fn reads_escaped_strings_skips_unknown_fields_and_refuses_a_field_given_twice() {
        let b = from_json(br#"{"site":"s","x":{"deep":[1,{"a":null}]},"url":"https://a.ru/\u0070","name":"a\"b"}"#)
            .unwrap();
        assert_eq!(b.url.as_str(), "https://a.ru/p");
        assert_eq!(b.name.as_deref(), Some("a\"b"));
        let e = from_json(br#"{"site":"s","url":"https://a.ru/","url":"https://b.ru/"}"#).unwrap_err();
        assert_eq!(e.field, "");
        assert!(e.message.contains("duplicate field `url`"), "{e}");
        assert_eq!(from_json(br#""site""#).unwrap_err().message, "body must be a JSON object");
        assert!(from_json(br#"[1"#).unwrap_err().message.starts_with("body is not valid JSON"));
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

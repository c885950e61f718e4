//! The configuration reference (docs/configuration.md) against the config types, so that the
//! two cannot drift: each binary's tests compare the keys its types accept with the keys the
//! reference lists.

use serde_json::Value;

/// Every key of a config value serialized to JSON, dotted (`server.listen`); entries of an
/// array of tables as `sites[].id`. Arrays of values are one key.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    walk(value, "", &mut keys);
    keys.sort();
    // Every entry of an array of tables lists the same keys.
    keys.dedup();
    keys
}

fn walk(value: &Value, prefix: &str, keys: &mut Vec<String>) {
    let join = |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(_) => walk(value, &join(key), keys),
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        for item in items.iter().filter(|i| i.is_object()) {
                            walk(item, &format!("{}[]", join(key)), keys);
                        }
                    }
                    _ => keys.push(join(key)),
                }
            }
        }
        _ => keys.push(prefix.to_owned()),
    }
}

/// The keys the reference lists under `heading` (a `## ` heading), up to the next `## `
/// heading: the first cell of each table row, when it is a key in backticks.
pub fn documented(markdown: &str, heading: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut inside = false;
    for line in markdown.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            inside = title.trim().starts_with(heading);
            continue;
        }
        let Some(row) = line.trim().strip_prefix('|') else { continue };
        let cell = row.split('|').next().unwrap_or_default().trim();
        if inside
            && let Some(key) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`'))
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.[]".contains(&b))
        {
            keys.push(key.to_owned());
        }
    }
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_tables_and_arrays_of_tables() {
        let value = serde_json::json!({
            "a": {"b": 1, "c": [1, 2]},
            "s": [{"id": "x", "d": {"e": true}}, {"id": "y", "d": {"e": false}}],
            "f": null
        });
        assert_eq!(keys(&value), ["a.b", "a.c", "f", "s[].d.e", "s[].id"]);
        let md = "## Collector\n| Key | Default |\n| --- | --- |\n| `a.b` | 1 |\n| `s[].id` | |\n## Other\n| `z` | |\n";
        assert_eq!(documented(md, "Collector"), ["a.b", "s[].id"]);
    }
}

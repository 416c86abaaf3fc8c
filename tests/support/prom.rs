//! A strict parser of Prometheus's text exposition format (0.0.4), as node_exporter's textfile
//! collector reads it, plus the checks this project adds (every family `expirenza_`-prefixed
//! with HELP and TYPE). It refuses what Prometheus would refuse: bad names, bad label syntax or
//! escapes, unparsable values, a TYPE after its samples, a family split in two, duplicate
//! series, a histogram whose buckets are not cumulative or lack `+Inf` = `_count`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
    pub help: HashMap<String, String>,
}

impl Exposition {
    /// The value of the one series `name{labels}` (labels given as `k=v` pairs).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
    /// Like [`get`](Self::get), 0 when the series is absent (a counter not yet created).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut c = s.chars();
    let ok_first = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || (colon && ch == ':');
    match c.next() {
        Some(f) if ok_first(f) => {}
        _ => return false,
    }
    c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || (colon && ch == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` at the start of `s`: the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    name
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line has no newline".into());
    }
    let mut e = Exposition::default();
    let mut seen_samples: HashSet<String> = HashSet::new(); // families with samples so far
    let mut finished: HashSet<String> = HashSet::new(); // families followed by another
    let mut current: Option<String> = None;
    let mut series: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name, true) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if seen_samples.contains(name) {
                        return Err(at("TYPE after the family's samples".into()));
                    }
                    if e.types.insert(name.into(), kind.into()).is_some() {
                        return Err(at("second TYPE line".into()));
                    }
                }
                (Some("HELP"), Some(name), help) => {
                    if !is_name(name, true) {
                        return Err(at("bad metric name".into()));
                    }
                    if e.help
                        .insert(name.into(), help.unwrap_or("").into())
                        .is_some()
                    {
                        return Err(at("second HELP line".into()));
                    }
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("expected a space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &e.types).to_string();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at(format!("family {family} is split")));
            }
            if let Some(prev) = current.replace(family.clone()) {
                finished.insert(prev);
            }
        }
        seen_samples.insert(family.clone());
        if !series.insert((name.to_string(), labels.clone())) {
            return Err(at("duplicate series".into()));
        }
        if e.types.get(&family).map(String::as_str) == Some("counter")
            && (value.is_nan() || value < 0.0)
        {
            return Err(at("negative counter".into()));
        }
        e.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    check_histograms(&e)?;
    Ok(e)
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (name, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        let buckets: Vec<&Sample> = e
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
            .collect();
        let mut last = (f64::NEG_INFINITY, 0.0);
        for b in &buckets {
            let le = parse_value(
                b.labels
                    .get("le")
                    .ok_or(format!("{name}: bucket without le"))?,
            )?;
            if le <= last.0 || b.value < last.1 {
                return Err(format!("{name}: buckets not increasing and cumulative"));
            }
            last = (le, b.value);
        }
        if last.0 != f64::INFINITY {
            return Err(format!("{name}: no le=\"+Inf\" bucket"));
        }
        let count = e
            .get(&format!("{name}_count"), &[])
            .ok_or(format!("{name}: no _count"))?;
        e.get(&format!("{name}_sum"), &[])
            .ok_or(format!("{name}: no _sum"))?;
        if count != last.1 {
            return Err(format!("{name}: +Inf bucket {} != _count {count}", last.1));
        }
    }
    Ok(())
}

/// The project's rules on top of the format.
pub fn check_project_rules(e: &Exposition) -> Result<(), String> {
    for s in &e.samples {
        let family = family_of(&s.name, &e.types);
        if !family.starts_with("expirenza_") {
            return Err(format!("{} is not expirenza_-prefixed", s.name));
        }
        if !e.types.contains_key(family) || !e.help.contains_key(family) {
            return Err(format!("{family} lacks a TYPE or HELP line"));
        }
    }
    Ok(())
}

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 1\n";
    assert!(parse(ok).is_ok());
    for bad in [
        "a_total 1",                // no final newline
        "a-b 1\n",                  // bad name
        "a{k=v} 1\n",               // unquoted
        "a{k=\"\\x\"} 1\n",         // bad escape
        "a one\n",                  // bad value
        "a 1\na 2\n",               // duplicate series
        "a 1\nb 1\na{x=\"1\"} 1\n", // split family
        "a 1\n# TYPE a gauge\n",    // TYPE after samples
        "# TYPE c counter\nc -1\n", // negative counter
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

//! kubectl's JSONPath templates (`-o jsonpath='{.spec.clusterIP}'`): text with `{...}`
//! expressions: field paths (`.a.b`, `['a.b']`), indexes and `[*]`, filters
//! (`[?(@.type=="Ready")]`), `{range ...}{end}` and string literals (`{"\n"}`).

use serde_json::Value;

use crate::error::LabError;

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    All,
    Filter { path: Vec<Segment>, equal: bool, value: Value },
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Text(String),
    Path(Vec<Segment>),
    Range(Vec<Segment>),
    End,
}

fn error(template: &str, message: &str) -> LabError {
    LabError::invalid(format!("error parsing jsonpath {template}: {message}"))
}

fn parse_path(text: &str, template: &str) -> Result<Vec<Segment>, LabError> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let mut segments = Vec::new();
    if chars.first() == Some(&'$') || chars.first() == Some(&'@') {
        i = 1;
    }
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if !name.is_empty() {
                    segments.push(Segment::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i).ok_or_else(|| error(template, "unclosed ["))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                segments.push(if inner == "*" {
                    Segment::All
                } else if let Some(quoted) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"'))) {
                    Segment::Field(quoted.to_string())
                } else if let Some(filter) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
                    let (lhs, rhs, equal) = match (filter.split_once("=="), filter.split_once("!=")) {
                        (Some((l, r)), _) => (l, r, true),
                        (None, Some((l, r))) => (l, r, false),
                        _ => return Err(error(template, "filters compare with == or !=")),
                    };
                    let rhs = rhs.trim();
                    let value = match rhs.strip_prefix('"').and_then(|s| s.strip_suffix('"')).or_else(|| rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))) {
                        Some(s) => Value::String(s.to_string()),
                        None => serde_json::from_str(rhs).map_err(|_| error(template, &format!("cannot compare with {rhs}")))?,
                    };
                    Segment::Filter { path: parse_path(lhs.trim(), template)?, equal, value }
                } else {
                    Segment::Index(inner.parse().map_err(|_| error(template, &format!("unsupported index [{inner}]")))?)
                });
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            c => return Err(error(template, &format!("unexpected {c:?} in {text:?}"))),
        }
    }
    Ok(segments)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unescape(literal: &str) -> String {
    literal.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
}

fn tokenize(template: &str) -> Result<Vec<Token>, LabError> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            tokens.push(Token::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or_else(|| error(template, "unclosed {"))? + open;
        let inner = rest[open + 1..close].trim();
        tokens.push(if inner == "end" {
            Token::End
        } else if let Some(path) = inner.strip_prefix("range ") {
            Token::Range(parse_path(path, template)?)
        } else if let Some(literal) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Token::Text(unescape(literal))
        } else {
            Token::Path(parse_path(inner, template)?)
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

fn select<'v>(values: Vec<&'v Value>, segments: &[Segment]) -> Vec<&'v Value> {
    let mut current = values;
    for segment in segments {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match segment {
                    Segment::Field(name) => v.get(name).into_iter().collect(),
                    Segment::Index(i) => {
                        let Some(items) = v.as_array() else { return vec![] };
                        let index = if *i < 0 { items.len() as i64 + i } else { *i };
                        usize::try_from(index).ok().and_then(|i| items.get(i)).into_iter().collect()
                    }
                    Segment::All => match v {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(map) => map.values().collect(),
                        _ => vec![],
                    },
                    Segment::Filter { path, equal, value } => v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|item| select(vec![item], path).first().is_some_and(|found| (*found == value) == *equal))
                        .collect(),
                }
            })
            .collect();
    }
    current
}

fn print(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn run(tokens: &[Token], context: &Value, out: &mut String) -> Result<(), LabError> {
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Text(text) => out.push_str(text),
            Token::Path(path) => {
                let found: Vec<String> = select(vec![context], path).into_iter().map(print).collect();
                out.push_str(&found.join(" "));
            }
            Token::Range(path) => {
                let mut depth = 1;
                let mut end = i + 1;
                while end < tokens.len() {
                    match tokens[end] {
                        Token::Range(_) => depth += 1,
                        Token::End => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if end >= tokens.len() {
                    return Err(LabError::invalid("error parsing jsonpath: {range} without {end}"));
                }
                for item in select(vec![context], path) {
                    run(&tokens[i + 1..end], item, out)?;
                }
                i = end;
            }
            Token::End => return Err(LabError::invalid("error parsing jsonpath: {end} without {range}")),
        }
        i += 1;
    }
    Ok(())
}

/// Renders a template against a value.
pub fn render(template: &str, value: &Value) -> Result<String, LabError> {
    let tokens = tokenize(template)?;
    let mut out = String::new();
    run(&tokens, value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}, "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"podIP": "10.0.0.2", "conditions": [{"type": "Ready", "status": "False"}]}},
        ]})
    }

    #[test]
    fn fields_indexes_wildcards() {
        let svc = json!({"spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}});
        assert_eq!(render("{.spec.clusterIP}", &svc).unwrap(), "10.96.0.11");
        assert_eq!(render("ip={.spec.clusterIP}:{.spec.ports[0].port}", &svc).unwrap(), "ip=10.96.0.11:80");
        assert_eq!(render("{.items[*].metadata.name}", &list()).unwrap(), "a b");
        assert_eq!(render("{.items[-1].status.podIP}", &list()).unwrap(), "10.0.0.2");
        assert_eq!(render("{.items[0].metadata.labels['app.kubernetes.io/name']}", &list()).unwrap(), "x");
        assert_eq!(render("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", &list()).unwrap(), "x");
        assert_eq!(render("{.missing}", &svc).unwrap(), "");
    }

    #[test]
    fn range_filters_and_literals() {
        assert_eq!(render("{range .items[*]}{.metadata.name}{\"\\t\"}{.status.podIP}{\"\\n\"}{end}", &list()).unwrap(), "a\t10.0.0.1\nb\t10.0.0.2\n");
        assert_eq!(render("{.items[*].status.conditions[?(@.type==\"Ready\")].status}", &list()).unwrap(), "True False");
        assert!(render("{.items[0", &list()).is_err());
        assert!(render("{range .items[*]}{.x}", &list()).is_err());
    }
}

//! User-facing output: readable tables, JSON for scripts, and the tiny
//! template language of `inspect --format '{{.IPAM.Config[0].Subnet}}'`.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// A borderless table in Docker's style: upper-case headers, aligned
/// columns, no rules.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for row in rows {
        t.add_row(row);
    }
    // comfy-table pads each cell with one space on both sides; trim the
    // leading one so output starts at column 0 like Docker's.
    t.to_string()
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pretty JSON with a trailing newline.
pub fn json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialise")
}

/// The first 12 hex digits of an id, as Docker shows them.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Renders a Go-template-like string against a JSON value. Supports
/// literal text with `{{.Path.To[0].Field}}` substitutions and `{{json
/// .Path}}`; anything else is an error saying what is supported.
pub fn render_template(template: &str, value: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in template {template:?}"))?;
        let expr = after[..end].trim();
        let (as_json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let v = lookup(value, path)?;
        match (as_json, v) {
            (true, v) => out.push_str(&serde_json::to_string(v).expect("JSON values serialise")),
            (false, Value::String(s)) => out.push_str(s),
            (false, Value::Null) => out.push_str("<no value>"),
            (false, v) => out.push_str(&v.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup<'a>(value: &'a Value, path: &str) -> Result<&'a Value, String> {
    let unsupported = || {
        format!("unsupported template expression {path:?}: use {{{{.Field.Sub[0].Name}}}} or {{{{json .Field}}}}")
    };
    let path = path.strip_prefix('.').ok_or_else(unsupported)?;
    let mut cur = value;
    if path.is_empty() {
        return Ok(cur);
    }
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur
                .get(name)
                .ok_or_else(|| format!("template: no field {name:?} in {path:?}"))?;
        }
        let mut idx = indexes;
        while let Some(s) = idx.strip_prefix('[') {
            let close = s.find(']').ok_or_else(unsupported)?;
            let i: usize = s[..close].parse().map_err(|_| unsupported())?;
            cur = cur
                .get(i)
                .ok_or_else(|| format!("template: index {i} out of range in {path:?}"))?;
            idx = &s[close + 1..];
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_reads_nested_fields_and_indexes() {
        let v = json!({"Name": "front", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16"}]}});
        assert_eq!(
            render_template("{{.Name}}: {{.IPAM.Config[0].Subnet}}", &v).unwrap(),
            "front: 10.1.0.0/16"
        );
        assert_eq!(
            render_template("{{json .IPAM.Config}}", &v).unwrap(),
            r#"[{"Subnet":"10.1.0.0/16"}]"#
        );
        assert!(render_template("{{.Nope}}", &v).is_err());
        assert!(render_template("{{range .X}}", &v).is_err());
        assert!(render_template("{{.Name", &v).is_err());
    }

    #[test]
    fn table_has_headers_and_aligned_rows() {
        let t = table(
            &["NAME", "DRIVER"],
            vec![
                vec!["bridge".into(), "bridge".into()],
                vec!["h".into(), "host".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].find("bridge").unwrap(), 0);
        assert_eq!(lines[0].find("DRIVER"), lines[2].find("host"));
    }
}

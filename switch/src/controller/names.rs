//! Name rules and lookups by name, id or id prefix (Docker's order).

use super::ControllerError;

/// Checks a container or network name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// at most 64 characters (so it also fits a hostname and a DNS label).
pub fn validate_name(what: &'static str, name: &str) -> Result<(), ControllerError> {
    let err = |reason: &str| ControllerError::InvalidName {
        what,
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(err("it is empty; give a name")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(err("it must start with a letter or digit"));
        }
        _ => {}
    }
    if name.len() > 64 {
        return Err(err("it is longer than 64 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(err("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
    }
    Ok(())
}

/// Checks a DNS alias: dot-separated labels of letters, digits and `-`/`_`,
/// each 1–63 characters, 253 in all.
pub fn validate_alias(alias: &str) -> Result<(), ControllerError> {
    let err = |reason: &str| ControllerError::InvalidName {
        what: "alias",
        name: alias.to_string(),
        reason: reason.to_string(),
    };
    if alias.is_empty() || alias.len() > 253 {
        return Err(err("an alias must be 1 to 253 characters"));
    }
    for label in alias.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(err("each dot-separated label must be 1 to 63 characters"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err("use letters, digits, '-' and '_' only"));
        }
    }
    Ok(())
}

/// Finds one object by exact id, exact name, then unique id prefix.
pub fn resolve<'a, T>(
    what: &'static str,
    key: &str,
    items: impl Iterator<Item = (&'a str, &'a str, &'a T)> + Clone,
) -> Result<Option<&'a T>, ControllerError>
where
    T: 'a,
{
    if key.is_empty() {
        return Ok(None);
    }
    if let Some((_, _, t)) = items.clone().find(|(id, _, _)| *id == key) {
        return Ok(Some(t));
    }
    if let Some((_, _, t)) = items.clone().find(|(_, name, _)| *name == key) {
        return Ok(Some(t));
    }
    let mut hits = items.filter(|(id, _, _)| id.starts_with(key));
    match (hits.next(), hits.next()) {
        (None, _) => Ok(None),
        (Some((_, _, t)), None) => Ok(Some(t)),
        (Some((_, a, _)), Some((_, b, _))) => Err(ControllerError::Ambiguous {
            what,
            prefix: key.to_string(),
            matches: format!("{a}, {b}, ..."),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_name_rules() {
        assert!(validate_name("container", "web-1.prod_a").is_ok());
        assert!(validate_name("container", "a").is_ok());
        assert!(validate_name("container", "").is_err());
        assert!(validate_name("container", "-web").is_err());
        assert!(validate_name("container", "we b").is_err());
        assert!(validate_name("container", &"x".repeat(65)).is_err());
    }

    #[test]
    fn alias_rules() {
        assert!(validate_alias("db").is_ok());
        assert!(validate_alias("db.internal").is_ok());
        assert!(validate_alias("db..x").is_err());
        assert!(validate_alias("d b").is_err());
    }

    #[test]
    fn resolve_prefers_id_then_name_then_prefix() {
        let items = [
            ("abc123", "web", 1),
            ("abd456", "abc123x", 2),
            ("ff", "db", 3),
        ];
        let it = || items.iter().map(|(i, n, v)| (*i, *n, v));
        assert_eq!(resolve("network", "abc123", it()).unwrap(), Some(&1));
        assert_eq!(resolve("network", "db", it()).unwrap(), Some(&3));
        assert_eq!(resolve("network", "f", it()).unwrap(), Some(&3));
        assert!(resolve("network", "ab", it()).is_err());
        assert_eq!(resolve("network", "zz", it()).unwrap(), None);
    }
}

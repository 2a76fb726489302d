//! Name rules and lookups by name, id or id prefix (Docker's order).

use super::ControllerError;

/// The longest container name: a container's name is its DNS name on its
/// networks (one label when it has no dots, and a DNS label holds at most
/// 63 octets, RFC 1035) and its default hostname (64 on Linux).
pub const MAX_CONTAINER_NAME: usize = 63;

/// The longest network or host name. They are shown in listings and
/// messages but never resolved in DNS, so the limit is a sanity bound: 64,
/// as before, so no name that worked stops working.
pub const MAX_NAME: usize = 64;

/// Checks a container, network or host name: Docker's
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most [`MAX_CONTAINER_NAME`] characters
/// for containers and [`MAX_NAME`] for the others.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), ControllerError> {
    let err = |reason: String| ControllerError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    let max = if what == "container" {
        MAX_CONTAINER_NAME
    } else {
        MAX_NAME
    };
    let len = name.chars().count();
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(err("it is empty; give a name".into())),
        _ if len > max => {
            return Err(err(format!(
                "it is {len} characters long; at most {max} are allowed"
            )));
        }
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(err("it must start with a letter or digit".into()));
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(err("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".into()));
    }
    Ok(())
}

/// The longest `--aux-address` name (Docker sets no rule; it is echoed in
/// messages and shown by `inspect`).
pub const MAX_AUX_NAME: usize = 64;

/// Checks an `--aux-address NAME=IP` name: 1 to [`MAX_AUX_NAME`]
/// characters, none of them a control character.
pub fn validate_aux_name(name: &str) -> Result<(), ControllerError> {
    let err = |reason: String| ControllerError::InvalidName {
        what: "aux address",
        name: name.to_string(),
        reason,
    };
    let len = name.chars().count();
    if len == 0 {
        return Err(err("it is empty; write --aux-address NAME=IP".into()));
    }
    if len > MAX_AUX_NAME {
        return Err(err(format!(
            "it is {len} characters long; at most {MAX_AUX_NAME} are allowed"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(err("it contains a control character".into()));
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
        return Err(err("an alias must be 1 to 253 characters (a DNS name)"));
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
    fn container_names_fit_a_dns_label_and_network_names_keep_64() {
        assert!(validate_name("container", &"x".repeat(63)).is_ok());
        let err = validate_name("container", &"x".repeat(64)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(": it is 64 characters long; at most 63 are allowed"),
            "{err}"
        );
        assert!(validate_name("network", &"x".repeat(64)).is_ok());
        assert!(validate_name("network", &"x".repeat(65)).is_err());
    }

    #[test]
    fn aux_address_names_are_bounded_and_printable() {
        assert!(validate_aux_name("my router").is_ok());
        assert!(validate_aux_name("").is_err());
        assert!(validate_aux_name(&"r".repeat(65)).is_err());
        assert!(validate_aux_name("a\nb").is_err());
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

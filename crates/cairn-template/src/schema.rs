//! The variables a template may use: the schema publish-time validation checks against.
//!
//! Variables live in five namespaces: `profile.*` (reconciled attributes), `event.*` (the triggering
//! or awaited event), `journey.*` (enrollment data), `federated.*` (attributes fetched from source
//! systems) and `message.*` (`message.id`, `message.unsubscribe_url`, always known). A path is known
//! when it is declared, when it is a prefix of a declared path (`profile.address` when
//! `profile.address.city` is declared), or when an ancestor is declared open (`event.properties.*`).

use std::collections::BTreeSet;

/// The namespaces a template can read.
pub const NAMESPACES: [&str; 5] = ["profile", "event", "journey", "federated", "message"];

/// Names minijinja provides itself (not data).
const BUILTINS: [&str; 9] = [
    "range",
    "dict",
    "debug",
    "namespace",
    "loop",
    "self",
    "super",
    "varargs",
    "kwargs",
];

/// Known variable paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableSchema {
    known: BTreeSet<String>,
    open: BTreeSet<String>,
}

impl VariableSchema {
    /// An empty schema (only `message.*` is known).
    pub fn new() -> VariableSchema {
        let mut schema = VariableSchema::default();
        schema.declare("message.id");
        schema.declare("message.unsubscribe_url");
        schema
    }

    /// A schema from dotted paths; a path ending in `.*` opens everything below it.
    pub fn from_paths<I: IntoIterator<Item = S>, S: AsRef<str>>(paths: I) -> VariableSchema {
        let mut schema = VariableSchema::new();
        for path in paths {
            schema.declare(path.as_ref());
        }
        schema
    }

    /// Declares one path (`profile.first_name`) or an open subtree (`event.properties.*`).
    pub fn declare(&mut self, path: &str) -> &mut Self {
        match path.strip_suffix(".*") {
            Some(prefix) => self.open.insert(prefix.to_owned()),
            None => self.known.insert(path.to_owned()),
        };
        self
    }

    /// Closes an open subtree again (`federated` after `federated.*`): only paths declared below it
    /// stay known. The API closes `federated.*` and declares the workspace's attribute sets.
    pub fn close(&mut self, prefix: &str) -> &mut Self {
        self.open.remove(prefix);
        self
    }

    /// Whether a template may read `path`; `Err` says why not.
    pub fn check(&self, path: &str) -> Result<(), String> {
        let root = path.split('.').next().unwrap_or(path);
        if BUILTINS.contains(&root) {
            return Ok(());
        }
        if !NAMESPACES.contains(&root) {
            return Err(format!(
                "unknown variable `{path}`: variables live under {}",
                NAMESPACES.map(|n| format!("`{n}.`")).join(", ")
            ));
        }
        if path == root || self.known.contains(path) {
            return Ok(());
        }
        let below = format!("{path}.");
        if self
            .known
            .range(below.clone()..)
            .next()
            .is_some_and(|next| next.starts_with(&below))
        {
            return Ok(());
        }
        let mut ancestor = path;
        while let Some((parent, _)) = ancestor.rsplit_once('.') {
            if self.open.contains(parent) {
                return Ok(());
            }
            ancestor = parent;
        }
        if self.open.contains(root) {
            return Ok(());
        }
        Err(format!(
            "unknown variable `{path}`: it is not in the {root} schema"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_prefixes_and_open_subtrees() {
        let schema = VariableSchema::from_paths([
            "profile.first_name",
            "profile.address.city",
            "event.properties.*",
        ]);
        assert!(schema.check("profile.first_name").is_ok());
        assert!(schema.check("profile.address").is_ok());
        assert!(schema.check("profile").is_ok());
        assert!(schema.check("event.properties.sku").is_ok());
        assert!(schema.check("event.properties.items.0").is_ok());
        assert!(schema.check("message.unsubscribe_url").is_ok());
        assert!(schema
            .check("profile.frist_name")
            .unwrap_err()
            .contains("profile.frist_name"));
        assert!(schema.check("event.name").is_err());
        assert!(schema
            .check("first_name")
            .unwrap_err()
            .contains("variables live under"));
        assert!(
            schema.check("profile.first").is_err(),
            "a string prefix is not a path prefix"
        );
    }
}

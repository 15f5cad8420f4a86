//! Dotted attribute paths (`address.city`) inside a profile's JSON attributes.

use serde_json::{Map, Value};

/// The value at a dotted path, if present.
pub fn lookup_path<'m>(profile: &'m Map<String, Value>, path: &str) -> Option<&'m Value> {
    let mut keys = path.split('.');
    let mut current = profile.get(keys.next()?)?;
    for key in keys {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

/// Sets the value at a dotted path, creating (or replacing non-object) parents.
pub fn set_path(profile: &mut Map<String, Value>, path: &str, value: Value) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop() else {
        return;
    };
    let mut current = profile;
    for key in keys {
        let slot = current
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        current = next;
    }
    current.insert(last.to_owned(), value);
}

/// Removes the value at a dotted path (parents stay).
pub fn remove_path(profile: &mut Map<String, Value>, path: &str) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop() else {
        return;
    };
    let mut current = profile;
    for key in keys {
        match current.get_mut(key) {
            Some(Value::Object(next)) => current = next,
            _ => return,
        }
    }
    current.remove(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_lookup_and_remove_nested_paths() {
        let mut profile = Map::new();
        set_path(&mut profile, "loyalty.tier", json!("gold"));
        set_path(&mut profile, "points", json!(10));
        assert_eq!(lookup_path(&profile, "loyalty.tier"), Some(&json!("gold")));
        assert_eq!(lookup_path(&profile, "points"), Some(&json!(10)));
        assert_eq!(lookup_path(&profile, "points.x"), None);
        remove_path(&mut profile, "loyalty.tier");
        assert_eq!(lookup_path(&profile, "loyalty.tier"), None);
        assert_eq!(Value::Object(profile), json!({"loyalty": {}, "points": 10}));
    }
}

//! Journey ids as 4-byte numbers: a profile's entry history names its journey by a [`JourneyName`],
//! the position of the id text in a process-wide list, instead of an `Arc<str>` (a 16-byte fat
//! pointer). Millions of profiles keep one history record per journey, so the record shrinks from
//! 40 to 24 bytes.
//!
//! The number is a memory representation only: it is never written (a name is serialized as its
//! text, and reading the text interns it), so checkpoints and traces do not depend on the order in
//! which names were first seen, and apply stays a deterministic function of the log. Equal numbers
//! mean equal texts. The list only grows, by one entry per distinct journey id ever seen.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// An interned journey id (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JourneyName(u32);

#[derive(Default)]
struct Names {
    numbers: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

fn names() -> &'static RwLock<Names> {
    static NAMES: OnceLock<RwLock<Names>> = OnceLock::new();
    NAMES.get_or_init(RwLock::default)
}

impl JourneyName {
    /// The number of this text, given on first sight.
    pub fn intern(text: &str) -> JourneyName {
        if let Some(name) = JourneyName::lookup(text) {
            return name;
        }
        let mut names = names().write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&number) = names.numbers.get(text) {
            return JourneyName(number);
        }
        let number = u32::try_from(names.texts.len())
            .expect("fewer than 2^32 distinct journey ids in one process");
        let text: Arc<str> = text.into();
        names.texts.push(text.clone());
        names.numbers.insert(text, number);
        JourneyName(number)
    }

    /// The number of this text if it was ever interned (a name never seen has no history).
    pub fn lookup(text: &str) -> Option<JourneyName> {
        let names = names().read().unwrap_or_else(PoisonError::into_inner);
        names.numbers.get(text).copied().map(JourneyName)
    }

    /// The journey id.
    pub fn text(self) -> Arc<str> {
        let names = names().read().unwrap_or_else(PoisonError::into_inner);
        // Numbers are only made by `intern`, which pushes the text first.
        names.texts[self.0 as usize].clone()
    }
}

impl From<&str> for JourneyName {
    fn from(text: &str) -> JourneyName {
        JourneyName::intern(text)
    }
}

impl fmt::Display for JourneyName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text())
    }
}

impl fmt::Debug for JourneyName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text(), formatter)
    }
}

impl Serialize for JourneyName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for JourneyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JourneyName;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a journey id")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<JourneyName, E> {
                Ok(JourneyName::intern(text))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_four_bytes_and_reads_and_writes_as_its_text() {
        assert_eq!(std::mem::size_of::<JourneyName>(), 4);
        let welcome = JourneyName::intern("journey-name-test-welcome");
        assert_eq!(JourneyName::intern("journey-name-test-welcome"), welcome);
        assert_ne!(JourneyName::intern("journey-name-test-other"), welcome);
        assert_eq!(
            JourneyName::lookup("journey-name-test-welcome"),
            Some(welcome)
        );
        assert_eq!(JourneyName::lookup("journey-name-test-never-seen"), None);
        assert_eq!(&*welcome.text(), "journey-name-test-welcome");
        let text = serde_json::to_string(&welcome).expect("json");
        assert_eq!(text, r#""journey-name-test-welcome""#);
        assert_eq!(
            serde_json::from_str::<JourneyName>(&text).ok(),
            Some(welcome)
        );
        let bytes = postcard::to_allocvec(&welcome).expect("postcard");
        assert_eq!(
            postcard::from_bytes::<JourneyName>(&bytes).ok(),
            Some(welcome)
        );
    }
}

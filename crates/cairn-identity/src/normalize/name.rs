//! Name normalization: folded text (case, accents, punctuation) and, optionally, nicknames replaced
//! by the formal name (Bill → William) from the built-in table and the ruleset's own pairs.

use super::nicknames::BUILT_IN_NICKNAMES;
use super::text::fold_text;
use super::NormalizationOptions;
use std::collections::HashMap;

/// Nickname → formal name, per token.
#[derive(Debug, Clone, Default)]
pub struct NicknameTable {
    formal_by_nickname: HashMap<String, String>,
}

impl NicknameTable {
    /// The table the options ask for: the built-in pairs if `nicknames` is on, plus the extra pairs.
    pub fn from_options(options: &NormalizationOptions) -> NicknameTable {
        let mut formal_by_nickname = HashMap::new();
        if options.nicknames {
            for (nickname, formal) in BUILT_IN_NICKNAMES {
                formal_by_nickname.insert((*nickname).to_string(), (*formal).to_string());
            }
        }
        for (nickname, formal) in &options.nickname_table {
            formal_by_nickname.insert(fold_text(nickname), fold_text(formal));
        }
        NicknameTable { formal_by_nickname }
    }

    pub fn is_empty(&self) -> bool {
        self.formal_by_nickname.is_empty()
    }

    fn formal<'a>(&'a self, token: &'a str) -> &'a str {
        self.formal_by_nickname
            .get(token)
            .map_or(token, String::as_str)
    }
}

/// Normalizes a name; with a non-empty table every token that is a nickname becomes the formal name.
pub fn normalize_name(name: &str, nicknames: &NicknameTable) -> String {
    let folded = fold_text(name);
    if nicknames.is_empty() {
        return folded;
    }
    folded
        .split(' ')
        .map(|token| nicknames.formal(token))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_become_formal_names_only_when_asked() {
        let plain = NicknameTable::default();
        assert_eq!(normalize_name(" Bill ", &plain), "bill");
        let table = NicknameTable::from_options(&NormalizationOptions {
            nicknames: true,
            ..NormalizationOptions::default()
        });
        assert_eq!(normalize_name("Bill", &table), "william");
        assert_eq!(normalize_name("PEGGY", &table), "margaret");
        assert_eq!(normalize_name("José", &table), "jose");
        // Idempotent: the formal name is never a nickname of another name.
        assert_eq!(normalize_name("william", &table), "william");
    }

    #[test]
    fn extra_pairs_apply_without_the_built_in_table() {
        let mut options = NormalizationOptions::default();
        options
            .nickname_table
            .insert("Kalle".to_string(), "Karl".to_string());
        let table = NicknameTable::from_options(&options);
        assert_eq!(normalize_name("kalle", &table), "karl");
        assert_eq!(normalize_name("bill", &table), "bill");
    }

    #[test]
    fn built_in_formal_names_are_not_nicknames() {
        for (_, formal) in BUILT_IN_NICKNAMES {
            assert!(
                !BUILT_IN_NICKNAMES
                    .iter()
                    .any(|(nickname, _)| nickname == formal),
                "{formal} is both a formal name and a nickname"
            );
        }
    }
}

//! Text folding shared by the name and address normalizers: Unicode compatibility decomposition,
//! accents removed, lower case, punctuation to spaces, whitespace collapsed.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Folds text for comparison: `"  Müller-Lüdenscheidt, Straße "` → `"muller ludenscheidt strasse"`.
pub fn fold_text(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let mut pending_space = false;
    for character in text.nfkd() {
        if is_combining_mark(character) {
            continue;
        }
        let replacement: &str = match character {
            'ß' => "ss",
            'æ' | 'Æ' => "ae",
            'ø' | 'Ø' => "o",
            'œ' | 'Œ' => "oe",
            'ł' | 'Ł' => "l",
            'đ' | 'Đ' => "d",
            'þ' | 'Þ' => "th",
            _ => "",
        };
        if !replacement.is_empty() {
            if pending_space && !folded.is_empty() {
                folded.push(' ');
            }
            pending_space = false;
            folded.push_str(replacement);
            continue;
        }
        if character.is_alphanumeric() {
            if pending_space && !folded.is_empty() {
                folded.push(' ');
            }
            pending_space = false;
            folded.extend(character.to_lowercase());
        } else if character == '\'' || character == '’' {
            // O'Brien and O’Brien compare as obrien.
        } else {
            pending_space = true;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(fold_text("  José  GARCÍA "), "jose garcia");
        assert_eq!(
            fold_text("Müller-Lüdenscheidt, Straße"),
            "muller ludenscheidt strasse"
        );
        assert_eq!(fold_text("O'Brien"), "obrien");
        assert_eq!(fold_text("Søren Ærø"), "soren aero");
        assert_eq!(fold_text("..."), "");
    }

    proptest! {
        #[test]
        fn folding_is_idempotent(text in "\\PC{0,40}") {
            let once = fold_text(&text);
            prop_assert_eq!(fold_text(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
        }
    }
}

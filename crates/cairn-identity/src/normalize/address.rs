//! Postal address normalization: folded text with common abbreviations expanded (St → street,
//! Rd → road, Str./Straße → strasse, …) so that "12 High St." and "12 high street" compare equal;
//! postcodes upper case without spaces or punctuation.

use super::text::fold_text;

/// Abbreviation → full word, applied per token after folding.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("st", "street"),
    ("str", "strasse"),
    ("rd", "road"),
    ("ave", "avenue"),
    ("av", "avenue"),
    ("dr", "drive"),
    ("ln", "lane"),
    ("ct", "court"),
    ("crt", "court"),
    ("pl", "place"),
    ("cres", "crescent"),
    ("cr", "crescent"),
    ("blvd", "boulevard"),
    ("hwy", "highway"),
    ("pde", "parade"),
    ("tce", "terrace"),
    ("cct", "circuit"),
    ("cl", "close"),
    ("sq", "square"),
    ("pkwy", "parkway"),
    ("apt", "apartment"),
    ("ste", "suite"),
    ("fl", "floor"),
    ("bldg", "building"),
    ("mt", "mount"),
    ("n", "north"),
    ("s", "south"),
    ("e", "east"),
    ("w", "west"),
    ("pl.", "place"),
    ("ch", "chemin"),
    ("bd", "boulevard"),
];

/// Normalizes an address line (or a whole address).
pub fn normalize_address_line(line: &str) -> String {
    let folded = fold_text(line);
    let mut normalized = String::with_capacity(folded.len() + 8);
    for token in folded.split(' ').filter(|token| !token.is_empty()) {
        if !normalized.is_empty() {
            normalized.push(' ');
        }
        normalized.push_str(&expand_token(token));
    }
    normalized
}

fn expand_token(token: &str) -> String {
    if let Some((_, full)) = ABBREVIATIONS
        .iter()
        .find(|(abbreviation, _)| *abbreviation == token)
    {
        return (*full).to_string();
    }
    // German compounds: "hauptstr" → "hauptstrasse" (the fold already turned ß into ss).
    if token.len() > 3 && token.ends_with("str") && !token.ends_with("strasse") {
        return format!("{token}asse");
    }
    token.to_string()
}

/// Normalizes a postcode: upper case, letters and digits only.
pub fn normalize_postcode(postcode: &str) -> String {
    fold_text(postcode)
        .chars()
        .filter(|character| character.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn abbreviations_meet_their_full_form() {
        assert_eq!(normalize_address_line("12 High St."), "12 high street");
        assert_eq!(normalize_address_line("12, HIGH STREET"), "12 high street");
        assert_eq!(normalize_address_line("Hauptstr. 5"), "hauptstrasse 5");
        assert_eq!(normalize_address_line("Hauptstraße 5"), "hauptstrasse 5");
        assert_eq!(normalize_address_line("Haupt Str 5"), "haupt strasse 5");
        assert_eq!(
            normalize_address_line("4 N. Main Ave"),
            "4 north main avenue"
        );
    }

    #[test]
    fn postcodes_lose_spacing_and_case() {
        assert_eq!(normalize_postcode("sw1a 1aa"), "SW1A1AA");
        assert_eq!(normalize_postcode(" 10115 "), "10115");
    }

    proptest! {
        #[test]
        fn address_normalization_is_idempotent(line in "[A-Za-z0-9 .,ßü-]{0,40}") {
            let once = normalize_address_line(&line);
            prop_assert_eq!(normalize_address_line(&once), once.clone());
            let postcode = normalize_postcode(&line);
            prop_assert_eq!(normalize_postcode(&postcode), postcode);
        }
    }
}

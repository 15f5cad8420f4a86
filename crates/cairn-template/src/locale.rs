//! Locale tags: normalization, the fallback chain a render follows (`fr-CA` → `fr` → the template's
//! default), and the mapping onto glibc locale data (month names, separators, currency layout) from
//! `pure-rust-locales`, the data chrono's localized formatting uses.

use pure_rust_locales::Locale;

/// `fr_ca`, `FR-CA` → `fr-CA`; `EN` → `en`. Returns `None` for tags that are not `lang[-REGION]` made
/// of ASCII letters (2–3) and letters/digits (2–3).
pub fn normalize(tag: &str) -> Option<String> {
    let mut pieces = tag.trim().split(['-', '_']);
    let language = pieces.next()?.to_ascii_lowercase();
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    match (pieces.next(), pieces.next()) {
        (None, _) => Some(language),
        (Some(region), None)
            if (2..=3).contains(&region.len())
                && region.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Some(format!("{language}-{}", region.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// The variants to try for `requested`, most specific first, ending with `default_locale`.
pub fn fallback_chain(requested: Option<&str>, default_locale: &str) -> Vec<String> {
    let mut chain = Vec::with_capacity(3);
    if let Some(tag) = requested.and_then(normalize) {
        if let Some((language, _)) = tag.split_once('-') {
            let language = language.to_owned();
            chain.push(tag);
            chain.push(language);
        } else {
            chain.push(tag);
        }
    }
    let default = normalize(default_locale).unwrap_or_else(|| default_locale.to_owned());
    if !chain.contains(&default) {
        chain.push(default);
    }
    chain
}

/// The glibc locale for a tag: `fr-CA` → `fr_CA`, `fr` → `fr_FR`, `en` → `en_US`; `POSIX` when unknown.
pub fn data_locale(tag: &str) -> Locale {
    let Some(tag) = normalize(tag) else {
        return Locale::POSIX;
    };
    let candidates: Vec<String> = match tag.split_once('-') {
        Some((language, region)) => vec![format!("{language}_{region}"), default_region(language)],
        None => vec![default_region(&tag)],
    };
    candidates
        .iter()
        .find_map(|name| Locale::try_from(name.as_str()).ok())
        .unwrap_or(Locale::POSIX)
}

fn default_region(language: &str) -> String {
    match language {
        "en" => "en_US".into(),
        "ja" => "ja_JP".into(),
        "zh" => "zh_CN".into(),
        "ko" => "ko_KR".into(),
        "sv" => "sv_SE".into(),
        "da" => "da_DK".into(),
        "cs" => "cs_CZ".into(),
        "el" => "el_GR".into(),
        "nb" => "nb_NO".into(),
        "uk" => "uk_UA".into(),
        "pt" => "pt_BR".into(),
        other => format!("{other}_{}", other.to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_and_chains() {
        assert_eq!(normalize("fr_ca").as_deref(), Some("fr-CA"));
        assert_eq!(normalize("EN").as_deref(), Some("en"));
        assert_eq!(normalize("e"), None);
        assert_eq!(normalize("en-US-x"), None);
        assert_eq!(fallback_chain(Some("fr_CA"), "en"), ["fr-CA", "fr", "en"]);
        assert_eq!(fallback_chain(Some("en"), "en"), ["en"]);
        assert_eq!(fallback_chain(None, "de"), ["de"]);
        assert_eq!(fallback_chain(Some("???"), "de"), ["de"]);
    }

    #[test]
    fn maps_to_locale_data() {
        assert_eq!(data_locale("fr-CA"), Locale::fr_CA);
        assert_eq!(data_locale("fr"), Locale::fr_FR);
        assert_eq!(data_locale("en"), Locale::en_US);
        assert_eq!(data_locale("de-XX"), Locale::de_DE);
        assert_eq!(data_locale("xx"), Locale::POSIX);
    }

    proptest! {
        #[test]
        fn never_panics(tag in "\\PC{0,12}") {
            let _ = fallback_chain(Some(&tag), "en");
            let _ = data_locale(&tag);
        }
    }
}

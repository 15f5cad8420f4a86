//! Email normalization: trimmed, lower case; optionally the providers' rules (Gmail ignores dots
//! and `+tags`) or `+tag` removal for every domain.

use super::NormalizationOptions;

const DOT_INSENSITIVE_DOMAINS: &[&str] = &["gmail.com", "googlemail.com"];
const PLUS_TAG_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "icloud.com",
    "me.com",
    "fastmail.com",
    "protonmail.com",
    "proton.me",
];

/// Normalizes an email address; text without exactly one `@` is only trimmed and lower-cased.
pub fn normalize_email(email: &str, options: &NormalizationOptions) -> String {
    let lowered = email.trim().to_lowercase();
    let Some((local, domain)) = lowered.rsplit_once('@') else {
        return lowered;
    };
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return lowered;
    }
    let domain = if domain == "googlemail.com" && options.email_provider_rules {
        "gmail.com"
    } else {
        domain
    };
    let mut local = local.to_string();
    let strips_tag = options.strip_plus_tags
        || (options.email_provider_rules && PLUS_TAG_DOMAINS.contains(&domain));
    if strips_tag {
        if let Some(plus) = local.find('+') {
            if plus > 0 {
                local.truncate(plus);
            }
        }
    }
    if options.email_provider_rules && DOT_INSENSITIVE_DOMAINS.contains(&domain) {
        local.retain(|character| character != '.');
    }
    format!("{local}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_provider_rules() -> NormalizationOptions {
        NormalizationOptions {
            email_provider_rules: true,
            ..NormalizationOptions::default()
        }
    }

    #[test]
    fn case_and_whitespace() {
        let plain = NormalizationOptions::default();
        assert_eq!(
            normalize_email("  Ann.Lee@Example.ORG ", &plain),
            "ann.lee@example.org"
        );
        assert_eq!(
            normalize_email("a.b+x@gmail.com", &plain),
            "a.b+x@gmail.com"
        );
    }

    #[test]
    fn provider_rules() {
        let rules = with_provider_rules();
        assert_eq!(
            normalize_email("A.Nn.Lee+shop@gmail.com", &rules),
            "annlee@gmail.com"
        );
        assert_eq!(
            normalize_email("ann.lee@googlemail.com", &rules),
            "annlee@gmail.com"
        );
        assert_eq!(
            normalize_email("ann.lee+x@outlook.com", &rules),
            "ann.lee@outlook.com"
        );
        assert_eq!(
            normalize_email("ann.lee+x@corp.com", &rules),
            "ann.lee+x@corp.com"
        );
        let everywhere = NormalizationOptions {
            strip_plus_tags: true,
            ..NormalizationOptions::default()
        };
        assert_eq!(
            normalize_email("ann+x@corp.com", &everywhere),
            "ann@corp.com"
        );
        assert_eq!(normalize_email("+x@corp.com", &everywhere), "+x@corp.com");
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent(local in "[A-Za-z0-9.+]{0,12}", domain in "(gmail|corp|Outlook)\\.com") {
            let options = with_provider_rules();
            let once = normalize_email(&format!("{local}@{domain}"), &options);
            prop_assert_eq!(normalize_email(&once, &options), once);
        }
    }
}

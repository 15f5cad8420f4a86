//! Inbound SMS keywords (the carrier-standard list Twilio also honours): STOP and its synonyms opt
//! out, START opts back in, HELP asks for help. The whole message must be the keyword, in any case,
//! with surrounding whitespace and trailing punctuation ignored ("Stop.", " stop ") — "stop sending
//! me pizza deals" is a normal reply, as carriers treat it.

/// A recognised keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKeyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE.
    OptOut,
    /// START, YES, UNSTOP.
    OptIn,
    /// HELP, INFO.
    Help,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
];
const OPT_IN: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// The keyword `body` is, if any.
pub fn parse_sms_keyword(body: &str) -> Option<SmsKeyword> {
    let word = body.trim().trim_end_matches(['.', '!', '?']).trim();
    if word.len() > 16 {
        return None;
    }
    let upper = word.to_ascii_uppercase();
    let matches = |list: &[&str]| list.contains(&upper.as_str());
    if matches(OPT_OUT) {
        Some(SmsKeyword::OptOut)
    } else if matches(OPT_IN) {
        Some(SmsKeyword::OptIn)
    } else if matches(HELP) {
        Some(SmsKeyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keywords_in_any_case_with_punctuation() {
        for stop in [
            "STOP",
            "stop",
            " Stop. ",
            "STOPALL",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT!",
        ] {
            assert_eq!(parse_sms_keyword(stop), Some(SmsKeyword::OptOut), "{stop}");
        }
        for start in ["START", "yes", "Unstop"] {
            assert_eq!(parse_sms_keyword(start), Some(SmsKeyword::OptIn), "{start}");
        }
        assert_eq!(parse_sms_keyword("help?"), Some(SmsKeyword::Help));
        for other in ["stop sending me deals", "STOPP", "", "yes please", "ST OP"] {
            assert_eq!(parse_sms_keyword(other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(body in "\\PC{0,40}") {
            let _ = parse_sms_keyword(&body);
        }

        #[test]
        fn padding_and_case_do_not_matter(index in 0usize..8, pad in "[ \t\n]{0,3}", lower in any::<bool>()) {
            let keyword = OPT_OUT[index];
            let word = if lower { keyword.to_lowercase() } else { keyword.to_owned() };
            prop_assert_eq!(parse_sms_keyword(&format!("{pad}{word}{pad}")), Some(SmsKeyword::OptOut));
        }
    }
}

//! Recipient checks that need no provider: E.164 phone numbers.

use crate::DeliveryError;

/// Checks `+` followed by 2 to 15 digits, the first not 0 (ITU-T E.164). Formatting characters
/// (spaces, dashes, brackets) are not accepted: normalize numbers when they enter the profile.
pub fn validate_e164(number: &str) -> Result<(), DeliveryError> {
    let invalid = |reason| {
        Err(DeliveryError::InvalidRecipient {
            value: number.to_owned(),
            reason,
        })
    };
    let Some(digits) = number.strip_prefix('+') else {
        return invalid("a phone number must be in E.164 form, starting with +");
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("an E.164 number has only digits after the +");
    }
    if !(2..=15).contains(&digits.len()) {
        return invalid("an E.164 number has 2 to 15 digits");
    }
    if digits.starts_with('0') {
        return invalid("an E.164 country code does not start with 0");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_e164_and_refuses_the_rest() {
        assert!(validate_e164("+14155550100").is_ok());
        assert!(validate_e164("+447911123456").is_ok());
        for bad in [
            "",
            "+",
            "14155550100",
            "+1 415 555 0100",
            "+0123456",
            "+1234567890123456",
            "+1415abc",
            "++1415",
        ] {
            assert!(validate_e164(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_plus_digits(number in ".{0,20}") {
            if validate_e164(&number).is_ok() {
                prop_assert!(number.starts_with('+') && number[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}

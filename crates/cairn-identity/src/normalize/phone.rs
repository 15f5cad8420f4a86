//! Phone normalization to E.164 with the `phonenumber` crate (libphonenumber's rules and metadata).
//! A number without a country code is read in the source's default region. Text that is not a
//! viable number falls back to its digits (so `555-0100` and `5550100` still compare equal).

/// Normalizes a phone number: E.164 (`+442079460000`) when it parses, otherwise its digits.
pub fn normalize_phone(phone: &str, default_region: Option<phonenumber::country::Id>) -> String {
    let trimmed = phone.trim();
    if let Ok(number) = phonenumber::parse(default_region, trimmed) {
        if number.is_valid() {
            return number.format().mode(phonenumber::Mode::E164).to_string();
        }
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with('+') && !digits.is_empty() {
        format!("+{digits}")
    } else {
        digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn national_and_international_forms_meet_in_e164() {
        let gb = Some(Id::GB);
        assert_eq!(normalize_phone("020 7946 0018", gb), "+442079460018");
        assert_eq!(
            normalize_phone("+44 (0)20 7946 0018", None),
            "+442079460018"
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0018", Some(Id::US)),
            "+442079460018"
        );
        assert_eq!(
            normalize_phone("(415) 555-2671", Some(Id::US)),
            "+14155552671"
        );
        assert_eq!(normalize_phone("030 901820", Some(Id::DE)), "+4930901820");
    }

    #[test]
    fn invalid_numbers_fall_back_to_digits() {
        assert_eq!(normalize_phone("12-34", None), "1234");
        assert_eq!(normalize_phone("n/a", None), "");
        let once = normalize_phone("12-34", None);
        assert_eq!(normalize_phone(&once, None), once);
    }
}

//! Masking of personal data in `Debug` and `Display`, so that a row or an error written to a log
//! never shows a full ID number or name. Same shape as the domain's `ResidentId::masked`
//! (`110105********002X`), re-implemented because the store keeps rows primitive and does not
//! depend on the domain crate.

/// An ID number with everything but the first 6 and last 4 characters hidden; a value too short
/// to keep both ends is hidden entirely.
pub(crate) fn mask_certno(certno: &str) -> String {
    let count = certno.chars().count();
    if count <= 10 {
        return "*".repeat(count);
    }
    let head: String = certno.chars().take(6).collect();
    let tail: String = certno.chars().skip(count - 4).collect();
    format!("{head}{}{tail}", "*".repeat(count - 10))
}

/// An account name with the person part masked: `person:<certno>` shows the masked number, other
/// accounts (`transit:…`, `bank:…`) are not personal and show in full.
pub(crate) fn mask_account(account: &str) -> String {
    match account.strip_prefix(PERSON_PREFIX) {
        Some(certno) => format!("{PERSON_PREFIX}{}", mask_certno(certno)),
        None => account.to_owned(),
    }
}

/// A name with only its first character shown (`张三丰` → `张**`).
pub(crate) fn mask_name(name: &str) -> String {
    let mut characters = name.trim().chars();
    match characters.next() {
        Some(first) => {
            let rest = characters.count();
            if rest == 0 {
                "*".to_owned()
            } else {
                format!("{first}{}", "*".repeat(rest))
            }
        }
        None => String::new(),
    }
}

/// Accounts whose id starts with this belong to a person and may never go negative.
pub(crate) const PERSON_PREFIX: &str = "person:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_number_keeps_only_its_region_and_last_four() {
        assert_eq!(mask_certno("11010519491231002X"), "110105********002X");
        assert_eq!(mask_certno("1234567890"), "**********");
        assert_eq!(mask_certno(""), "");
    }

    #[test]
    fn only_person_accounts_are_masked() {
        assert_eq!(
            mask_account("person:11010519491231002X"),
            "person:110105********002X"
        );
        assert_eq!(mask_account("transit:150100"), "transit:150100");
    }

    #[test]
    fn a_name_keeps_its_first_character() {
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name(" "), "");
    }
}

//! What a person must give when applying for a transfer (DOMAIN.md, "The transfer" step 2, and
//! "Where the balance goes": a balance paid out goes to the person's own bank account), and the
//! rule that personal data never appears unmasked in logs: a [`BankAccount`]'s `Debug` output
//! masks the account number and the holder's name.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::mask_name;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 50;

/// The fewest digits in a bank account number.
pub const MIN_ACCOUNT_DIGITS: usize = 12;

/// The most digits in a bank account number.
pub const MAX_ACCOUNT_DIGITS: usize = 30;

/// How many trailing digits of an account number stay visible when masked.
const VISIBLE_ACCOUNT_DIGITS: usize = 4;

/// How the person applied (DOMAIN.md, "The transfer" step 2: online or at a counter). Some
/// regions review an online application faster than one made at a counter
/// ([`crate::policy::ReviewTime`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationChannel {
    /// Online: the national app or a bureau's website. The default where a sender did not say.
    #[default]
    Online,
    /// At a bureau's counter (窗口).
    Counter,
}

/// A rule an application broke, naming the field as the contract does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ApplicationError {
    /// The field, as the contract names it (e.g. `bank_account.account_number`).
    pub field: &'static str,
    /// The rule it broke, for the person.
    pub rule: String,
}

impl ApplicationError {
    fn new(field: &'static str, rule: &str) -> Self {
        Self {
            field,
            rule: rule.to_owned(),
        }
    }
}

/// The longest bank name accepted, in characters.
pub const MAX_BANK_NAME_CHARS: usize = 100;

/// The name rule: a name is required (not blank), at most [`MAX_NAME_CHARS`] characters, and
/// has no control characters. Breaking it names the field `psn_name`.
pub fn check_name(name: &str) -> Result<(), ApplicationError> {
    if !is_text(name, MAX_NAME_CHARS) {
        return Err(ApplicationError::new(
            "psn_name",
            "required, at most 50 characters, no control characters",
        ));
    }
    Ok(())
}

/// A payout goes to the applicant's own account (划入本人银行账户): the holder must be the
/// person named in the application. Breaking it names `bank_account.account_holder_name`.
pub fn check_payout_account(
    account: &BankAccount,
    applicant: &str,
) -> Result<(), ApplicationError> {
    if account.account_holder_name.trim() != applicant.trim() {
        return Err(ApplicationError::new(
            "bank_account.account_holder_name",
            "must be the applicant named in psn_name: payouts go to the person's own account",
        ));
    }
    Ok(())
}

/// Text a person gives: not blank, at most `max_chars` characters, no control characters.
fn is_text(text: &str, max_chars: usize) -> bool {
    !text.trim().is_empty()
        && text.chars().count() <= max_chars
        && !text.chars().any(char::is_control)
}

/// A bank account for payouts. Stored in transfer documents with the field names `bank_name`,
/// `account_number` and `account_holder_name`. Its `Debug` output masks the account number
/// (only the last 4 digits stay) and the holder's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    /// The bank.
    pub bank_name: String,
    /// The account number (unmasked: never log it; see [`BankAccount::masked_number`]).
    pub account_number: String,
    /// The holder's name (unmasked: never log it).
    pub account_holder_name: String,
}

impl BankAccount {
    /// A validated bank account. The account number, with surrounding white space removed (and
    /// stored so), must be 12 to 30 ASCII digits, else the field `bank_account.account_number`
    /// is named; a blank bank name names `bank_account.bank_name`.
    pub fn new(
        bank_name: &str,
        account_number: &str,
        account_holder_name: &str,
    ) -> Result<BankAccount, ApplicationError> {
        let number = account_number.trim();
        let digits_ok = (MIN_ACCOUNT_DIGITS..=MAX_ACCOUNT_DIGITS).contains(&number.len())
            && number.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok {
            return Err(ApplicationError::new(
                "bank_account.account_number",
                "must be 12 to 30 digits",
            ));
        }
        if !is_text(bank_name, MAX_BANK_NAME_CHARS) {
            return Err(ApplicationError::new(
                "bank_account.bank_name",
                "required when a bank account is given, at most 100 characters, no control \
                 characters",
            ));
        }
        if !is_text(account_holder_name, MAX_NAME_CHARS) {
            return Err(ApplicationError::new(
                "bank_account.account_holder_name",
                "required, at most 50 characters, no control characters",
            ));
        }
        Ok(BankAccount {
            bank_name: bank_name.to_owned(),
            account_number: number.to_owned(),
            account_holder_name: account_holder_name.to_owned(),
        })
    }

    /// The account number with every character but the last 4 replaced by `*`
    /// (`6222020200112233` → `************2233`); a number of 4 characters or fewer is masked
    /// entirely.
    pub fn masked_number(&self) -> String {
        let count = self.account_number.chars().count();
        let hidden = if count > VISIBLE_ACCOUNT_DIGITS {
            count - VISIBLE_ACCOUNT_DIGITS
        } else {
            count
        };
        self.account_number
            .chars()
            .enumerate()
            .map(|(index, c)| if index < hidden { '*' } else { c })
            .collect()
    }
}

impl fmt::Debug for BankAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankAccount")
            .field("bank_name", &self.bank_name)
            .field("account_number", &self.masked_number())
            .field("account_holder_name", &mask_name(&self.account_holder_name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_required_and_at_most_fifty_characters() {
        assert_eq!(check_name("张三"), Ok(()));
        assert_eq!(check_name(&"张".repeat(50)), Ok(()));
        for bad in ["", "   ", &"张".repeat(51)] {
            let error = check_name(bad).unwrap_err();
            assert_eq!(error.field, "psn_name");
            assert_eq!(
                error.to_string(),
                "psn_name: required, at most 50 characters, no control characters"
            );
        }
    }

    #[test]
    fn a_bank_account_number_is_twelve_to_thirty_digits() {
        let account = BankAccount::new("中国银行", " 622202020011 ", "张三").unwrap();
        assert_eq!(account.account_number, "622202020011");
        assert!(BankAccount::new("中国银行", &"1".repeat(30), "张三").is_ok());
        for bad in [
            "62220202001",
            &"1".repeat(31),
            "62220202001x",
            "",
            "６２２２０２０２００１１",
        ] {
            let error = BankAccount::new("中国银行", bad, "张三").unwrap_err();
            assert_eq!(
                error,
                ApplicationError {
                    field: "bank_account.account_number",
                    rule: "must be 12 to 30 digits".to_owned(),
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bank_account_names_its_bank() {
        let error = BankAccount::new("  ", "622202020011", "张三").unwrap_err();
        assert_eq!(error.field, "bank_account.bank_name");
        assert_eq!(
            error.rule,
            "required when a bank account is given, at most 100 characters, no control characters"
        );
        // The number is checked first.
        let error = BankAccount::new("", "1", "张三").unwrap_err();
        assert_eq!(error.field, "bank_account.account_number");
    }

    #[test]
    fn a_bank_account_never_shows_its_number_or_holder_in_debug_output() {
        let account = BankAccount::new("中国银行", "6222020200112233", "张三丰").unwrap();
        assert_eq!(account.masked_number(), "************2233");
        let debug = format!("{account:?}");
        assert!(!debug.contains("6222020200112233"), "{debug}");
        assert!(!debug.contains("张三丰"), "{debug}");
        assert!(
            debug.contains("************2233") && debug.contains("张**"),
            "{debug}"
        );
        let short = BankAccount {
            account_number: "1234".to_owned(),
            ..account
        };
        assert_eq!(short.masked_number(), "****");
    }

    #[test]
    fn a_bank_account_is_stored_with_the_contracts_field_names() {
        let account = BankAccount::new("中国银行", "622202020011", "张三").unwrap();
        let text = serde_json::to_string(&account).unwrap();
        assert_eq!(
            text,
            r#"{"bank_name":"中国银行","account_number":"622202020011","account_holder_name":"张三"}"#
        );
        let back: BankAccount = serde_json::from_str(&text).unwrap();
        assert_eq!(back, account);
    }

    #[test]
    fn a_name_with_a_control_character_is_refused() {
        assert!(check_name("张三").is_ok());
        for bad in ["张\u{0}三", "张三\n", "\u{7f}"] {
            let error = check_name(bad).expect_err("a control character");
            assert_eq!(error.field, "psn_name");
        }
    }

    #[test]
    fn a_payout_goes_to_the_applicants_own_account() {
        let account = BankAccount::new("ICBC", "6222020200112233", "张三").expect("valid");
        assert!(check_payout_account(&account, "张三").is_ok());
        let error = check_payout_account(&account, "李四").expect_err("someone else's account");
        assert_eq!(error.field, "bank_account.account_holder_name");
    }

    #[test]
    fn a_bank_account_needs_a_holder_and_text_fields_have_bounds() {
        let error = BankAccount::new("ICBC", "6222020200112233", " ").expect_err("no holder");
        assert_eq!(error.field, "bank_account.account_holder_name");
        let long = "银".repeat(MAX_BANK_NAME_CHARS + 1);
        let error = BankAccount::new(&long, "6222020200112233", "张三").expect_err("too long");
        assert_eq!(error.field, "bank_account.bank_name");
    }
}

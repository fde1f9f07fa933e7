//! Money: a non-negative amount of CNY with exactly two decimal places (元 and 分).
//!
//! Every amount in the system (personal-account balances, transfers, bank pay-outs) is a
//! [`Money`]. It is exact, never floating point; its text form is strict (`"1234.50"`), so a
//! value read from a message or a file is either exactly what was meant or refused with the rule
//! it broke. Arithmetic is checked: a result that would be negative or too large is `None`, never
//! a wrapped or clamped value, so the conservation invariant can be kept to the cent.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The largest amount, in cents: `999999999999.99` CNY.
const MAX_CENTS: u64 = 99_999_999_999_999;

/// The most digits the integer part of an amount may have.
const MAX_INTEGER_DIGITS: usize = 12;

/// A non-negative CNY amount with exactly two decimal places, at most `999999999999.99`.
///
/// Its text form (`Display`, serde) always has two places: `"0.00"`, `"1234.50"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Money(Decimal);

/// Why a text, a number of cents or a decimal is not an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text was empty.
    #[error("an amount must not be empty")]
    Empty,
    /// The text had a space, tab or other white space anywhere, including at either end.
    #[error("an amount must not contain white space")]
    Whitespace,
    /// The amount was below zero.
    #[error("an amount must not be negative")]
    Negative,
    /// The text started with `+`.
    #[error("an amount must not carry a sign")]
    PlusSign,
    /// The text used scientific notation such as `1e3`.
    #[error("an amount must not use an exponent")]
    Exponent,
    /// The text grouped digits with `,`, `_` or `'`.
    #[error("an amount must not contain thousands separators")]
    ThousandsSeparator,
    /// The text had no digit before the decimal point (`.5`).
    #[error("an amount must have at least one digit before the decimal point")]
    MissingIntegerDigits,
    /// The text had a decimal point with no digit after it (`5.`).
    #[error("an amount must have one or two digits after a decimal point")]
    MissingFractionDigits,
    /// The text or decimal had more than two decimal places.
    #[error("an amount must have at most two decimal places")]
    TooManyPlaces,
    /// The integer part had a leading zero (`007`); only a single `0` is allowed (`0.50`).
    #[error("an amount must not have leading zeros")]
    LeadingZero,
    /// The text had a character other than the digits `0`–`9` and one decimal point.
    #[error("an amount must contain only the digits 0-9 and one decimal point")]
    InvalidCharacter,
    /// The amount exceeded `999999999999.99`.
    #[error("an amount must not exceed 999999999999.99")]
    TooLarge,
}

impl Money {
    /// No money: `0.00`.
    pub const ZERO: Money = Money(decimal_from_cents(0));

    /// The largest amount: `999999999999.99`.
    pub const MAX: Money = Money(decimal_from_cents(MAX_CENTS));

    /// Parses the strict text form: ASCII digits, optionally a `.` and one or two more digits.
    ///
    /// Refused, each with the rule it breaks: empty text, white space, a sign, an exponent,
    /// thousands separators, `.5` and `5.`, more than two places, leading zeros (`007`; a single
    /// `0` before the point is fine), any other character, and amounts above [`Money::MAX`].
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        check_characters(text)?;
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        if integer.is_empty() {
            return Err(MoneyError::MissingIntegerDigits);
        }
        let fraction = match fraction {
            None => "",
            Some("") => return Err(MoneyError::MissingFractionDigits),
            Some(fraction) if fraction.contains('.') => return Err(MoneyError::InvalidCharacter),
            Some(fraction) if fraction.len() > 2 => return Err(MoneyError::TooManyPlaces),
            Some(fraction) => fraction,
        };
        if integer.len() > 1 && integer.starts_with('0') {
            return Err(MoneyError::LeadingZero);
        }
        if integer.len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::TooLarge);
        }
        let yuan = digits_value(integer);
        let fen = match fraction.len() {
            0 => 0,
            1 => digits_value(fraction) * 10,
            _ => digits_value(fraction),
        };
        Money::from_cents(yuan * 100 + fen)
    }

    /// The amount of this many cents (分), e.g. `from_cents(123_450)` is `1234.50`.
    pub fn from_cents(cents: u64) -> Result<Money, MoneyError> {
        if cents > MAX_CENTS {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(decimal_from_cents(cents)))
    }

    /// Like [`Money::from_cents`] for a signed count of cents, as stored in an `i64` column.
    pub fn from_signed_cents(cents: i64) -> Result<Money, MoneyError> {
        let cents = u64::try_from(cents).map_err(|_| MoneyError::Negative)?;
        Money::from_cents(cents)
    }

    /// Accepts a decimal that is non-negative, has at most two places once trailing zeros are
    /// dropped (`1.500` is fine, `1.505` is not) and does not exceed [`Money::MAX`].
    pub fn from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let mut value = value.normalize();
        if value.scale() > 2 {
            return Err(MoneyError::TooManyPlaces);
        }
        value.rescale(2);
        let cents = u64::try_from(value.mantissa()).map_err(|_| MoneyError::TooLarge)?;
        Money::from_cents(cents)
    }

    /// The amount as a decimal with exactly two places.
    pub fn to_decimal(self) -> Decimal {
        self.0
    }

    /// The amount in cents (分), e.g. `1234.50` is `123450`.
    pub fn cents(self) -> u64 {
        // Every constructor builds the decimal from cents with scale 2, so the mantissa is the
        // number of cents and lies in 0..=MAX_CENTS.
        u64::try_from(self.0.mantissa()).unwrap_or(0)
    }

    /// Whether this is `0.00`.
    pub fn is_zero(self) -> bool {
        self.cents() == 0
    }

    /// The sum, or `None` if it would exceed [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        let cents = self.cents().checked_add(other.cents())?;
        Money::from_cents(cents).ok()
    }

    /// The difference, or `None` if `other` is larger than `self` (money never goes negative).
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        let cents = self.cents().checked_sub(other.cents())?;
        Money::from_cents(cents).ok()
    }

    /// The sum of all amounts, or `None` if it would exceed [`Money::MAX`]. An empty sum is zero.
    pub fn checked_sum<I>(amounts: I) -> Option<Money>
    where
        I: IntoIterator<Item = Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, Money::checked_add)
    }

    /// The amount in Chinese capital numerals (大写金额) as written on certificates and
    /// vouchers: `1234.50` is `壹仟贰佰叁拾肆元伍角整`, `10.05` is `壹拾元零伍分`.
    ///
    /// The convention followed (where the rules allow a choice, the first form is used):
    /// - `整` follows an amount that ends at 元 or 角; nothing follows 分.
    /// - A run of zeros between non-zero digits is written as a single `零`, also across the
    ///   万 and 亿 boundaries (`100010000.00` is `壹亿零壹万元整`).
    /// - When 角 is zero and 分 is not, `零` stands before the 分 (`壹仟零肆元零柒分`).
    /// - A zero 元 digit before a non-zero 角 writes no `零` (`壹拾元伍角整`).
    /// - `拾` at the head of a number keeps its `壹` (`壹拾万元整`).
    /// - Amounts below one yuan start at the first non-zero unit (`伍分`); zero is `零元整`.
    pub fn to_chinese_capital(&self) -> String {
        let cents = self.cents();
        let yuan = cents / 100;
        let jiao = cents / 10 % 10;
        let fen = cents % 10;
        let mut text = String::new();
        if yuan > 0 {
            push_integer_capital(&mut text, yuan);
            text.push('元');
        }
        if jiao > 0 {
            text.push(capital_digit(jiao));
            text.push('角');
        }
        if fen > 0 {
            if yuan > 0 && jiao == 0 {
                text.push('零');
            }
            text.push(capital_digit(fen));
            text.push('分');
        } else {
            if text.is_empty() {
                text.push_str("零元");
            }
            text.push('整');
        }
        text
    }
}

/// A decimal of `cents / 100` with scale 2, built without any panicking constructor.
const fn decimal_from_cents(cents: u64) -> Decimal {
    // Splitting the 64-bit mantissa into the low and middle 32-bit words is the documented
    // layout of `Decimal::from_parts`; the truncating casts select the two words.
    Decimal::from_parts(cents as u32, (cents >> 32) as u32, 0, false, 2)
}

/// Checks the characters of a money text and names the first rule a character breaks.
fn check_characters(text: &str) -> Result<(), MoneyError> {
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(MoneyError::Whitespace);
    }
    if text.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    if text.starts_with('+') {
        return Err(MoneyError::PlusSign);
    }
    if text.contains(['e', 'E']) {
        return Err(MoneyError::Exponent);
    }
    if text.contains([',', '_', '\'', '，']) {
        return Err(MoneyError::ThousandsSeparator);
    }
    if !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(MoneyError::InvalidCharacter);
    }
    Ok(())
}

/// The value of a string of at most 12 ASCII digits (checked by the caller).
fn digits_value(digits: &str) -> u64 {
    digits
        .bytes()
        .fold(0, |value, digit| value * 10 + u64::from(digit - b'0'))
}

/// The capital numeral of one digit 0–9.
fn capital_digit(digit: u64) -> char {
    match digit {
        1 => '壹',
        2 => '贰',
        3 => '叁',
        4 => '肆',
        5 => '伍',
        6 => '陆',
        7 => '柒',
        8 => '捌',
        9 => '玖',
        _ => '零',
    }
}

/// Writes a positive whole number of yuan (below 10^12) in capital numerals, without `元`.
fn push_integer_capital(text: &mut String, yuan: u64) {
    // Digits from the most significant; position p counts from 0 at the units.
    let digits: Vec<u64> = (0..MAX_INTEGER_DIGITS as u32)
        .rev()
        .map(|power| yuan / 10u64.pow(power) % 10)
        .collect();
    let mut written_any = false;
    let mut zero_pending = false;
    let mut group_has_digit = false;
    for (index, digit) in digits.into_iter().enumerate() {
        let position = MAX_INTEGER_DIGITS - 1 - index;
        if digit == 0 {
            zero_pending = written_any;
        } else {
            if zero_pending {
                text.push('零');
                zero_pending = false;
            }
            text.push(capital_digit(digit));
            text.push_str(["", "拾", "佰", "仟"][position % 4]);
            written_any = true;
            group_has_digit = true;
        }
        if position.is_multiple_of(4) {
            if group_has_digit {
                text.push_str(["", "万", "亿"][position / 4]);
            }
            group_has_digit = false;
        }
    }
}

impl Default for Money {
    fn default() -> Self {
        Money::ZERO
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = self.cents();
        write!(f, "{}.{:02}", cents / 100, cents % 100)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Money::parse(text)
    }
}

impl TryFrom<String> for Money {
    type Error = MoneyError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Money::parse(&text)
    }
}

impl TryFrom<Decimal> for Money {
    type Error = MoneyError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Money::from_decimal(value)
    }
}

impl From<Money> for String {
    fn from(money: Money) -> Self {
        money.to_string()
    }
}

impl From<Money> for Decimal {
    fn from(money: Money) -> Self {
        money.to_decimal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn money(text: &str) -> Money {
        Money::parse(text).expect("a valid amount")
    }

    #[test]
    fn well_formed_amounts_parse_to_their_cents() {
        let cases = [
            ("0", 0),
            ("0.00", 0),
            ("0.5", 50),
            ("0.05", 5),
            ("7", 700),
            ("1234.5", 123_450),
            ("1234.50", 123_450),
            ("999999999999.99", MAX_CENTS),
            ("100000000", 10_000_000_000),
        ];
        for (text, cents) in cases {
            assert_eq!(Money::parse(text).map(Money::cents), Ok(cents), "{text}");
        }
    }

    #[test]
    fn malformed_amounts_are_refused_with_the_rule_they_break() {
        let cases = [
            ("", MoneyError::Empty),
            (" 1.00", MoneyError::Whitespace),
            ("1.00 ", MoneyError::Whitespace),
            ("1 000.00", MoneyError::Whitespace),
            ("-1.00", MoneyError::Negative),
            ("-0", MoneyError::Negative),
            ("+1.00", MoneyError::PlusSign),
            ("1e3", MoneyError::Exponent),
            ("1.5E2", MoneyError::Exponent),
            ("1,000.00", MoneyError::ThousandsSeparator),
            ("1_000", MoneyError::ThousandsSeparator),
            (".5", MoneyError::MissingIntegerDigits),
            ("5.", MoneyError::MissingFractionDigits),
            ("1.234", MoneyError::TooManyPlaces),
            ("0.001", MoneyError::TooManyPlaces),
            ("007", MoneyError::LeadingZero),
            ("00.50", MoneyError::LeadingZero),
            ("1.2.3", MoneyError::InvalidCharacter),
            ("12a", MoneyError::InvalidCharacter),
            ("１２", MoneyError::InvalidCharacter),
            ("¥12", MoneyError::InvalidCharacter),
            ("NaN", MoneyError::InvalidCharacter),
            ("1000000000000", MoneyError::TooLarge),
            ("1000000000000.00", MoneyError::TooLarge),
            ("99999999999999999999999999", MoneyError::TooLarge),
        ];
        for (text, error) in cases {
            assert_eq!(Money::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn every_error_message_names_the_rule() {
        assert_eq!(
            MoneyError::TooManyPlaces.to_string(),
            "an amount must have at most two decimal places"
        );
        assert_eq!(
            MoneyError::Negative.to_string(),
            "an amount must not be negative"
        );
    }

    #[test]
    fn amounts_always_render_with_two_places() {
        assert_eq!(money("1234.5").to_string(), "1234.50");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(money("0.05").to_string(), "0.05");
        assert_eq!(Money::MAX.to_string(), "999999999999.99");
        assert_eq!(format!("{:?}", money("3")), "Money(3.00)");
        assert_eq!(Money::default(), Money::ZERO);
    }

    #[test]
    fn cents_construct_amounts_up_to_the_maximum() {
        assert_eq!(Money::from_cents(123_450), Ok(money("1234.50")));
        assert_eq!(Money::from_cents(MAX_CENTS + 1), Err(MoneyError::TooLarge));
        assert_eq!(Money::from_signed_cents(-1), Err(MoneyError::Negative));
        assert_eq!(Money::from_signed_cents(5), Ok(money("0.05")));
    }

    #[test]
    fn decimals_convert_when_they_fit_the_rules() {
        assert_eq!(Money::from_decimal(Decimal::new(15, 1)), Ok(money("1.50")));
        assert_eq!(
            Money::from_decimal(Decimal::new(1500, 3)),
            Ok(money("1.50"))
        );
        assert_eq!(
            Money::from_decimal(Decimal::new(1505, 3)),
            Err(MoneyError::TooManyPlaces)
        );
        assert_eq!(
            Money::from_decimal(Decimal::new(-1, 2)),
            Err(MoneyError::Negative)
        );
        assert_eq!(Money::from_decimal(Decimal::new(-0, 2)), Ok(Money::ZERO));
        assert_eq!(Money::from_decimal(Decimal::MAX), Err(MoneyError::TooLarge));
        assert_eq!(money("1234.50").to_decimal(), Decimal::new(123_450, 2));
        assert_eq!(money("1234.50").to_decimal().to_string(), "1234.50");
    }

    #[test]
    fn arithmetic_never_goes_negative_or_past_the_maximum() {
        let one = money("1.00");
        assert_eq!(one.checked_add(money("0.50")), Some(money("1.50")));
        assert_eq!(one.checked_sub(money("0.01")), Some(money("0.99")));
        assert_eq!(one.checked_sub(one), Some(Money::ZERO));
        assert_eq!(one.checked_sub(money("1.01")), None);
        assert_eq!(Money::MAX.checked_add(money("0.01")), None);
        assert_eq!(
            Money::checked_sum([one, one, money("0.05")]),
            Some(money("2.05"))
        );
        assert_eq!(Money::checked_sum([]), Some(Money::ZERO));
        assert_eq!(Money::checked_sum([Money::MAX, one]), None);
    }

    #[test]
    fn serde_uses_the_strict_text_form() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Row {
            balance: Money,
        }
        let text = toml::to_string(&Row {
            balance: money("1234.5"),
        })
        .expect("serialises");
        assert_eq!(text.trim(), r#"balance = "1234.50""#);
        let row: Row = toml::from_str(&text).expect("deserialises");
        assert_eq!(row.balance, money("1234.50"));
        assert!(toml::from_str::<Row>(r#"balance = "-1.00""#).is_err());
        assert!(toml::from_str::<Row>(r#"balance = 1.5"#).is_err());
    }

    #[test]
    fn capital_numerals_follow_the_financial_convention() {
        let cases = [
            ("0.00", "零元整"),
            ("0.05", "伍分"),
            ("0.50", "伍角整"),
            ("0.56", "伍角陆分"),
            ("1.00", "壹元整"),
            ("10.00", "壹拾元整"),
            ("10.05", "壹拾元零伍分"),
            ("10.50", "壹拾元伍角整"),
            ("15.00", "壹拾伍元整"),
            ("105.00", "壹佰零伍元整"),
            ("1004.07", "壹仟零肆元零柒分"),
            ("1010.10", "壹仟零壹拾元壹角整"),
            ("1234.00", "壹仟贰佰叁拾肆元整"),
            ("1234.50", "壹仟贰佰叁拾肆元伍角整"),
            ("1680.32", "壹仟陆佰捌拾元叁角贰分"),
            ("16409.02", "壹万陆仟肆佰零玖元零贰分"),
            ("325.04", "叁佰贰拾伍元零肆分"),
            ("100000.00", "壹拾万元整"),
            ("107000.53", "壹拾万零柒仟元伍角叁分"),
            ("10050000.00", "壹仟零伍万元整"),
            ("100000000.00", "壹亿元整"),
            ("100000001.00", "壹亿零壹元整"),
            ("100010000.00", "壹亿零壹万元整"),
            ("1000000010.00", "壹拾亿零壹拾元整"),
            (
                "123456789012.34",
                "壹仟贰佰叁拾肆亿伍仟陆佰柒拾捌万玖仟零壹拾贰元叁角肆分",
            ),
            (
                "999999999999.99",
                "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分",
            ),
        ];
        for (amount, capital) in cases {
            assert_eq!(money(amount).to_chinese_capital(), capital, "{amount}");
        }
    }

    proptest! {
        #[test]
        fn rendering_then_parsing_gives_back_the_same_amount(cents in 0..=MAX_CENTS) {
            let amount = Money::from_cents(cents).expect("in range");
            prop_assert_eq!(Money::parse(&amount.to_string()), Ok(amount));
            prop_assert_eq!(amount.cents(), cents);
        }

        #[test]
        fn capital_numerals_never_have_two_zeros_in_a_row(cents in 0..=MAX_CENTS) {
            let capital = Money::from_cents(cents).expect("in range").to_chinese_capital();
            prop_assert!(!capital.contains("零零"), "{}", capital);
            prop_assert!(!capital.starts_with('零') || capital == "零元整", "{}", capital);
        }

        #[test]
        fn malformed_forms_of_a_valid_amount_are_all_refused(
            cents in 0..=MAX_CENTS,
            mutation in 0..9usize,
        ) {
            let text = Money::from_cents(cents).expect("in range").to_string();
            let (integer, fraction) = text.split_once('.').expect("two places");
            let malformed = match mutation {
                0 => format!("-{text}"),
                1 => format!("+{text}"),
                2 => format!(" {text}"),
                3 => format!("{text} "),
                4 => format!("0{text}"),
                5 => format!("{text}1"),
                6 => format!("{text}e3"),
                7 => format!(".{fraction}"),
                _ => format!("{integer}."),
            };
            prop_assert!(Money::parse(&malformed).is_err(), "{:?} was accepted", malformed);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC*") {
            let _ = Money::parse(&text);
        }
    }
}

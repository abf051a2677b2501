//! Money: exact decimals with ISO 4217 currencies and minor-unit checks. Never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Integer digits allowed in an amount (docs/api.md, "Input limits": at most 15).
pub const MAX_INTEGER_DIGITS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must be a decimal string such as \"10.00\"")]
    NotAString,
    #[error("amount must be a plain decimal number such as \"10.00\"")]
    Malformed,
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount has more than {MAX_INTEGER_DIGITS} integer digits")]
    TooLarge,
    #[error("{currency} allows at most {allowed} decimal places")]
    TooManyDecimals { currency: &'static str, allowed: u32 },
    #[error("unknown or unsupported currency code {0:?}; use an ISO 4217 code such as \"USD\"")]
    UnknownCurrency(String),
}

/// An ISO 4217 currency with a defined number of minor units (metals and fund codes are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(value_type = String, example = "USD")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub const USD: Currency = Currency(iso_currency::Currency::USD);

    /// Parses an upper-case ISO 4217 code.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency(code.chars().take(16).collect());
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let currency = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        if currency.exponent().is_none() || currency.is_fund() {
            return Err(unknown());
        }
        Ok(Currency(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Decimal places of the minor unit: JPY 0, USD 2, BHD 3.
    pub fn minor_units(self) -> u32 {
        self.0.exponent().map(u32::from).unwrap_or(0)
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency::USD
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A positive amount as a client sent it, syntax checked but not yet tied to a currency (a
/// payment may leave its currency to the wallet). `in_currency` makes it `Money`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    value: Decimal,
    decimals: usize,
}

impl Amount {
    /// Digits, an optional point and more digits; positive; at most 15 integer digits.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let (value, decimals) = parse_positive(text)?;
        Ok(Amount { value, decimals })
    }

    /// Parses an amount from a JSON value, which must be a string.
    pub fn parse_json(value: &serde_json::Value) -> Result<Self, MoneyError> {
        match value {
            serde_json::Value::String(s) => Amount::parse(s),
            _ => Err(MoneyError::NotAString),
        }
    }

    /// The amount in `currency`, refused when it has more decimals than the minor unit.
    pub fn in_currency(self, currency: Currency) -> Result<Money, MoneyError> {
        let allowed = currency.minor_units();
        // Trailing zeros beyond the minor unit ("1.500" USD) are still refused: be strict.
        if self.decimals > allowed as usize {
            return Err(MoneyError::TooManyDecimals { currency: currency.code(), allowed });
        }
        Ok(Money::from_decimal(self.value, currency))
    }
}

/// A non-negative amount of one currency, always held at exactly the currency's minor-unit scale.
/// Serialised as `{"amount": "10.00", "currency": "USD"}` (entities flatten it into their own
/// `amount` and `currency` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(into = "MoneyShape", from = "MoneyShape")]
pub struct Money {
    /// A decimal string in the currency's minor units.
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: Decimal,
    currency: Currency,
}

/// Amounts of one currency compare; amounts of two currencies do not.
impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.currency == other.currency).then(|| self.amount.cmp(&other.amount))
    }
}

#[derive(Serialize, Deserialize)]
struct MoneyShape {
    #[serde(with = "decimal_string")]
    amount: Decimal,
    currency: Currency,
}

impl From<Money> for MoneyShape {
    fn from(m: Money) -> Self {
        MoneyShape { amount: m.amount, currency: m.currency }
    }
}

impl From<MoneyShape> for Money {
    fn from(s: MoneyShape) -> Self {
        Money::from_decimal(s.amount, s.currency)
    }
}

impl Money {
    /// Parses a positive amount as sent by a client: digits, an optional point and at most the
    /// currency's minor units. No signs, exponents, spaces or thousands separators.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        Amount::parse(text)?.in_currency(currency)
    }

    /// Parses an amount from a JSON value, which must be a string.
    pub fn parse_json(value: &serde_json::Value, currency: Currency) -> Result<Self, MoneyError> {
        Amount::parse_json(value)?.in_currency(currency)
    }

    /// Builds money from a trusted decimal (stored values, sums); rescales to the minor unit.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Self {
        let mut amount = amount;
        amount.rescale(currency.minor_units());
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::from_decimal(Decimal::ZERO, currency)
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Decimal string at the currency's scale, e.g. `"100.00"`, `"5"` for JPY.
    pub fn to_wire(&self) -> String {
        self.amount.to_string()
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn checked_add(&self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_add(other.amount))
            .flatten()
            .map(|a| Money::from_decimal(a, self.currency))
    }

    /// Subtracts, refusing to go below zero (balances are never negative).
    pub fn checked_sub(&self, other: Money) -> Option<Money> {
        if self.currency != other.currency || other.amount > self.amount {
            return None;
        }
        Some(Money::from_decimal(self.amount - other.amount, self.currency))
    }
}

/// Digits, an optional point and more digits; positive; at most 15 integer digits. Returns the
/// value and its number of decimals.
fn parse_positive(text: &str) -> Result<(Decimal, usize), MoneyError> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(int_part) || frac_part.is_some_and(|f| !digits_only(f)) {
        return Err(MoneyError::Malformed);
    }
    if int_part.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
        return Err(MoneyError::TooLarge);
    }
    let decimals = frac_part.map_or(0, str::len);
    // Beyond 28 decimals Decimal cannot hold it; no currency allows more than 4 anyway.
    if decimals > 20 {
        return Err(MoneyError::Malformed);
    }
    let amount = Decimal::from_str(text).map_err(|_| MoneyError::Malformed)?;
    if amount.is_zero() {
        return Err(MoneyError::NotPositive);
    }
    Ok((amount, decimals))
}

/// Serde helper for decimal strings stored at minor-unit scale (no currency attached).
pub mod decimal_string {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(d)?;
        Decimal::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for optional decimal strings.
pub mod opt_decimal_string {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| Decimal::from_str(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(cur("JPY").minor_units(), 0);
        assert_eq!(cur("USD").minor_units(), 2);
        assert_eq!(cur("BHD").minor_units(), 3);
    }

    #[test]
    fn parses_valid_amounts_at_currency_scale() {
        assert_eq!(Money::parse("10", cur("USD")).unwrap().to_wire(), "10.00");
        assert_eq!(Money::parse("0.5", cur("USD")).unwrap().to_wire(), "0.50");
        assert_eq!(Money::parse("1500", cur("JPY")).unwrap().to_wire(), "1500");
        assert_eq!(Money::parse("1.234", cur("BHD")).unwrap().to_wire(), "1.234");
        assert_eq!(Money::parse("999999999999999.99", cur("USD")).unwrap().to_wire(), "999999999999999.99");
    }

    #[test]
    fn refuses_bad_amounts() {
        let usd = cur("USD");
        for bad in ["", "-1", "+1", "1e3", "1E3", " 1", "1 ", "1,000", "0x10", "NaN", "inf", ".5", "5.", "1..2"] {
            assert_eq!(Money::parse(bad, usd), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(Money::parse("0", usd), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("0.00", usd), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("1000000000000000", usd), Err(MoneyError::TooLarge));
        assert!(matches!(Money::parse("1.001", usd), Err(MoneyError::TooManyDecimals { .. })));
        assert!(matches!(Money::parse("1.5", cur("JPY")), Err(MoneyError::TooManyDecimals { .. })));
        assert_eq!(Money::parse_json(&serde_json::json!(10.5), usd), Err(MoneyError::NotAString));
    }

    #[test]
    fn refuses_unknown_and_special_currencies() {
        for bad in ["usd", "XXX", "XAU", "ABC", "US", "USDD", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subtraction_never_goes_negative() {
        let usd = cur("USD");
        let ten = Money::parse("10.00", usd).unwrap();
        let eleven = Money::parse("11.00", usd).unwrap();
        assert!(ten.checked_sub(eleven).is_none());
        assert_eq!(eleven.checked_sub(ten).unwrap().to_wire(), "1.00");
    }

    proptest! {
        #[test]
        fn wire_round_trip(cents in 1u64..=99_999_999_999_999_999u64) {
            let usd = cur("USD");
            let m = Money::from_decimal(Decimal::new(cents as i64, 2), usd);
            let back = Money::parse(&m.to_wire(), usd).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn add_then_sub_is_identity(a in 1i64..1_000_000_000, b in 1i64..1_000_000_000) {
            let usd = cur("USD");
            let x = Money::from_decimal(Decimal::new(a, 2), usd);
            let y = Money::from_decimal(Decimal::new(b, 2), usd);
            prop_assert_eq!(x.checked_add(y).unwrap().checked_sub(y).unwrap(), x);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Money::parse(&s, cur("USD"));
        }
    }
}

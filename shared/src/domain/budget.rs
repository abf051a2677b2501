//! Budgets per API key (the agent's identity): a limit per UTC calendar window (day, week from
//! Monday, month) and currency. A payment counts against every budget of its key in its
//! currency: executed, it is spent; held, it is reserved until decided (rejected or expired
//! releases it, approved turns it into spend, modified keeps the lower amount). One counter
//! record per key, currency, window and period holds both, so a check is one read and the
//! update rides in the payment's own transaction.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, OrgId};
use super::input::InputError;
use super::money::{decimal_string, Amount, Currency, Money};

/// Most budgets one key may carry (one per window and currency).
pub const MAX_BUDGETS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetWindow {
    Day,
    Week,
    Month,
}

impl BudgetWindow {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Day => "day",
            BudgetWindow::Week => "week",
            BudgetWindow::Month => "month",
        }
    }

    /// The UTC period holding `now`: its first day, and the instant the next one starts.
    pub fn period(self, now: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>) {
        let today = now.date_naive();
        let (start, next) = match self {
            BudgetWindow::Day => (today, today + Duration::days(1)),
            BudgetWindow::Week => {
                let start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                (start, start + Duration::days(7))
            }
            BudgetWindow::Month => {
                let start = today.with_day(1).unwrap_or(today);
                let next = if start.month() == 12 {
                    NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
                };
                (start, next.unwrap_or(start + Duration::days(31)))
            }
        };
        (start, Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default()))
    }
}

/// What a payment that would go over a budget does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    /// Held for a person, whatever policies say.
    #[default]
    Hold,
    /// Refused: 403 `BUDGET_EXCEEDED`.
    Deny,
}

impl OnExceed {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// One limit of a key: at most `limit` of `currency` per `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub window: BudgetWindow,
    #[serde(with = "decimal_string")]
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "100.00")]
    pub limit: Decimal,
    pub currency: Currency,
    #[serde(default)]
    pub on_exceed: OnExceed,
}

impl Budget {
    /// A budget whose limit fits the currency's minor units.
    pub fn new(
        window: BudgetWindow,
        limit: Amount,
        currency: Currency,
        on_exceed: OnExceed,
        field: &'static str,
    ) -> Result<Self, InputError> {
        let limit = limit.in_currency(currency).map_err(|source| InputError::Amount { field, source })?;
        Ok(Budget { window, limit: limit.amount(), currency, on_exceed })
    }

    pub fn limit(&self) -> Money {
        Money::from_decimal(self.limit, self.currency)
    }

    /// The counter period this budget counts `now` in.
    pub fn period_at(&self, now: DateTime<Utc>) -> BudgetPeriod {
        BudgetPeriod { window: self.window, start: self.window.period(now).0 }
    }
}

/// A key's budgets are one per window and currency.
pub fn check_budgets(budgets: &[Budget]) -> Result<(), InputError> {
    if budgets.len() > MAX_BUDGETS {
        return Err(InputError::invalid("budgets", format!("at most {MAX_BUDGETS} budgets per key")));
    }
    for (i, budget) in budgets.iter().enumerate() {
        if budgets[..i].iter().any(|b| (b.window, b.currency) == (budget.window, budget.currency)) {
            return Err(InputError::invalid(
                "budgets",
                format!("two {} budgets in {}: one per window and currency", budget.window.as_str(), budget.currency),
            ));
        }
    }
    Ok(())
}

/// Which counter a payment was counted in: its window and that period's first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPeriod {
    pub window: BudgetWindow,
    pub start: NaiveDate,
}

/// What a held payment reserved: its amount, in the counters of the key that submitted it
/// (the approval's `createdBy`), for the periods it was submitted in. Deciding it settles
/// exactly these counters, whatever the key's budgets have become since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    #[serde(flatten)]
    #[schema(inline)]
    pub amount: Money,
    pub periods: Vec<BudgetPeriod>,
}

/// One key's spend and reservations in one currency, window and period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCounter {
    pub org_id: OrgId,
    pub key_id: ApiKeyId,
    pub currency: Currency,
    pub window: BudgetWindow,
    pub start: NaiveDate,
    #[serde(with = "decimal_string")]
    spent: Decimal,
    #[serde(with = "decimal_string")]
    reserved: Decimal,
    /// `spent + reserved`, kept beside them: the one counter a payment's transaction can
    /// guard a limit with (`used <= limit - amount`).
    #[serde(with = "decimal_string", default)]
    used: Decimal,
    pub updated_at: DateTime<Utc>,
}

impl BudgetCounter {
    pub fn new(org_id: OrgId, key_id: ApiKeyId, currency: Currency, period: BudgetPeriod, now: DateTime<Utc>) -> Self {
        BudgetCounter {
            org_id,
            key_id,
            currency,
            window: period.window,
            start: period.start,
            spent: Decimal::ZERO,
            reserved: Decimal::ZERO,
            used: Decimal::ZERO,
            updated_at: now,
        }
    }

    pub fn period(&self) -> BudgetPeriod {
        BudgetPeriod { window: self.window, start: self.start }
    }

    pub fn spent(&self) -> Money {
        Money::from_decimal(self.spent, self.currency)
    }

    pub fn reserved(&self) -> Money {
        Money::from_decimal(self.reserved, self.currency)
    }

    /// Counts `amount` as spent (`Spend`) or reserved (`Reserve`).
    pub fn charge(&mut self, amount: Money, how: Charge, now: DateTime<Utc>) {
        match how {
            Charge::Spend => self.spent += amount.amount(),
            Charge::Reserve => self.reserved += amount.amount(),
        }
        self.used = self.spent + self.reserved;
        self.updated_at = now;
    }

    /// Settles a reservation of `reserved`: released, and `spent` (if any) counted as spent.
    /// Never below zero, whatever was edited in between.
    pub fn settle(&mut self, reserved: Money, spent: Option<Money>, now: DateTime<Utc>) {
        self.reserved = (self.reserved - reserved.amount()).max(Decimal::ZERO);
        if let Some(spent) = spent {
            self.spent += spent.amount();
        }
        self.used = self.spent + self.reserved;
        self.updated_at = now;
    }

    /// When DynamoDB may delete it: long after its period ended and any approval reserving in
    /// it closed (approvals are held at most 30 days).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.window.period(Utc.from_utc_datetime(&self.start.and_hms_opt(0, 0, 0).unwrap_or_default())).1
            + Duration::days(90)
    }
}

/// How a payment counts against a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Executed now.
    Spend,
    /// Held: reserved until decided.
    Reserve,
}

/// A budget as it stands at one instant: what `GET /v1/api-keys/{id}/budgets` shows and what
/// a payment is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStanding {
    pub window: BudgetWindow,
    #[schema(value_type = String, example = "100.00")]
    pub limit: String,
    pub currency: Currency,
    pub on_exceed: OnExceed,
    #[schema(value_type = String, example = "12.00")]
    pub spent: String,
    #[schema(value_type = String, example = "3.00")]
    pub reserved: String,
    /// What may still be paid this period: the limit less spent and reserved, never below zero.
    #[schema(value_type = String, example = "85.00")]
    pub remaining: String,
    pub resets_at: DateTime<Utc>,
}

/// A payment refused by a `deny` budget: the budget as it stood, and why in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRefusal {
    pub budget: BudgetStanding,
    pub reason: String,
}

/// A budget with its counter for the current period (none yet: nothing counted).
#[derive(Debug, Clone)]
pub struct BudgetUse {
    pub budget: Budget,
    pub spent: Money,
    pub reserved: Money,
    pub resets_at: DateTime<Utc>,
}

impl BudgetUse {
    pub fn new(budget: Budget, counter: Option<&BudgetCounter>, now: DateTime<Utc>) -> Self {
        let zero = Money::zero(budget.currency);
        let (spent, reserved) = counter.map_or((zero, zero), |c| (c.spent(), c.reserved()));
        let resets_at = budget.window.period(now).1;
        BudgetUse { budget, spent, reserved, resets_at }
    }

    /// What may still be paid this period.
    pub fn remaining(&self) -> Money {
        let used = self.spent.amount() + self.reserved.amount();
        Money::from_decimal((self.budget.limit - used).max(Decimal::ZERO), self.budget.currency)
    }

    /// Whether `amount` fits: spent, reserved and it together at most the limit.
    pub fn admits(&self, amount: Money) -> bool {
        self.spent.amount() + self.reserved.amount() + amount.amount() <= self.budget.limit
    }

    pub fn refusal(&self, amount: Money) -> BudgetRefusal {
        BudgetRefusal { budget: self.standing(), reason: self.explain(amount) }
    }

    pub fn standing(&self) -> BudgetStanding {
        BudgetStanding {
            window: self.budget.window,
            limit: self.budget.limit().to_wire(),
            currency: self.budget.currency,
            on_exceed: self.budget.on_exceed,
            spent: self.spent.to_wire(),
            reserved: self.reserved.to_wire(),
            remaining: self.remaining().to_wire(),
            resets_at: self.resets_at,
        }
    }

    /// The words a refusal or hold uses.
    pub fn explain(&self, amount: Money) -> String {
        let cur = self.budget.currency.code();
        format!(
            "{} {cur} would exceed this key's {} budget of {} {cur} ({} {cur} left until {})",
            amount.to_wire(),
            self.budget.window.as_str(),
            self.budget.limit().to_wire(),
            self.remaining().to_wire(),
            self.resets_at.format("%Y-%m-%dT%H:%M:%SZ"),
        )
    }
}

/// What budgets say about one payment: fits every one, or the first it would exceed (a `deny`
/// budget before a `hold` one).
pub fn assess(uses: &[BudgetUse], amount: Money) -> Option<&BudgetUse> {
    let over = || uses.iter().filter(|u| u.budget.currency == amount.currency() && !u.admits(amount));
    over().find(|u| u.budget.on_exceed == OnExceed::Deny).or_else(|| over().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn usd(text: &str) -> Money {
        Money::parse(text, Currency::USD).unwrap()
    }

    fn budget(window: BudgetWindow, limit: &str, on_exceed: OnExceed) -> Budget {
        Budget::new(window, Amount::parse(limit).unwrap(), Currency::USD, on_exceed, "limit").unwrap()
    }

    #[test]
    fn windows_are_utc_calendar_periods_weeks_from_monday() {
        let now = at("2026-12-06T23:59:59Z"); // a Sunday
        let day = BudgetWindow::Day.period(now);
        assert_eq!((day.0.to_string(), day.1), ("2026-12-06".into(), at("2026-12-07T00:00:00Z")));
        let week = BudgetWindow::Week.period(now);
        assert_eq!((week.0.to_string(), week.1), ("2026-11-30".into(), at("2026-12-07T00:00:00Z")));
        let month = BudgetWindow::Month.period(now);
        assert_eq!((month.0.to_string(), month.1), ("2026-12-01".into(), at("2027-01-01T00:00:00Z")));
        let monday = BudgetWindow::Week.period(at("2026-12-07T00:00:00Z"));
        assert_eq!(monday.0.to_string(), "2026-12-07");
    }

    #[test]
    fn a_budget_admits_up_to_its_limit_counting_reservations() {
        let now = at("2026-12-06T12:00:00Z");
        let b = budget(BudgetWindow::Day, "100.00", OnExceed::Hold);
        let mut counter =
            BudgetCounter::new(OrgId::generate(), ApiKeyId::generate(), Currency::USD, b.period_at(now), now);
        counter.charge(usd("90.00"), Charge::Spend, now);
        counter.charge(usd("7.00"), Charge::Reserve, now);
        let standing = BudgetUse::new(b.clone(), Some(&counter), now);
        assert!(standing.admits(usd("3.00")));
        assert!(!standing.admits(usd("3.01")));
        assert_eq!(standing.remaining().to_wire(), "3.00");
        counter.settle(usd("7.00"), Some(usd("5.00")), now);
        assert_eq!((counter.spent().to_wire(), counter.reserved().to_wire()), ("95.00".into(), "0.00".into()));
        counter.settle(usd("1.00"), None, now);
        assert_eq!(counter.reserved().to_wire(), "0.00", "never below zero");
    }

    #[test]
    fn a_deny_budget_decides_before_a_hold_one() {
        let now = at("2026-12-06T12:00:00Z");
        let uses = vec![
            BudgetUse::new(budget(BudgetWindow::Day, "1.00", OnExceed::Hold), None, now),
            BudgetUse::new(budget(BudgetWindow::Month, "2.00", OnExceed::Deny), None, now),
        ];
        assert_eq!(assess(&uses, usd("1.50")).map(|u| u.budget.window), Some(BudgetWindow::Day));
        assert_eq!(assess(&uses, usd("2.50")).map(|u| u.budget.window), Some(BudgetWindow::Month));
        assert!(assess(&uses, usd("1.00")).is_none());
        let eur = Money::parse("5.00", Currency::parse("EUR").unwrap()).unwrap();
        assert!(assess(&uses, eur).is_none(), "only budgets in the payment's currency count");
    }

    #[test]
    fn one_budget_per_window_and_currency() {
        let b = budget(BudgetWindow::Day, "1.00", OnExceed::Hold);
        assert!(check_budgets(&[b.clone(), budget(BudgetWindow::Week, "1.00", OnExceed::Hold)]).is_ok());
        assert!(check_budgets(&[b.clone(), b]).is_err());
    }
}

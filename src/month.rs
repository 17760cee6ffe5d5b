//! Calendar months, the time step of every composite and of every date in a report.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Month {
    /// Year, e.g. 2022.
    pub year: i32,
    /// Month of the year, 1..=12.
    pub month: u32,
}

impl Month {
    /// The month of a date.
    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a Month is always a valid date")
    }

    /// The month `n` months later (earlier when negative).
    pub fn plus(self, n: i32) -> Month {
        let i = self.year * 12 + self.month as i32 - 1 + n;
        Month {
            year: i.div_euclid(12),
            month: i.rem_euclid(12) as u32 + 1,
        }
    }

    /// Months from `self` to `other` (positive when `other` is later).
    pub fn until(self, other: Month) -> i32 {
        (other.year - self.year) * 12 + other.month as i32 - self.month as i32
    }

    /// Every month from `self` to `last`, both included.
    pub fn through(self, last: Month) -> Vec<Month> {
        (0..=self.until(last)).map(|i| self.plus(i)).collect()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Month, String> {
        let bad = || format!("{s:?} is not a month; write it as YYYY-MM, e.g. 2022-01");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if y.len() != 4 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Month {
    type Error = String;
    fn try_from(s: String) -> Result<Month, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_crosses_years() {
        let m: Month = "2021-11".parse().unwrap();
        assert_eq!(m.plus(3).to_string(), "2022-02");
        assert_eq!(m.plus(-11).to_string(), "2020-12");
        assert_eq!(m.until("2022-02".parse().unwrap()), 3);
        assert_eq!(m.through("2022-01".parse().unwrap()).len(), 3);
    }

    #[test]
    fn bad_months_are_refused_with_the_expected_form() {
        for s in ["2022-13", "2022", "22-01", "2022-00", "abc"] {
            assert!(s.parse::<Month>().unwrap_err().contains("YYYY-MM"), "{s}");
        }
    }
}

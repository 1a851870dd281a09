//! Kubernetes resource quantities, as far as job memory and CPU need them.

/// A parsed quantity: the text as given and its value in base units (bytes or cores).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub text: String,
    pub value: f64,
}

const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1024.0 * 1024.0),
    ("Gi", 1024.0 * 1024.0 * 1024.0),
    ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("", 1.0),
];

impl Quantity {
    /// Parses `123`, `1.5`, `512Mi`, `500m`, … (no sign, no exponent form).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 32 {
            return None;
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let mut parts = number.split('.');
        let int = parts.next()?;
        let frac = parts.next();
        if int.is_empty() || parts.next().is_some() || frac.is_some_and(str::is_empty) {
            return None;
        }
        let factor = SUFFIXES.iter().find(|(s, _)| *s == suffix)?.1;
        let n: f64 = number.parse().ok()?;
        Some(Self {
            text: text.to_string(),
            value: n * factor,
        })
    }
}

/// Shortest decimal text for a value (no trailing zeros), like Python's Decimal output.
pub fn plain_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e18 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_quantities() {
        assert_eq!(Quantity::parse("512Mi").map(|q| q.value), Some(536870912.0));
        assert_eq!(Quantity::parse("1Gi").map(|q| q.value), Some(1073741824.0));
        assert_eq!(Quantity::parse("500m").map(|q| q.value), Some(0.5));
        assert_eq!(Quantity::parse("1.5").map(|q| q.value), Some(1.5));
        assert_eq!(Quantity::parse("3G").map(|q| q.value), Some(3e9));
        for bad in [
            "", "abc", "1x", "-1", "1..2", ".5", "1.", "5 Mi", "1e3", "Mi",
        ] {
            assert!(Quantity::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn plain_numbers() {
        assert_eq!(plain_number(536870912.0), "536870912");
        assert_eq!(plain_number(0.5), "0.5");
        assert_eq!(plain_number(0.375), "0.375");
        assert_eq!(plain_number(1500000000.0), "1500000000");
    }
}

//! Numbers as people read them, shared by every view (terminal, Markdown, HTML, charts) and by
//! the warnings of lower layers, so that they never disagree: milliseconds with precision that
//! fits their size, counts with thousands separators, money to the cent. A leaf: it imports
//! nothing from the crate.

/// Groups the digits of a whole number: `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    thousands_of(&value.to_string())
}

/// Milliseconds: 3 decimals below 1 ms, 2 below 10 ms, 1 below 1 s, whole above (grouped).
pub fn ms(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    if value < 1.0 {
        format!("{value:.3}")
    } else if value < 10.0 {
        format!("{value:.2}")
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else {
        thousands(value.round() as u64)
    }
}

/// A rate (per second): 1 decimal, grouped.
pub fn rate(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "-".into();
    }
    let tenths = (value * 10.0).round() as u64;
    format!("{}.{}", thousands(tenths / 10), tenths % 10)
}

/// A percentage with one decimal.
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "-".into();
    }
    format!("{:.1}%", fraction * 100.0)
}

/// A byte size: `812 B`, `23.4 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// A money amount with enough digits to be read at any size (`12,345.67`, `0.0123`,
/// `0.000042`).
pub fn money(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    let magnitude = value.abs();
    if magnitude >= 1.0 || magnitude == 0.0 {
        let (whole, cents) = cents_half_away_from_zero(magnitude);
        // An empty sum of floats is -0.0, and a tiny negative rounds to 0: never "-0.00".
        let sign = if value < 0.0 && (whole > 0 || cents > 0) {
            "-"
        } else {
            ""
        };
        let whole = if whole >= 1000 {
            thousands_of(&whole.to_string())
        } else {
            whole.to_string()
        };
        format!("{sign}{whole}.{cents:02}")
    } else {
        // Three significant digits below 1 (0.100, 0.0573, 0.000614).
        let digits = (2.0 - magnitude.log10().floor()) as usize;
        format!("{value:.digits$}")
    }
}

/// A non-negative amount rounded to the cent, half away from zero, as the amount is written
/// (its shortest decimal form: 999.995 is 1,000.00, though its binary value is a hair below).
fn cents_half_away_from_zero(magnitude: f64) -> (u128, u8) {
    let text = format!("{magnitude}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut digits = fraction.bytes().map(|b| b - b'0');
    let tenths = digits.next().unwrap_or(0);
    let hundredths = digits.next().unwrap_or(0);
    let round_up = digits.next().unwrap_or(0) >= 5;
    // Whole parts past u128 do not occur in money; saturate rather than fail.
    let whole: u128 = whole.parse().unwrap_or(u128::MAX);
    let cents = u128::from(tenths) * 10 + u128::from(hundredths) + u128::from(round_up);
    let total = whole.saturating_mul(100).saturating_add(cents);
    (total / 100, (total % 100) as u8)
}

/// Digits with a comma between each group of three.
fn thousands_of(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_by_size() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ms(0.1234), "0.123");
        assert_eq!(ms(8.126), "8.13");
        assert_eq!(ms(50.44), "50.4");
        assert_eq!(ms(12345.6), "12,346");
        assert_eq!(rate(1093.96), "1,094.0");
        assert_eq!(percent(0.0126), "1.3%");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(23_962), "23.4 KiB");
        assert_eq!(bytes(1_300_000), "1.2 MiB");
        for (value, shown) in [
            (0.1, "0.100"),
            (0.0573, "0.0573"),
            (0.000614, "0.000614"),
            (0.246, "0.246"),
            (0.0, "0.00"),
            (7.5, "7.50"),
            (12345.678, "12,345.68"),
            // Rounded half away from zero at the cent, never truncated.
            (999.995, "1,000.00"),
            (1022.0, "1,022.00"),
            (-1022.0, "-1,022.00"),
            (30659.99, "30,659.99"),
            (3569.99, "3,569.99"),
            (1.005, "1.01"),
            (-1.005, "-1.01"),
            (-0.0, "0.00"),
            (1e15, "1,000,000,000,000,000.00"),
            (1e20, "100,000,000,000,000,000,000.00"),
        ] {
            assert_eq!(money(value), shown, "{value}");
        }
        // Below one, three significant digits: a half cent stays visible.
        assert_eq!(money(0.005), "0.00500");
    }
}

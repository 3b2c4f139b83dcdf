//! The one table format every benchmark and load generator prints its
//! figures in, so that `cargo run --release --example benchmarks` can run
//! them all and gather their rows into one table.
//!
//! A row is Markdown: `| figure | value | raw baseline (same run) | ratio | target |`.

/// The header row.
pub const HEADER: &str = "| figure | value | raw baseline (same run) | ratio | target |";

/// The separator row under [`HEADER`].
pub const SEPARATOR: &str = "|---|---|---|---|---|";

/// Prints a blank line, the header and the separator.
pub fn print_header() {
    println!();
    println!("{HEADER}");
    println!("{SEPARATOR}");
}

/// Prints one figure. Empty cells are fine (no baseline, no target).
pub fn print_row(figure: &str, value: &str, baseline: &str, ratio: &str, target: &str) {
    println!("{}", row(figure, value, baseline, ratio, target));
}

/// Formats one figure row.
pub fn row(figure: &str, value: &str, baseline: &str, ratio: &str, target: &str) -> String {
    format!("| {figure} | {value} | {baseline} | {ratio} | {target} |")
}

/// The cells of `line` if it is a figure row (not the header or separator).
pub fn parse_row(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    let cells: Vec<String> = inner.split('|').map(|c| c.trim().to_owned()).collect();
    if cells.len() != 5 || line.trim() == HEADER || line.trim() == SEPARATOR {
        return None;
    }
    Some(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_headers_are_not_rows() {
        let r = row("relay hop", "31 µs", "120 µs", "0.26", "");
        assert_eq!(
            parse_row(&r),
            Some(vec![
                "relay hop".to_owned(),
                "31 µs".into(),
                "120 µs".into(),
                "0.26".into(),
                String::new()
            ])
        );
        assert_eq!(parse_row(HEADER), None);
        assert_eq!(parse_row(SEPARATOR), None);
        assert_eq!(parse_row("| a | b |"), None);
        assert_eq!(parse_row("plain text"), None);
    }
}

//! The bench's human-readable table: one row per figure, ours beside its baseline and the
//! ratio, columns as wide as their widest cell.

/// Rows gathered, printed at once so every column can fit its widest cell.
#[derive(Debug, Default)]
pub(super) struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    /// Adds a row: what is measured (the baseline in parentheses), our figure, the
    /// baseline's, and their ratio.
    pub(super) fn row(&mut self, name: &str, ours: String, base: String, ratio: f64) {
        // Small ratios (the reopen's) keep their significant digits.
        let ratio = if ratio < 0.1 {
            format!("{ratio:.4}")
        } else {
            format!("{ratio:.2}")
        };
        self.rows.push([name.to_string(), ours, base, ratio]);
    }

    /// The table, a header line first.
    pub(super) fn render(&self) -> String {
        let header = ["phase", "shardlog", "baseline", "ratio"].map(String::from);
        let all: Vec<&[String; 4]> = std::iter::once(&header).chain(&self.rows).collect();
        let width = |column: usize| {
            all.iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths = [width(0), width(1), width(2), width(3)];
        let mut out = String::new();
        for [name, ours, base, ratio] in all {
            let [w0, w1, w2, w3] = widths;
            out.push_str(&format!(
                "{name:<w0$}  {ours:>w1$}  {base:>w2$}  {ratio:>w3$}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut table = Table::default();
        table.row("short (base)", "1".into(), "2".into(), 0.5);
        table.row(
            "a much longer phase name (base)",
            "12345".into(),
            "3".into(),
            0.004,
        );
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // Every line ends at the same column, and each ratio is right-aligned there.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        assert!(
            lines[1].ends_with("  0.50") && lines[2].ends_with("0.0040"),
            "{text}"
        );
        // The name column is as wide as the longest name; "shardlog" sets the next one.
        let expected = format!("{:<31}  {:>8}", "short (base)", "1");
        assert!(lines[1].starts_with(&expected), "{text}");
        assert!(
            lines[0].starts_with(&format!("{:<31}  shardlog", "phase")),
            "{text}"
        );
    }
}

"""Reports: the terminal table, and (report.md / report.html) the full report with plots."""

"""The `sdaanet-report` table, one job per module: `collect` finds and reads the records,
`rows` makes them into rows (configurations) by folds (`cells`) with the fold and seed
statistics of `stats` and the protocols of `protocols`; `render` writes the table as Markdown
and CSV, `heatmap` draws a two-key sweep, `write` writes the report files."""

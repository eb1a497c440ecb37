"""core: what every room uses (errors, settings, secrets, project paths, dry-run notes, tables, plots,
localpod's control routes). Imports nothing from the other rooms."""

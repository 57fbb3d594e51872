"""Reading SharePoint lists into normalised snapshots, with data-quality rules."""

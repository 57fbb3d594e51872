"""From snapshots to Excel rollups: tables, layouts, the xlsx writer, upload."""

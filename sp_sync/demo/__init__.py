"""`sp-sync demo`: the emulator, seeded demo data and the pipeline run twice."""

"""Running the pipeline: one run, the Functions jobs, run summaries and progress."""

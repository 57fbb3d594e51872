"""Azure Functions triggers. Wiring only: each reads its binding, calls one sp_sync entry point
(`sp_sync.run.jobs`) and logs the outcome."""

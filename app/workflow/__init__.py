"""The workflow runner: steps, error classification, execution log."""

"""The pipeline running itself: Prefect flows over the same functions as the commands,
one writer at a time, failure and recovery messages, and the scheduler (docs/orchestration.md)."""

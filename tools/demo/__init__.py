"""The one-command demo (`scripts/demo`) and the harness it shares with tests/e2e."""

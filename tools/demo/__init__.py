"""The one-command demo (`scripts/demo`): testbed.system's System, which tests/e2e runs too."""

"""Command-line tools for HomeSeal (provisioning, protocol examples)."""

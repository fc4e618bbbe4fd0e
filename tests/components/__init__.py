"""Home Assistant integration tests."""

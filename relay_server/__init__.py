"""HomeSeal relay: accounts, device registry and routing of opaque frames."""

"""HomeSeal client library: protocol and transport, no Home Assistant imports."""

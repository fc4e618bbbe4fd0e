"""Helpers for benchmarks/relay_bench.py: lean websocket and MQTT clients, database seeding."""

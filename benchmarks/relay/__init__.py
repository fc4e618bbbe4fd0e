"""Helpers for benchmarks/relay_bench.py: the MQTT client of the Mosquitto comparison
(the relay's websocket client is testbed.wsclient)."""

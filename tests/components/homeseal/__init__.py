"""Tests of the HomeSeal integration (custom_components/homeseal)."""

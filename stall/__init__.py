"""Stall: a self-hosted microcommerce platform."""

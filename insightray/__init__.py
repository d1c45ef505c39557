"""Insight Ray."""

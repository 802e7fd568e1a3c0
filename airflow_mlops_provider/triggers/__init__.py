"""Triggers of the MLOps provider."""

"""Sensors of the MLOps provider."""

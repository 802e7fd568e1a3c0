"""Notifiers of the MLOps provider."""

"""Example data and models for the reference DAGs, the demo, the docs and the tests."""

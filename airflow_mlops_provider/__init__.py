"""Apache Airflow provider for continuously retrained, gated, observable models."""

__version__ = "0.1.0"

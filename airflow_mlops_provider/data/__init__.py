"""Data gates without Airflow: reading datasets in chunks, whylogs profiles, contracts and drift.

The operators in ``airflow_mlops_provider.operators`` wrap these; nothing here imports Airflow, so it
runs anywhere (a notebook, a training pod) and is tested on its own.
"""

"""Delayed-label performance monitoring without Airflow: captured predictions, outcomes, live metrics.

The model server captures every prediction it serves (:mod:`.captures` reads them); outcomes arrive
later as label files (:mod:`.outcomes` reads and joins them); :mod:`.performance` computes the live
metrics with confidence intervals, by the same :func:`airflow_mlops_provider.gates.compute_metrics` the
promotion gates use; :mod:`.decay` decides from them whether a version has degraded. Nothing here
imports Airflow beyond the provider's own errors; pyarrow, numpy, pandas and scikit-learn are imported
inside the functions that use them.
"""

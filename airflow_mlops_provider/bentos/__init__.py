"""The BentoML side of packaging a registered MLflow model, free of Airflow.

:mod:`~airflow_mlops_provider.bentos.build` imports models into the BentoML store, builds Bentos
around the :mod:`~airflow_mlops_provider.serving` service and exports them;
:mod:`~airflow_mlops_provider.bentos.smoke` serves a built Bento on loopback and compares its
answers with the registry's. :class:`~airflow_mlops_provider.operators.bentoml.BentoPackageOperator`
drives both. Each function takes the logger it reports to, like the promotion engine.
"""

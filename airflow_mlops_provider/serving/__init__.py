"""Code that runs inside the model server (a Bento): imports nothing from Airflow.

:mod:`airflow_mlops_provider.serving.service` is copied, alone, into every Bento's build context
next to a ``bento_config.json`` written by
:func:`~airflow_mlops_provider.bentos.build.build_bento`; it must therefore stay
self-contained (BentoML, pydantic, pandas, PyYAML and the model's own requirements).
"""

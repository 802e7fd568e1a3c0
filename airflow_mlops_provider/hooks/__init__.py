"""Hooks of the MLOps provider.

Operators name the default connection from here, so that parsing a DAG does not import the hook
module: hooks are built when a task runs.
"""

#: The ``mlflow`` connection used unless another is named (``MlflowHook.default_conn_name``).
MLFLOW_DEFAULT_CONN_ID = "mlflow_default"

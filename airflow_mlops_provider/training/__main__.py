"""``python -m airflow_mlops_provider.training``: see :mod:`airflow_mlops_provider.training.runner`."""

from __future__ import annotations

import sys

from airflow_mlops_provider.training.runner import main

if __name__ == "__main__":
    sys.exit(main())

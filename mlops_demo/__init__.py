"""The development and demo tools: the local stack, the synthetic churn data and the four-week story.

Not part of the provider's wheel (the editable install puts the repository root on ``sys.path``).
The provider's own training examples, which the trainer image needs, stay in
``airflow_mlops_provider/training/examples.py``.
"""

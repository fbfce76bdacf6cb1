"""``celery -A smsapp`` and the deployment files find the Celery app here; it lives in the kernel
(``smsapp.core.celery``), which every app imports instead of this module."""

from .core.celery import app, schedule_periodic

__all__ = ("app", "schedule_periodic")

"""The Celery app: two SMS queues so that a million-contact broadcast never delays a HELP reply.

- ``sms_priority``: keyword replies, transactional messages, test sends.
- ``sms_bulk``: broadcasts and campaign sends.
- ``default``: housekeeping (imports, segment rebuilds).

Each app declares its periodic jobs in its ``AppConfig.ready`` with ``schedule_periodic``; beat runs them from
django-celery-beat's database scheduler, so an operator can change an interval in the admin without a deploy.
"""

from __future__ import annotations

import os

from celery import Celery, Task
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")

app = Celery("smsapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("sms_priority", "sms_bulk", "default")]
app.autodiscover_tasks()


def schedule_periodic(name: str, task: str, seconds: float, *, queue: str = "default") -> None:
    """Declare a periodic job; each app calls this from its ``AppConfig.ready`` so beat finds it at start-up."""
    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        name: {"task": task, "schedule": seconds, "options": {"queue": queue}},
    }


def task(name: str) -> Task:
    """The registered task called ``name``. A service hands work to its app's tasks through this rather than by
    importing them: the tasks module imports the services, so an import back would close a circle. Each app imports
    its tasks in ``AppConfig.ready``, so every process (web, worker, beat) has them registered."""
    return app.tasks[name]

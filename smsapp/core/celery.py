"""The Celery app: two SMS queues so that a million-contact broadcast never delays a HELP reply.

- ``sms_priority``: keyword replies, transactional messages, test sends.
- ``sms_bulk``: broadcasts and campaign sends.
- ``default``: housekeeping (imports, segment rebuilds).

Each app declares its periodic jobs in its ``AppConfig.ready`` with ``schedule_periodic``; beat runs them from
django-celery-beat's database scheduler, so an operator can change an interval in the admin without a deploy.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")

app = Celery("smsapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("sms_priority", "sms_bulk", "default")]
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections_checked(**kwargs: Any) -> None:
    """Around each task, what Django does around each request: a connection that is broken (PostgreSQL restarted)
    or older than CONN_MAX_AGE is closed, and the next query opens a new one; a healthy one is kept (CONN_HEALTH_CHECKS
    checks it at the task's first query). Celery's own closing of every connection is held off by
    ``CELERY_DB_REUSE_MAX`` (settings). Not for a task run eagerly: it runs inside its caller's transaction (a
    test's), which a connection that is not in autocommit would have closed under it."""
    from django.db import close_old_connections

    task = kwargs.get("sender")
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    close_old_connections()


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

"""The kernel every app may import: the Celery app, locks, roles, API helpers, middleware, logging filters, health
checks and the links filter. It imports Django and nothing of the apps; the shell (the rest of ``smsapp``: settings,
urls, dashboard, login) imports everything."""

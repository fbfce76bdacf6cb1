import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsapp.settings")
application = get_wsgi_application()

# Import the URLconf (and the views it names) as the worker boots, not on its first request: a URLconf that cannot be
# imported stops the worker here, where the deploy sees it, instead of failing every request (each retrying the
# import), and the first webhook a worker takes pays for nothing but itself.
_ = get_resolver().url_patterns

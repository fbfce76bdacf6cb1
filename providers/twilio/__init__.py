"""The Twilio plugin: everything that says "Twilio" lives in this folder.

- ``provider.py``: the provider on the official ``twilio`` package (sync and async clients, signatures), its
  vocabulary (``explain``, ``error_kind``, where alphanumeric senders reach) and the registry's factory.
- ``config.py``, ``models.py``: the configuration in effect (environment over the plugin page) and the page's rows.
- ``webhooks.py``: Twilio's form fields as neutral events, its statuses as delivery states, TwiML replies.
- ``errors.py``: its error codes, sorted and in words.
- ``views.py``, ``urls.py``, ``forms.py``, ``services.py``, ``templates/twilio/``: the callback and the plugin page.
- ``fake_twilio.py`` and ``management/commands/``: the local Twilio-compatible server, ``simulate_reply``.
- ``testing.py``: webhook payloads and pytest fixtures for the suite.
- ``apps.py``: registers the plugin (``providers.registry``).
"""

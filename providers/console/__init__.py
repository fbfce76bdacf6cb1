"""The console plugin (``SMS_PROVIDER=console``): logs each message instead of sending it, for development."""

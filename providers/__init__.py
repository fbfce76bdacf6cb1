"""The SMS transport: the interface (``base``), the registry of providers (``registry``), the webhook seam
(``webhooks``), and what every provider shares (sender choice, segment counting, rate limits, the event loop,
encrypted credentials). Each provider is a folder of its own (``providers/<name>/``)."""

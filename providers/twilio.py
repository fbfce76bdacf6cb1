"""The Twilio provider, on the official ``twilio`` package: its REST client to send and fetch, its asynchronous client
(aiohttp) to keep many sends in flight, its ``RequestValidator`` to verify webhooks.

``TWILIO_API_BASE_URL`` points the client's ``api`` domain at another server (``fake_twilio``) through the domain's
own ``base_url``: every request still goes through the package's ``TwilioHttpClient``, with the timeout of
``TWILIO_TIMEOUT_SECONDS`` on every call. Credentials never reach an exception message or a log line: errors are
rebuilt from Twilio's code and message, and the ``twilio`` loggers are kept at WARNING (settings.LOGGING).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client

from .base import (
    FIND_SENT_LIMIT,
    ConnectionCheck,
    ErrorKind,
    InboundEvent,
    ProviderError,
    ProviderMessage,
    SendRequest,
    SendResult,
    StatusEvent,
    WebhookRejected,
)
from .config import TwilioConfig

logger = logging.getLogger(__name__)

# Codes that mean something other than "permanent" for a 4xx answer.
OPT_OUT_CODES = {21610}
AUTH_CODES = {20003, 20005}  # authenticate; account suspended / not active
TRANSIENT_CODES = {20429, 20500, 20503, 30001, 14107}  # too many requests, server errors, queue overflow


def classify(status: int, code: int | None) -> ErrorKind:
    """Twilio's answer -> what the sender should do with the message."""
    if code in OPT_OUT_CODES:
        return ErrorKind.OPT_OUT
    if code in AUTH_CODES or status == 401:
        return ErrorKind.AUTH
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def _rest_error(exc: TwilioRestException) -> ProviderError:
    code = exc.code if exc.code is not None else exc.status
    message = str(exc.msg or f"HTTP {exc.status}")
    # The client wraps the message as "Unable to create record: <Twilio's message>": keep Twilio's own words.
    for prefix in ("Unable to create record: ", "Unable to fetch record: "):
        message = message.removeprefix(prefix)
    return ProviderError(classify(exc.status, exc.code), str(code), message, status=exc.status)


def _transport_error(exc: requests.RequestException) -> ProviderError:
    """Connection problems: whether the request may have reached Twilio decides whether a retry may duplicate."""
    if isinstance(exc, requests.ConnectTimeout):
        return ProviderError(ErrorKind.TRANSIENT, "timeout", "Timed out connecting to Twilio.")
    if isinstance(exc, requests.Timeout):
        return ProviderError(
            ErrorKind.TRANSIENT,
            "timeout",
            "Twilio did not answer in time; the message may have been sent.",
            may_have_sent=True,
        )
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc)
        before_sending = any(
            marker in text
            for marker in ("NewConnectionError", "Connection refused", "Failed to resolve", "NameResolution")
        )
        if before_sending:
            return ProviderError(ErrorKind.TRANSIENT, "connection", "Could not connect to Twilio.")
        return ProviderError(
            ErrorKind.TRANSIENT,
            "connection",
            "The connection to Twilio broke; the message may have been sent.",
            may_have_sent=True,
        )
    return ProviderError(ErrorKind.TRANSIENT, "connection", f"Could not reach Twilio ({type(exc).__name__}).")


def _aiohttp_error(exc: BaseException) -> ProviderError:
    """The async client's transport errors, sorted the same way: only a failure to connect proves nothing left."""
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, no route, DNS: the request never left
        return ProviderError(ErrorKind.TRANSIENT, "connection", "Could not connect to Twilio.")
    if isinstance(exc, TimeoutError):
        return ProviderError(
            ErrorKind.TRANSIENT,
            "timeout",
            "Twilio did not answer in time; the message may have been sent.",
            may_have_sent=True,
        )
    return ProviderError(
        ErrorKind.TRANSIENT,
        "connection",
        "The connection to Twilio broke; the message may have been sent.",
        may_have_sent=True,
    )


@contextlib.asynccontextmanager
async def _twilio_errors_async() -> AsyncIterator[None]:
    try:
        yield
    except TwilioRestException as exc:
        raise _rest_error(exc) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _aiohttp_error(exc) from None
    except TwilioException as exc:
        raise ProviderError(ErrorKind.TRANSIENT, "client", type(exc).__name__, may_have_sent=True) from None


class _AsyncHttpClient(AsyncTwilioHttpClient):
    """The package's aiohttp client with its constructor's timeout on every request: twilio 9 hands each request only
    the per-call timeout, which the REST client leaves unset, and aiohttp reads None as "wait for ever"."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return await super().request(
            method, url, params, data, headers, auth, timeout if timeout is not None else self.timeout, allow_redirects
        )


@contextlib.contextmanager
def _twilio_errors(*, may_have_sent: bool = False) -> Iterator[None]:
    """The ``twilio`` package's exceptions as ``ProviderError`` (Twilio's code and words, never a credential).
    ``may_have_sent``: a client-side failure after the request left (a send) may have reached Twilio."""
    try:
        yield
    except TwilioRestException as exc:
        raise _rest_error(exc) from None
    except requests.RequestException as exc:
        raise _transport_error(exc) from None
    except TwilioException as exc:
        raise ProviderError(ErrorKind.TRANSIENT, "client", type(exc).__name__, may_have_sent=may_have_sent) from None


class TwilioProvider:
    name = "twilio"

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        self._client: Client | None = None
        self._async_client: Client | None = None

    @property
    def client(self) -> Client:
        """One client (and its pooled HTTP session) per provider instance."""
        if self._client is None:
            self._client = self._make_client(self.config)
        return self._client

    async def _async(self) -> Client:
        """One asynchronous client (one aiohttp session and connection pool) per provider, made inside the process's
        event loop (``providers.aio``), which is where aiohttp wants its session created and used."""
        if self._async_client is None:
            http_client = _AsyncHttpClient(timeout=self.config.timeout, logger=logging.getLogger("twilio.http_client"))
            self._async_client = self._make_client(self.config, http_client=http_client)
        return self._async_client

    async def aclose(self) -> None:
        """Close the asynchronous client's connections (when the configuration changed and a new provider took over)."""
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.http_client.close()

    @staticmethod
    def _make_client(config: TwilioConfig, *, http_client: Any = None) -> Client:
        if http_client is None:
            http_client = TwilioHttpClient(timeout=config.timeout, logger=logging.getLogger("twilio.http_client"))
        if config.api_key_sid and config.api_key_secret:
            client = Client(config.api_key_sid, config.api_key_secret, config.account_sid, http_client=http_client)
        else:
            client = Client(config.account_sid, config.auth_token, http_client=http_client)
        if config.api_base_url:
            client.api.base_url = config.api_base_url
        return client

    def _require_credentials(self) -> None:
        if not self.config.has_credentials:
            raise ProviderError(
                ErrorKind.AUTH, "not_configured", "Twilio is not configured: set the Account SID and Auth Token."
            )

    def _create_kwargs(self, request: SendRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"to": request.to, "body": request.body}
        if request.sender.kind == "messaging_service":
            kwargs["messaging_service_sid"] = request.sender.value
        else:
            kwargs["from_"] = request.sender.value
        if request.media_urls:
            kwargs["media_url"] = list(request.media_urls)
        callback = request.status_callback or self.config.status_callback_url
        if callback:
            kwargs["status_callback"] = callback
        return kwargs

    def send(self, request: SendRequest) -> SendResult:
        self._require_credentials()
        with _twilio_errors(may_have_sent=True):
            message = self.client.messages.create(**self._create_kwargs(request))
        return _result(message)

    async def send_async(self, request: SendRequest) -> SendResult:
        """``send`` on the asynchronous client: the worker keeps many of these in flight on one connection pool."""
        self._require_credentials()
        client = await self._async()
        async with _twilio_errors_async():
            message = await client.messages.create_async(**self._create_kwargs(request))
        return _result(message)

    def check_connection(self) -> ConnectionCheck:
        """Fetch the Account with these credentials: its friendly name, or Twilio's exact reason."""
        try:
            self._require_credentials()
            account = self.client.api.v2010.accounts(self.config.account_sid).fetch()
        except ProviderError as exc:
            return ConnectionCheck(ok=False, message=exc.message)
        except TwilioRestException as exc:
            error = _rest_error(exc)
            return ConnectionCheck(ok=False, message=f"Twilio error {error.code}: {error.message}")
        except requests.RequestException as exc:
            error = _transport_error(exc)
            return ConnectionCheck(ok=False, message=error.message)
        name = str(account.friendly_name or account.sid)
        return ConnectionCheck(ok=True, message=f"Connected to account “{name}”.", account_name=name)

    def fetch_status(self, message_sid: str) -> StatusEvent:
        """``GET …/Messages/{sid}.json``: the status (and error code) Twilio holds for the message now, and its price
        once Twilio has set it (the create answer usually has none yet)."""
        self._require_credentials()
        with _twilio_errors():
            message = self.client.messages(message_sid).fetch()
        return StatusEvent(
            message_sid=str(message.sid),
            status=str(message.status or ""),
            error_code=str(message.error_code) if message.error_code else "",
            to_number=str(message.to or ""),
            price=_decimal(message.price),
            price_unit=str(message.price_unit or "") if message.price not in (None, "") else "",
        )

    def find_sent(self, *, to: str, sent_after: dt.datetime) -> list[ProviderMessage]:
        """``GET …/Messages.json?To=…&DateSent>=…``: the newest FIND_SENT_LIMIT of what Twilio sent to the number."""
        self._require_credentials()
        with _twilio_errors():
            messages = self.client.messages.list(to=to, date_sent_after=sent_after, limit=FIND_SENT_LIMIT)
        return [
            ProviderMessage(
                sid=str(m.sid),
                status=str(m.status or ""),
                error_code=str(m.error_code) if m.error_code else "",
                to=str(m.to or ""),
                body=str(m.body or ""),
            )
            for m in messages
        ]

    # Webhooks

    def _secrets(self) -> list[str]:
        # Twilio signs with the account's auth token; an API key secret is accepted too when it is the credential.
        return [s for s in (self.config.auth_token, self.config.api_key_secret) if s]

    def verify_signature(self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> None:
        if settings.SMS_CALLBACK_SKIP_SIGNATURE:
            return
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get("x-twilio-signature", "")
        if not signature:
            raise WebhookRejected(403, "Missing X-Twilio-Signature.")
        algorithm = get_signature_algorithm(lower.get("x-twilio-webhooks-signature-settings", ""))
        full_url = url if "://" in url else settings.PUBLIC_BASE_URL + url
        for secret in self._secrets():
            # validate() checks the URL with and without the default port, as Twilio's back end is inconsistent.
            if RequestValidator(secret).validate(full_url, params, signature, algorithm):
                return
        raise WebhookRejected(403, "Invalid X-Twilio-Signature.")

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        self.verify_signature(url=url, params=params, headers=headers)
        return parse_twilio_params(params, account_sid=self.config.account_sid)


def _result(message: Any) -> SendResult:
    return SendResult(
        sid=str(message.sid),
        status=str(message.status),
        segments=int(message.num_segments) if message.num_segments else None,
        price=_decimal(message.price),
        price_unit=str(message.price_unit or ""),
    )


def _decimal(value: object) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def parse_twilio_params(params: Mapping[str, str], *, account_sid: str) -> InboundEvent | StatusEvent:
    """Twilio's form fields -> an event; ``WebhookRejected(400)`` for a malformed or foreign payload."""
    get = params.get
    raw = {k: str(get(k) or "") for k in params}
    # Twilio never sends a NUL character, and PostgreSQL cannot store one (text or jsonb): found by the fuzz test.
    if any("\x00" in k or "\x00" in v for k, v in raw.items()):
        raise WebhookRejected(400, "A field contains a NUL character.")
    sid = str(get("MessageSid") or get("SmsSid") or "")
    status = str(get("MessageStatus") or get("SmsStatus") or "").lower()
    their_account = str(get("AccountSid") or "")
    if their_account and account_sid and their_account != account_sid:
        raise WebhookRejected(400, "AccountSid is not this account's.")
    if status and status != "received":
        if not sid:
            raise WebhookRejected(400, "A status callback needs MessageSid.")
        return StatusEvent(
            message_sid=sid,
            status=status,
            error_code=str(get("ErrorCode") or ""),
            to_number=str(get("To") or ""),
            raw=raw,
        )
    missing = [
        name for name, value in (("MessageSid", sid), ("From", get("From")), ("AccountSid", their_account)) if not value
    ]
    if missing:
        raise WebhookRejected(400, f"An inbound message needs {', '.join(missing)}.")
    try:
        count = int(get("NumMedia") or 0)
    except ValueError:
        raise WebhookRejected(400, "NumMedia is not a number.") from None
    media = tuple(str(get(f"MediaUrl{i}")) for i in range(min(count, 10)) if get(f"MediaUrl{i}"))
    return InboundEvent(
        message_sid=sid,
        account_sid=their_account,
        from_number=str(get("From")),
        to_number=str(get("To") or ""),
        body=str(get("Body") or ""),
        media_urls=media,
        from_country=str(get("FromCountry") or ""),
        opt_out_type=str(get("OptOutType") or "").upper(),
        raw=raw,
    )

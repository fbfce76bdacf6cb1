"""The Twilio provider, on the official ``twilio`` package: its REST client to send and fetch, its asynchronous client
(aiohttp) to keep many sends in flight, its ``RequestValidator`` to verify webhooks.

``TWILIO_API_BASE_URL`` points every Twilio domain the client calls (``api``, ``content``, …) at another server
(``fake_twilio``): the client's hostname hook rewrites each ``https://<domain>.twilio.com`` URL, paging links
included, and every request still goes through the package's ``TwilioHttpClient``, with the timeout of
``TWILIO_TIMEOUT_SECONDS`` on every call. Credentials never reach an exception message or a log line: errors are
rebuilt from Twilio's code and message, and the ``twilio`` loggers are kept at WARNING (settings.LOGGING).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse, urlsplit

import aiohttp
import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    compare,
    get_signature_algorithm,
)
from twilio.rest import Client

from ..base import (
    FIND_SENT_LIMIT,
    ConnectionCheck,
    ErrorKind,
    InboundEvent,
    MessageTemplate,
    ProviderError,
    ProviderMessage,
    Sender,
    SendRequest,
    SendResult,
    StatusEvent,
    WebhookRejected,
)
from .config import ALPHANUMERIC_UNSUPPORTED, TwilioConfig, get_config
from .errors import AUTH_CODES, BAD_ADDRESS_CODES, NOT_FOUND_CODES, OPT_OUT_CODES, TRANSIENT_CODES, explain
from .webhooks import delivery_state, parse_twilio_params, twilio_address

logger = logging.getLogger(__name__)


def classify(status: int, code: int | None) -> ErrorKind:
    """Twilio's answer -> what the sender should do with the message."""
    if code in OPT_OUT_CODES:
        return ErrorKind.OPT_OUT
    if code in BAD_ADDRESS_CODES:
        return ErrorKind.BAD_ADDRESS
    if code in NOT_FOUND_CODES:
        return ErrorKind.NOT_FOUND
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


class _Client(Client):
    """The official client, with every ``*.twilio.com`` URL sent to ``base_url`` when one is set (a compatible server
    such as fake_twilio). Through ``get_hostname``, which the client calls for every request, so that a domain the app
    starts to use later (and the absolute paging URLs of the Content API) cannot escape to Twilio itself."""

    redirect_to = ""

    def get_hostname(self, uri: str) -> str:
        if self.redirect_to:
            parts = urlsplit(uri)
            if parts.hostname and (parts.hostname == "twilio.com" or parts.hostname.endswith(".twilio.com")):
                query = f"?{parts.query}" if parts.query else ""
                return f"{self.redirect_to}{parts.path}{query}"
        return str(super().get_hostname(uri))


class TwilioProvider:
    name = "twilio"
    label = "Twilio"

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        self._client: Client | None = None
        self._async_client: Client | None = None
        self._request_validators: list[RequestValidator] | None = None

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
            client = _Client(config.api_key_sid, config.api_key_secret, config.account_sid, http_client=http_client)
        else:
            client = _Client(config.account_sid, config.auth_token, http_client=http_client)
        client.redirect_to = config.api_base_url.rstrip("/")
        return client

    def _require_credentials(self) -> None:
        if not self.config.has_credentials:
            raise ProviderError(
                ErrorKind.AUTH, "not_configured", "Twilio is not configured: set the Account SID and Auth Token."
            )

    def _create_kwargs(self, request: SendRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"to": twilio_address(request.channel, request.to)}
        if request.content_sid:
            # A Content Template carries its own text and media: no Body, the variables as one JSON string.
            kwargs["content_sid"] = request.content_sid
            kwargs["content_variables"] = json.dumps(dict(request.content_variables), ensure_ascii=False)
        else:
            kwargs["body"] = request.body
        if request.sender.kind == "messaging_service":
            kwargs["messaging_service_sid"] = request.sender.value
        else:
            kwargs["from_"] = twilio_address(request.channel, request.sender.value)
        if request.media_urls and not request.content_sid:
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

    def line_type(self, number: str) -> str:
        """Lookup v2 line type intelligence of ``number``: "mobile", "landline", "fixedVoip", "nonFixedVoip", … or ""
        when Twilio does not say. Raises ``ProviderError``."""
        self._require_credentials()
        with _twilio_errors():
            found = self.client.lookups.v2.phone_numbers(number).fetch(fields="line_type_intelligence")
        intelligence = found.line_type_intelligence or {}
        return str(intelligence.get("type") or "")

    def fetch_status(self, message_sid: str) -> StatusEvent:
        """``GET …/Messages/{sid}.json``: the status (and error code) Twilio holds for the message now, and its price
        once Twilio has set it (the create answer usually has none yet)."""
        self._require_credentials()
        with _twilio_errors():
            message = self.client.messages(message_sid).fetch()
        return StatusEvent(
            message_sid=str(message.sid),
            status=delivery_state(str(message.status or "")),
            error_code=str(message.error_code) if message.error_code else "",
            to_number=str(message.to or ""),
            provider=self.name,
            price=_decimal(message.price),
            price_unit=str(message.price_unit or "") if message.price not in (None, "") else "",
        )

    def find_sent(self, *, to: str, sent_after: dt.datetime, channel: str = "sms") -> list[ProviderMessage]:
        """``GET …/Messages.json?To=…&DateSent>=…``: the newest FIND_SENT_LIMIT of what Twilio sent to the address,
        written as it was sent (``whatsapp:+E164``, ``messenger:<id>``: Twilio lists a WhatsApp message under that
        ``To``, not under the bare number)."""
        self._require_credentials()
        with _twilio_errors():
            messages = self.client.messages.list(
                to=twilio_address(channel, to), date_sent_after=sent_after, limit=FIND_SENT_LIMIT
            )
        return [
            ProviderMessage(
                sid=str(m.sid),
                status=delivery_state(str(m.status or "")),
                error_code=str(m.error_code) if m.error_code else "",
                to=str(m.to or ""),
                body=str(m.body or ""),
            )
            for m in messages
        ]

    # Content Templates

    def list_content_templates(self) -> list[ContentListing]:
        """Every Content Template of the account with its WhatsApp approval, through the Content API's
        ContentAndApprovals list (all pages). Raises ``ProviderError``."""
        self._require_credentials()
        try:
            with _twilio_errors():
                rows = self.client.content.v1.content_and_approvals.list(page_size=CONTENT_PAGE_SIZE)
        except ProviderError as exc:
            raise _page_error(exc) from None
        return [_listing(row) for row in rows]

    def templates(self) -> list[MessageTemplate]:
        from .models import ContentTemplate

        return [_template(t) for t in ContentTemplate.objects.filter(removed_at__isnull=True)]

    def template(self, sid: str) -> MessageTemplate | None:
        from .models import ContentTemplate

        row = ContentTemplate.objects.filter(sid=sid).first()
        return _template(row) if row is not None else None

    # Webhooks

    def _validators(self) -> list[RequestValidator]:
        # Twilio signs with the account's auth token; an API key secret is accepted too when it is the credential.
        # Made once per provider (a new configuration makes a new provider): every webhook checks a signature.
        if self._request_validators is None:
            secrets = (self.config.auth_token, self.config.api_key_secret)
            self._request_validators = [RequestValidator(s) for s in secrets if s]
        return self._request_validators

    def verify_signature(self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> None:
        if settings.SMS_CALLBACK_SKIP_SIGNATURE:
            return
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get("x-twilio-signature", "")
        if not signature:
            raise WebhookRejected(403, "Missing X-Twilio-Signature.")
        algorithm = get_signature_algorithm(lower.get(SIGNATURE_SETTINGS_HEADER.lower(), ""))
        full_url = url if "://" in url else settings.PUBLIC_BASE_URL + url
        for validator in self._validators():
            if _signed_as_is(validator, full_url, params, signature, algorithm):
                return
            # validate() checks the URL with and without the default port, as Twilio's back end is inconsistent.
            if validator.validate(full_url, params, signature, algorithm):
                return
        raise WebhookRejected(403, "Invalid X-Twilio-Signature.")

    def parse_webhook(
        self, *, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundEvent | StatusEvent:
        self.verify_signature(url=url, params=params, headers=headers)
        return parse_twilio_params(params, account_sid=self.config.account_sid)

    # The vocabulary

    def explain(self, code: str) -> str:
        return explain(code)

    def error_kind(self, code: str) -> ErrorKind | None:
        """A status callback's ErrorCode: 21610 is an opt-out; 30005, 30006 a bad address; another delivery error
        (30003 …) is permanent."""
        return classify(400, int(code)) if code.isdigit() else None

    def sender_reaches(self, sender: Sender, country: str) -> bool:
        if sender.kind != "alphanumeric":
            return True
        return bool(country) and country.upper() not in ALPHANUMERIC_UNSUPPORTED


# Twilio names the signature's algorithm here when the account signs with HMAC-SHA256 (twilio's get_signature_algorithm
# reads the value).
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def _signed_as_is(
    validator: RequestValidator, url: str, params: Mapping[str, str], signature: str, algorithm: str | None
) -> bool:
    """The common case first, with one HMAC: the URL as it was configured, as Twilio signs it almost always (no port
    for https://host/…; its own port for http://127.0.0.1:8000/… or a tunnel's). ``validate`` computes two (with and
    without the port) every time, and the configured URL is always one of them; ``validate`` stays the answer for
    everything else (the other variant, a body hash, an unknown algorithm), so what is accepted is exactly what
    ``validate`` accepts."""
    if "bodySHA256" in url or (algorithm or HMAC_SHA1).upper() not in {HMAC_SHA1, HMAC_SHA256}:
        return False
    fields = _Values(params) if type(params) is dict else params  # a QueryDict has its own getlist
    # geturl() is what validate() signs for either variant: add_port() keeps a URL that has a port as it is,
    # remove_port() one that has none.
    expected = validator.compute_signature(urlparse(url).geturl(), fields, algorithm)
    return bool(compare(expected, signature))


class _Values(dict[str, str]):
    """A webhook's fields as ``compute_signature`` reads them fastest: it asks ``getall`` first (then ``getlist``, then
    the key), so a plain dict costs it two exceptions per field, a third of a signature's time."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


CONTENT_PAGE_SIZE = 500


@dataclass(frozen=True)
class ContentListing:
    """One Content Template as the Content API lists it (with its WhatsApp approval request, if any)."""

    sid: str
    friendly_name: str
    language: str
    types: dict[str, Any]
    variables: dict[str, str]
    approval_status: str
    approval_category: str
    rejection_reason: str
    date_updated: dt.datetime | None


def _page_error(error: ProviderError) -> ProviderError:
    """A list's refused page: the client raises a bare ``TwilioException("Unable to fetch page", response)``, which
    ``_twilio_errors`` cannot read; Twilio's code and words are in the response's JSON body."""
    cause = error.__context__
    response = cause.args[1] if isinstance(cause, TwilioException) and len(cause.args) > 1 else None
    if not isinstance(response, Response):
        return error
    try:
        body = json.loads(response.text)
        code = int(body["code"]) if body.get("code") is not None else None
        message = str(body.get("message") or f"HTTP {response.status_code}")
    except (ValueError, TypeError, KeyError, AttributeError):
        code, message = None, f"HTTP {response.status_code}"
    kind = classify(response.status_code, code)
    return ProviderError(kind, str(code or response.status_code), message, status=response.status_code)


def _listing(row: Any) -> ContentListing:
    approval = row.approval_requests if isinstance(row.approval_requests, dict) else {}
    return ContentListing(
        sid=str(row.sid),
        friendly_name=str(row.friendly_name or ""),
        language=str(row.language or ""),
        types=dict(row.types or {}),
        variables={str(k): str(v) for k, v in (row.variables or {}).items()},
        approval_status=str(approval.get("status") or ""),
        approval_category=str(approval.get("category") or ""),
        rejection_reason=str(approval.get("rejection_reason") or ""),
        date_updated=row.date_updated if isinstance(row.date_updated, dt.datetime) else None,
    )


def _template(row: Any) -> MessageTemplate:
    return MessageTemplate(
        sid=row.sid,
        name=row.friendly_name or row.sid,
        language=row.language,
        types=tuple(row.type_names),
        variables={str(k): str(v) for k, v in row.variables.items()},
        body=row.body,
        media_urls=tuple(row.media_urls),
        approval=row.approval_status,
        removed=row.removed_at is not None,
    )


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


# One provider per process while the configuration is unchanged, so a worker keeps its pooled HTTP connections
# across thousands of sends; a replaced one closes its asynchronous connections on the loop that opened them.
_cached: tuple[TwilioConfig, TwilioProvider] | None = None


def _close_later(provider: TwilioProvider) -> None:
    if provider._async_client is not None:
        from .. import aio

        aio.submit(provider.aclose())


def twilio_provider() -> TwilioProvider:
    """The Twilio provider for the configuration in effect now (the registry's factory)."""
    global _cached
    config = get_config()
    if _cached is None or _cached[0] != config:
        old, _cached = _cached, (config, TwilioProvider(config))
        if old is not None:
            _close_later(old[1])
    return _cached[1]

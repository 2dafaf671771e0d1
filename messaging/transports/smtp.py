"""SMTP delivery with aiosmtplib over one reused connection.

``SAMVERKAN_SMTP_URL`` forms::

    smtp://host:25                       plain (STARTTLS used if the server offers it)
    smtp://user:pass@host:587?starttls=true
    smtps://user:pass@host:465           TLS from the first byte
    ...?verify=false                     accept a self-signed certificate (test relays)
"""

from __future__ import annotations

from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from messaging.compose import AddressError, addr_spec
from messaging.transports.base import (
    Envelope,
    PermanentFailure,
    Receipt,
    TemporaryFailure,
    UncertainDelivery,
)
from store.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(query: dict[str, list[str]], name: str) -> bool | None:
    if name not in query:
        return None
    value = query[name][-1].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"SAMVERKAN_SMTP_URL: {name}= takes true or false, not {value!r}")


async def _command(
    client: aiosmtplib.SMTP, verb: bytes, argument: str, *, ok: tuple[int, ...]
) -> None:
    reply = await client.execute_command(verb, argument.encode("ascii"))
    if reply.code not in ok:
        raise aiosmtplib.SMTPResponseException(reply.code, reply.message)


def _classify(code: int, text: str) -> TemporaryFailure | PermanentFailure:
    reason = f"{code} {text}".strip()
    return TemporaryFailure(reason) if 400 <= code < 500 else PermanentFailure(reason)


class SMTPTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool | None = None,
        validate_certs: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self._kw = dict(
            hostname=host,
            port=port,
            username=username,
            password=password,
            use_tls=use_tls,
            start_tls=start_tls,
            validate_certs=validate_certs,
            timeout=timeout,
        )
        self._client: aiosmtplib.SMTP | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SMTPTransport:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ConfigError(
                f"SAMVERKAN_SMTP_URL must start with smtp:// or smtps://, not {parts.scheme!r}"
            )
        if not parts.hostname:
            raise ConfigError("SAMVERKAN_SMTP_URL has no host name")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("SAMVERKAN_SMTP_URL has a port that is not a number") from None
        query = parse_qs(parts.query)
        use_tls = parts.scheme == "smtps"
        verify = _flag(query, "verify")
        return cls(
            host=parts.hostname,
            port=port or (465 if use_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=None if use_tls else _flag(query, "starttls"),
            validate_certs=verify is not False,
            timeout=timeout,
        )

    async def check(self) -> None:
        """Connect, greet and log in, then leave: whether sending could work (sends nothing).

        Raises TemporaryFailure or PermanentFailure saying why not.
        """
        await self._connected()
        await self._drop(polite=True)

    async def __aenter__(self) -> SMTPTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._drop(polite=True)

    async def _drop(self, *, polite: bool) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            if polite:
                await client.quit()
            else:
                client.close()
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(**self._kw)  # type: ignore[arg-type]
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(f"SMTP login refused: {exc.code} {exc.message}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self._client = client
        return client

    async def send(self, envelope: Envelope) -> Receipt:
        try:
            sender, recipient = addr_spec(envelope.sender), addr_spec(envelope.recipient)
        except AddressError as exc:
            raise PermanentFailure(str(exc)) from None
        client = await self._connected()
        # Up to RCPT nothing has been delivered: any failure can be retried safely.
        # MAIL and RCPT are written directly: aiosmtplib's mail()/rcpt() parse each address
        # with the email package again, about a tenth of the CPU of sending.
        try:
            await _command(client, b"MAIL", f"FROM:<{sender}>", ok=(250,))
            await _command(client, b"RCPT", f"TO:<{recipient}>", ok=(250, 251))
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop(polite=False)
            raise TemporaryFailure(f"connection lost before sending: {exc}") from None
        # Once the content is out, only the server's reply says what happened.
        try:
            reply = await client.data(envelope.data)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise _classify(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop(polite=False)
            raise UncertainDelivery(
                f"no reply after the message was sent ({type(exc).__name__}: {exc}); "
                "it may or may not have arrived"
            ) from None
        return Receipt(reply=reply.message)

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """After a refusal the session must be reset before the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._drop(polite=False)

"""Sending letters by e-mail over SMTP.

Settings come from the environment; without ``AR_SMTP_HOST`` nothing is sent (letters are produced
as files instead):

=====================  =====================================================  ===========
variable               meaning                                                default
=====================  =====================================================  ===========
``AR_SMTP_HOST``       mail server host name                                  (unset: no e-mail)
``AR_SMTP_PORT``       port                                                   25 / 587 / 465
``AR_SMTP_TLS``        ``none``, ``starttls`` or ``ssl``                       ``starttls``
``AR_SMTP_USER``       log-in user (with ``AR_SMTP_PASSWORD``)                 (none)
``AR_SMTP_PASSWORD``   log-in password                                        (none)
``AR_SMTP_FROM``       the sender address                                     (required with a host)
=====================  =====================================================  ===========

Example
-------
>>> settings_from_env({}) is None
True
"""
from __future__ import annotations

import dataclasses
import html
import os
import smtplib
import ssl
from email.message import EmailMessage

from analytics.errors import UserError


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send."""

    host: str
    sender: str
    port: int = 587
    tls: str = "starttls"
    user: str | None = None
    password: str | None = None
    timeout: float = 20.0


def settings_from_env(env=None) -> SmtpSettings | None:
    """The SMTP settings from ``AR_SMTP_*`` (None when no host is configured).

    Raises
    ------
    UserError
        A host without a sender, a port that is not a number, an unknown TLS mode.

    Example
    -------
    >>> settings_from_env({"AR_SMTP_HOST": "127.0.0.1", "AR_SMTP_FROM": "ar@x.com", "AR_SMTP_TLS": "none"}).port
    25
    """
    env = os.environ if env is None else env
    host = (env.get("AR_SMTP_HOST") or "").strip()
    if not host:
        return None
    tls = (env.get("AR_SMTP_TLS") or "starttls").strip().lower()
    if tls not in ("none", "starttls", "ssl"):
        raise UserError(f"AR_SMTP_TLS: {tls!r} must be none, starttls or ssl")
    sender = (env.get("AR_SMTP_FROM") or "").strip()
    if "@" not in sender:
        raise UserError(f"AR_SMTP_FROM: {sender!r} must be the sender's e-mail address when AR_SMTP_HOST is set")
    port_text = env.get("AR_SMTP_PORT") or {"none": "25", "starttls": "587", "ssl": "465"}[tls]
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"AR_SMTP_PORT: {port_text!r} is not a port number") from None
    return SmtpSettings(host=host, sender=sender, port=port, tls=tls, user=env.get("AR_SMTP_USER") or None,
                        password=env.get("AR_SMTP_PASSWORD") or None)


def escape_html(text: str) -> str:
    """``text`` safe inside HTML.

    Example
    -------
    >>> escape_html("A & <B>")
    'A &amp; &lt;B&gt;'
    """
    return html.escape(text, quote=True)


def build_message(settings: SmtpSettings, to: str, subject: str, text: str, html: str,
                  attachments: list[tuple[str, bytes, str]] = ()) -> EmailMessage:
    """A multipart message: plain text, HTML alternative, and attachments ``(file name, bytes, mime type)``.

    Example
    -------
    >>> m = build_message(SmtpSettings("h", "a@x.com"), "b@y.com", "Hi", "t", "<p>t</p>")
    >>> m["To"]
    'b@y.com'
    """
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = settings.sender, to, subject
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for name, data, mime in attachments:
        main, sub = mime.split("/", 1)
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg


def send(settings: SmtpSettings, msg: EmailMessage) -> None:
    """Deliver one message; raises :class:`UserError` with the server's answer when it is refused.

    Example
    -------
    >>> send(settings_from_env(), msg)  # doctest: +SKIP
    """
    try:
        if settings.tls == "ssl":
            server = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with server:
            if settings.tls == "starttls":
                server.starttls(context=ssl.create_default_context())
            if settings.user:
                server.login(settings.user, settings.password or "")
            refused = server.send_message(msg)
        if refused:
            raise UserError(f"mail server refused {', '.join(refused)}: {refused}")
    except (smtplib.SMTPException, OSError) as exc:
        raise UserError(f"e-mail to {msg['To']} via {settings.host}:{settings.port} failed: {exc}") from exc


def text_pdf(text: str) -> bytes:
    """A letter's plain text as a PDF (monospaced, A4), for the e-mail attachment.

    Example
    -------
    >>> text_pdf("Dear customer").startswith(b"%PDF")
    True
    """
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Courier", "", 8.5)
    for line in text.encode("latin-1", "replace").decode("latin-1").splitlines() or [""]:
        pdf.multi_cell(0, 4, line or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

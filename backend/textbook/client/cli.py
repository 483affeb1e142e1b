"""The `textbook` command's client side: login, logout, ask, search (textbook/cli.py adds them).

Tokens are kept per server in the user's config directory (platformdirs:
`~/.config/textbook/credentials.json` on Linux), mode 0600, never on the command line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from textbook.client import models
from textbook.client._base import DEFAULT_URL, api_base
from textbook.client.errors import TextbookError
from textbook.client.sync import TextbookClient

URL_ENV = "TEXTBOOK_URL"
PASSWORD_ENV = "TEXTBOOK_PASSWORD"  # noqa: S105 - a variable name, not a secret
SITE_ENV = "TEXTBOOK_SITE_URL"
CREDENTIALS = "credentials.json"


class ClientCommandError(Exception):
    """A failure explained in one line; exit status 1."""


# --- the credentials file --------------------------------------------------------------------


def credentials_path() -> Path:
    return platformdirs.user_config_path("textbook") / CREDENTIALS


def load_credentials() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError) as exc:
        raise ClientCommandError(
            f"textbook: cannot read {path}: {exc} (remove it and log in again)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        raise ClientCommandError(f"textbook: {path} is not a credentials file (remove it)")
    return data


def save_credentials(data: dict[str, Any]) -> None:
    """Written whole to a 0600 file beside it, then renamed over it: never half a file, never
    readable by others, even for a moment."""
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{CREDENTIALS}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.replace(partial, path)


# --- which server ----------------------------------------------------------------------------


def resolve_url(given: str | None, credentials: dict[str, Any]) -> str:
    """--url, else $TEXTBOOK_URL, else the server last logged in to, else the local one."""
    url = given or os.environ.get(URL_ENV) or credentials.get("default") or DEFAULT_URL
    try:
        api_base(url)
    except ValueError as exc:
        raise ClientCommandError(f"textbook: {exc}") from None
    return str(url)


def open_client(args: argparse.Namespace, *, login_required: bool) -> TextbookClient:
    credentials = load_credentials()
    url = resolve_url(args.url, credentials)
    key = api_base(url)
    saved: dict[str, Any] = credentials["servers"].get(key, {})
    ca_file = args.ca_file or saved.get("ca_file")
    connect_to = args.connect_to or saved.get("connect_to")
    tokens = None
    if saved.get("access_token"):
        tokens = models.Tokens(
            access_token=saved["access_token"],
            refresh_token=saved.get("refresh_token", ""),
            expires_at=float(saved.get("expires_at", 0)),
        )
    elif login_required:
        raise ClientCommandError(f"textbook: not logged in to {url}; run: textbook login {url}")

    def keep(new: models.Tokens | None) -> None:
        current = load_credentials()
        entry = current["servers"].setdefault(key, {"url": url})
        if new is None:
            for name in ("access_token", "refresh_token", "expires_at"):
                entry.pop(name, None)
        else:
            entry.update(
                access_token=new.access_token,
                refresh_token=new.refresh_token,
                expires_at=new.expires_at,
            )
        save_credentials(current)

    return TextbookClient(
        url,
        tokens=tokens,
        on_tokens=keep,
        ca_file=_ca_file(ca_file),
        connect_to=connect_to,
    )


def _ca_file(path: str | None) -> str | None:
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ClientCommandError(f"textbook: --ca-file {path}: no such file")
    return str(resolved)


# --- commands --------------------------------------------------------------------------------


def read_password() -> str:
    """From TEXTBOOK_PASSWORD, else piped stdin, else a prompt (never from argv)."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = (
            getpass.getpass("Password: ")
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\r\n")
        )
    if not password:
        raise ClientCommandError(f"textbook: no password (set {PASSWORD_ENV}, pipe it, or type it)")
    return password


def cmd_login(args: argparse.Namespace) -> int:
    credentials = load_credentials()
    url = resolve_url(args.url, credentials)
    email = args.email
    if not email:
        if not sys.stdin.isatty():
            raise ClientCommandError("textbook: --email is required when stdin is not a terminal")
        email = input("E-mail: ").strip()
    password = read_password()
    key = api_base(url)
    ca_file = _ca_file(args.ca_file)
    with TextbookClient(url, ca_file=ca_file, connect_to=args.connect_to) as api:
        if args.register:
            api.register(email, password)
        tokens = api.login(email, password)
    credentials = load_credentials()  # as it is now, not as it was before the prompts
    credentials["servers"][key] = {
        "url": url,
        "email": email,
        "ca_file": ca_file,
        "connect_to": args.connect_to,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
    }
    credentials["default"] = url
    save_credentials(credentials)
    print(f"logged in to {url} as {email} (token kept in {credentials_path()})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    with open_client(args, login_required=True) as api:
        api.logout()
    print(f"logged out of {api.url}: every token of this user is revoked")
    return 0


def _selected_text(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ClientCommandError(f"textbook: --selected-text {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientCommandError(
            f"textbook: --selected-text {path}: not UTF-8 text (byte {exc.start})"
        ) from None
    if not text.strip():
        raise ClientCommandError(f"textbook: --selected-text {path}: the file is empty")
    return text.strip()


def link(url: str, site: str | None) -> str:
    """A citation's link: the textbook site's path, absolute when the site's URL is known."""
    return f"{site.rstrip('/')}{url}" if site else url


def print_citations(citations: list[models.Citation], site: str | None, out: TextIO) -> None:
    if not citations:
        return
    print("\nSources:", file=out)
    for number, citation in enumerate(citations, 1):
        print(
            f"  [{number}] {citation.chapter_title} > {citation.section}  "
            f"{link(citation.url, site)}",
            file=out,
        )


def cmd_ask(args: argparse.Namespace) -> int:
    selected = _selected_text(args.selected_text)
    site = args.site or os.environ.get(SITE_ENV)
    options: dict[str, Any] = {
        "conversation": args.conversation,
        "selected_text": selected,
        "module": args.module,
        "chapter": args.chapter,
    }
    with open_client(args, login_required=True) as api:
        if args.no_stream:
            answer = api.chat(args.question, **options)
            print(answer.answer)
            print_citations(answer.citations, site, sys.stdout)
            conversation = answer.session_id
        else:
            citations: list[models.Citation] = []
            conversation = None
            for event in api.chat_stream(args.question, **options):
                if isinstance(event, models.StreamStart):
                    citations, conversation = event.citations, event.session_id
                elif isinstance(event, models.StreamToken):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            print()
            print_citations(citations, site, sys.stdout)
    print(
        f"\n(conversation {conversation}: continue with --conversation {conversation})",
        file=sys.stderr,
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with open_client(args, login_required=False) as api:
        found = api.search(args.query, limit=args.limit, module=args.module, chapter=args.chapter)
    if args.json:
        print(found.model_dump_json(indent=2))
        return 0
    if not found.results:
        print(f"nothing found for {args.query!r}")
        return 0
    site = args.site or os.environ.get(SITE_ENV)
    for number, hit in enumerate(found.results, 1):
        text = " ".join(hit.text.split())
        print(f"{number}. {hit.chapter_title} > {hit.section}  {link(hit.url, site)}")
        print(f"   {text[:200]}{'...' if len(text) > 200 else ''}")
    return 0


# --- the parser ------------------------------------------------------------------------------


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help=f"the deployment (default ${URL_ENV}, else the last login's, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--ca-file", help="trust this CA (PEM) instead of the system's, e.g. a private CA"
    )
    parser.add_argument(
        "--connect-to",
        metavar="ADDRESS",
        help="connect to this address instead of the URL's host (TLS still checks the URL's name)",
    )


def add_commands(sub: Any) -> None:
    """The client commands, on the `textbook` command's subparsers."""
    login = sub.add_parser(
        "login",
        help=f"log in and keep the token (password from ${PASSWORD_ENV}, stdin or a prompt)",
    )
    login.add_argument("url", nargs="?", help=f"the deployment's URL (default {DEFAULT_URL})")
    login.add_argument("--email", help="the account's e-mail (prompted when not given)")
    login.add_argument("--register", action="store_true", help="create the account first")
    login.add_argument("--ca-file", help="trust this CA (PEM), kept for later commands")
    login.add_argument(
        "--connect-to", metavar="ADDRESS", help="as for ask; kept for later commands"
    )
    login.set_defaults(func=guarded(cmd_login))

    logout = sub.add_parser("logout", help="revoke every token of this user on that deployment")
    _server_options(logout)
    logout.set_defaults(func=guarded(cmd_logout))

    ask = sub.add_parser("ask", help="ask the textbook; the answer is printed as it is written")
    ask.add_argument("question")
    _server_options(ask)
    ask.add_argument(
        "--selected-text",
        metavar="FILE",
        help="answer from this passage alone (a UTF-8 file, - for stdin); no retrieval",
    )
    ask.add_argument("--conversation", metavar="ID", help="continue this conversation")
    ask.add_argument("--module", help="search only this module")
    ask.add_argument("--chapter", metavar="SLUG", help="search only this chapter")
    ask.add_argument(
        "--no-stream", action="store_true", help="print the answer when it is complete"
    )
    ask.add_argument("--site", help=f"the textbook site's URL, for absolute links (${SITE_ENV})")
    ask.set_defaults(func=guarded(cmd_ask))

    search = sub.add_parser("search", help="passages of the textbook that match")
    search.add_argument("query")
    _server_options(search)
    search.add_argument("--limit", type=int, default=5, help="at most this many (1-20; default 5)")
    search.add_argument("--module", help="only this module")
    search.add_argument("--chapter", metavar="SLUG", help="only this chapter")
    search.add_argument("--site", help=f"the textbook site's URL, for absolute links (${SITE_ENV})")
    search.add_argument("--json", action="store_true", help="the API's answer as JSON")
    search.set_defaults(func=guarded(cmd_search))


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The command, with every failure as one `textbook: ...` line and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ClientCommandError as exc:
            print(str(exc), file=sys.stderr)
        except (TextbookError, ValueError, OSError) as exc:  # ValueError: a bad URL, id, slug
            print(f"textbook: {exc}", file=sys.stderr)
        return 1

    return run

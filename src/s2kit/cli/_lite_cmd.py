"""``s2kit lite``: run the server in the foreground until SIGINT/SIGTERM, then drain."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import ssl
import sys
import tempfile

from s2kit.server import DataDirError, Lite, LiteConfig
from s2kit.server._app import is_loopback
from s2kit.server._front import (
    Limits,
    TlsConfigError,
    default_max_connections,
    generate_self_signed_cert,
    make_server_context,
    raise_fd_limit,
)
from s2kit.server._logging import configure as configure_logging
from s2kit.server._tokens_gate import root_token_problem


def _tune_gc() -> None:
    # This process is lite's own, so it may tune the collector: records are acyclic and freed
    # by reference counting, but every stored one is a tracked object, and frequent young
    # collections plus full passes over a growing heap show up as ack-latency tails. Objects
    # alive at start-up are frozen out of collection altogether.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run(args: argparse.Namespace) -> int:
    """Start lite with the parsed flags (or run ``s2kit lite verify``)."""
    if getattr(args, "lite_command", None) == "verify":
        from s2kit.server._verify import main as verify

        return verify([args.data_dir])
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.stderr.write("s2kit lite: --tls-cert and --tls-key go together\n")
        return 2
    ssl_context = None
    self_signed: bytes | None = None
    try:
        if args.tls_self:
            ssl_context, self_signed = _self_signed()
        elif args.tls_cert:
            ssl_context = make_server_context(args.tls_cert, args.tls_key)
    except TlsConfigError as exc:
        sys.stderr.write(f"s2kit lite: {exc}\n")
        return 1
    if args.tls_only and ssl_context is None:
        sys.stderr.write("s2kit lite: --tls-only needs --tls-self or --tls-cert/--tls-key\n")
        return 2
    port = args.port if args.port is not None else (443 if ssl_context else 80)
    raise_fd_limit()  # this process is lite's own: room for its connection cap
    limits = Limits(
        max_connections=default_max_connections(args.max_connections or 10_000),
        **{
            name: value
            for name in ("header_timeout", "body_timeout", "send_timeout", "idle_timeout")
            if (value := getattr(args, name)) is not None
        },
    )
    optional = {
        name: value
        for name in ("memory_budget", "append_inflight_bytes", "delete_on_empty_grace")
        if (value := getattr(args, name)) is not None
    }
    root_token = args.root_token or os.environ.get(ROOT_TOKEN_ENV) or None
    if args.root_token and not args.auth:
        sys.stderr.write("s2kit lite: --root-token needs --auth\n")
        return 2
    if args.auth and root_token is not None and (problem := root_token_problem(root_token)):
        sys.stderr.write(f"s2kit lite: {problem} (--root-token / {ROOT_TOKEN_ENV})\n")
        return 2
    config = LiteConfig(
        host=args.host,
        port=port,
        flush_interval=args.flush_interval / 1000.0,
        ssl_context=ssl_context,
        tls_only=args.tls_only,
        cors=not args.no_cors,
        cors_origins=tuple(args.cors_origin),
        allowed_hosts=tuple(args.allow_host),
        data_dir=args.data_dir,
        check_pages=not args.skip_page_check,
        auth=args.auth,
        root_token=root_token if args.auth else None,
        limits=limits,
        **optional,
    )
    if not is_loopback(args.host) and not args.auth:
        sys.stderr.write(
            f"s2kit lite: warning: listening on {args.host}, reachable from other machines, "
            "and lite checks no access tokens (--auth makes it): anyone who can connect can "
            "read and write\n"
        )
    # Undone at the end: `main(["lite", ...])` may run inside a longer-lived process (tests).
    restore_logging = configure_logging(args.log_level, args.log_format)
    try:
        _tune_gc()
        asyncio.run(_serve(config, self_signed))
    except DataDirError as exc:
        sys.stderr.write(f"s2kit lite: {exc}\n")
        return 1
    except _ListenError as exc:
        sys.stderr.write(f"s2kit lite: cannot listen on {args.host}:{port}: {exc}\n")
        return 1
    finally:
        restore_logging()
    return 0


ROOT_TOKEN_ENV = "S2KIT_ROOT_TOKEN"
"""Where ``s2kit lite --auth`` takes its root token from when ``--root-token`` is not given."""


def _token_line(config: LiteConfig, root_token: str | None) -> str:
    """The start-up hint's S2_ACCESS_TOKEN line: only a root token lite generated is shown
    (a given one is the operator's already, and stdout may end up in a log)."""
    if not config.auth:
        return "  export S2_ACCESS_TOKEN=ignored"
    if config.root_token is None:
        return (
            f"  export S2_ACCESS_TOKEN={root_token}"
            "  # the root token (every operation); issue scoped ones from it"
        )
    if os.environ.get(ROOT_TOKEN_ENV) == config.root_token:
        return f'  export S2_ACCESS_TOKEN="${ROOT_TOKEN_ENV}"  # the root token'
    return "  # and S2_ACCESS_TOKEN: the root token given with --root-token"


class _ListenError(Exception):
    """The port cannot be bound (in use, no permission)."""


def _self_signed() -> tuple[ssl.SSLContext, bytes]:
    """A server context with a fresh self-signed certificate, and that certificate (PEM)."""
    cert_pem, key_pem = generate_self_signed_cert()
    # ssl loads keys from files only: the key lives in a private directory for a moment.
    with tempfile.TemporaryDirectory(prefix="s2kit-tls-") as directory:
        paths = [os.path.join(directory, name) for name in ("cert.pem", "key.pem")]
        for path, data in zip(paths, (cert_pem, key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        return make_server_context(*paths), cert_pem


def _write_cert(cert_pem: bytes, port: int) -> str:
    """Save the self-signed certificate where clients can be pointed at it; returns the path.

    One file per port, so restarting lite on a port refreshes the file its clients already
    name. The user's cache directory is preferred (it survives reboots, others cannot plant a
    file there); a fresh temporary directory serves when it is not writable.
    """
    from s2kit.cli._config_file import cache_dir

    name = f"lite-{port}-cert.pem"
    try:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        tmp = directory / f".{name}.{os.getpid()}"
        tmp.write_bytes(cert_pem)
        os.replace(tmp, path)
        return str(path)
    except OSError:
        path_str = os.path.join(tempfile.mkdtemp(prefix="s2kit-lite-"), name)
        with open(path_str, "wb") as file:
            file.write(cert_pem)
        return path_str


async def _serve(config: LiteConfig, self_signed: bytes | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lite = Lite(config)
    try:
        await lite.start()
    except OSError as exc:
        raise _ListenError(exc.strerror or str(exc)) from None
    try:
        url = lite.url
        lines = [
            f"s2kit lite is serving on {url} (HTTP/1.1, h2c"
            + (", TLS h2" if config.ssl_context else "")
            + ")",
            "Point S2 clients at it:",
            f"  export S2_ACCOUNT_ENDPOINT={url}",
            f"  export S2_BASIN_ENDPOINT={url}",
            _token_line(config, lite.root_token),
        ]
        if self_signed is not None:
            cert = _write_cert(self_signed, lite.port)
            lines += [
                f"  export SSL_CERT_FILE={cert}  # trust lite's self-signed certificate",
                f"  export NODE_EXTRA_CA_CERTS={cert}  # the same for Node.js",
                "  # SSL_CERT_FILE replaces the trusted CAs in that shell (Python, OpenSSL, curl);",
                "  # or skip TLS checks instead: export S2_SSL_NO_VERIFY=1 (s2kit, the s2 CLI)",
            ]
        if config.data_dir is not None:
            lines.append(f"Data is kept durably in {config.data_dir}")
        else:
            lines.append(
                "Data is kept in memory and lost when lite stops (--data-dir DIR keeps it)"
            )
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        await stop.wait()
        sys.stdout.write("s2kit lite: draining and stopping\n")
    finally:
        await lite.aclose()

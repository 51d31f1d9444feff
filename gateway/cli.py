"""``gateway serve`` and ``gateway export-schema [--client] [--check]`` (also
``python -m gateway``)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from pydantic import ValidationError
from starlette.types import ASGIApp

from gateway import standin
from gateway.config import Settings
from gateway.http.guard import GatewayHttpProtocol

SCHEMA_FILE = Path("schema.graphql")
CLIENT_SCHEMA_FILE = Path("client-schema.graphql")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the GraphQL gateway with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (each a full gateway)"
    )

    export = commands.add_parser(
        "export-schema",
        help="write the subgraph SDL to schema.graphql (--client: client-schema.graphql)",
    )
    export.add_argument(
        "--path",
        type=Path,
        default=None,
        help="the file (default: schema.graphql or, with --client, client-schema.graphql)",
    )
    export.add_argument(
        "--check", action="store_true", help="fail if the file differs from the code"
    )
    variant = export.add_mutually_exclusive_group()
    variant.add_argument(
        "--client",
        action="store_true",
        help="the API schema clients load (no federation fields, types or directives)",
    )
    variant.add_argument(
        "--auth-directives",
        action="store_true",
        help="the subgraph SDL with @authenticated, as served with "
        "GATEWAY_FEDERATION_AUTH_DIRECTIVES=true",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.host, args.port, args.workers)
    path = args.path or (CLIENT_SCHEMA_FILE if args.client else SCHEMA_FILE)
    return _export_schema(
        path, check=args.check, client=args.client, auth_directives=args.auth_directives
    )


def _serve(host: str, port: int, workers: int) -> int:
    import uvicorn

    from gateway.http.observability import configure_logging

    try:
        settings = Settings()
    except ValidationError as error:
        _refuse_configuration(error)
        return 2
    if settings.trusted_documents is not None:
        # Checked before the workers start, so that a bad manifest is one clear line.
        from gateway.http.persisted import TrustedDocumentsError, load_trusted_documents
        from gateway.schema import build_schema

        try:
            load_trusted_documents(
                settings.trusted_documents, build_schema(settings.query_limits())._schema
            )
        except TrustedDocumentsError as error:
            print(
                f"gateway: refusing to start: GATEWAY_TRUSTED_DOCUMENTS: {error}",
                file=sys.stderr,
                flush=True,
            )
            return 2
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    if settings.embedded:
        _announce_standin(host, port)
    _warn_of_per_process_rates(settings, workers)
    uvicorn.run(
        "gateway.cli:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn's own protocol has no deadline on a request's headers; this one adds it.
        http=GatewayHttpProtocol,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep our handlers (JSON lines); uvicorn's access log is ours
        access_log=False,
        proxy_headers=False,
        # Subscriptions over graphql-transport-ws: a message is a request, bounded as a body
        # is; uvicorn's pings (every 20 s) keep idle connections open through proxies.
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


def _refuse_configuration(error: ValidationError) -> None:
    """Why the settings were refused, one line each, naming the variables (never their
    values: pydantic's own text would print the token)."""
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        # A field's variable: its alias (METRONOME_...) or GATEWAY_ and its name.
        where = field if field.isupper() or not field else f"GATEWAY_{field.upper()}"
        message = problem["msg"].removeprefix("Value error, ")
        print(
            f"gateway: refusing to start: {where + ': ' if where else ''}{message}",
            file=sys.stderr,
            flush=True,
        )


def app_from_environment() -> ASGIApp:
    """The app as each uvicorn worker builds it: settings from the environment."""
    from gateway.app import create_app
    from gateway.http.observability import configure_logging, configure_tracing

    settings = Settings()
    # Worker processes are spawned afresh: they set up logging and tracing themselves.
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    if configure_tracing():
        logging.getLogger("gateway").info("exporting traces over OTLP")
    app = create_app(settings)
    tune_garbage_collector()
    return app


def tune_garbage_collector() -> None:
    """Keeps the cycle collector off what lives as long as the process (modules, the schema,
    the app), and lets it run less often: a request allocates thousands of short-lived
    containers that reference counting frees, and with CPython's defaults (700, 10, 10) the
    full collections that walk the whole heap cost about a fifth of shape C's CPU
    (BENCHMARKS.md, "Round two: the pipeline's fixed costs"). Done in the serving process
    only: tests build many apps in one process and should not freeze them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7_000, 10, 10)


def _warn_of_per_process_rates(settings: Settings, workers: int) -> None:
    """Without Redis each worker counts the rates alone: say so where the operator looks."""
    if workers < 2 or settings.redis_url is not None:
        return
    for variable, rate in (
        ("GATEWAY_CALLER_RATE", settings.caller_rate),
        ("GATEWAY_UPSTREAM_RATE", settings.upstream_rate),
    ):
        if rate:
            logging.getLogger("gateway").warning(
                "%s (%s) is counted by each of the %d workers alone without GATEWAY_REDIS_URL: "
                "together they allow up to %d times as much",
                variable,
                rate,
                workers,
                workers,
            )


def _announce_standin(host: str, port: int) -> None:
    bar = "=" * 78
    lines = [
        bar,
        "DEMO MODE: METRONOME_BASE_URL is not set, so every answer comes from the EMBEDDED",
        "STAND-IN of the billing API (seeded demo data), NOT from Metronome.",
        f"  demo customerId: {standin.DEMO_CUSTOMER_ID}",
        f"  demo contractId: {standin.DEMO_CONTRACT_ID}",
        f"  GraphiQL:        http://{host}:{port}/graphql",
        "Set METRONOME_BASE_URL (and METRONOME_BEARER_TOKEN) to serve real data.",
        bar,
    ]
    # Printed as is (not as a JSON log line) so that a person sees it.
    print("\n".join(lines), file=sys.stderr, flush=True)
    logging.getLogger("gateway").warning(
        "serving the EMBEDDED STAND-IN of the billing API (demo data); "
        "demo customerId %s, contractId %s",
        standin.DEMO_CUSTOMER_ID,
        standin.DEMO_CONTRACT_ID,
    )


def _export_schema(path: Path, *, check: bool, client: bool, auth_directives: bool) -> int:
    from gateway.schema import build_schema, print_client_sdl, print_sdl

    # The limits shape no SDL: the defaults, whatever the environment says (nor does it
    # decide the directives: the flag does, so that the committed files never depend on it).
    schema = build_schema(
        Settings.model_construct().query_limits(), auth_directives=auth_directives
    )
    sdl = print_client_sdl(schema) if client else print_sdl(schema)
    if check:
        current = path.read_text() if path.exists() else ""
        if current != sdl:
            command = " ".join(
                ["gateway export-schema"]
                + (["--client"] if client else [])
                + (["--auth-directives"] if auth_directives else [])
            )
            print(
                f"{path} is out of date with the code; run `{command}` and commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"{path} matches the code.")
        return 0
    path.write_text(sdl)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

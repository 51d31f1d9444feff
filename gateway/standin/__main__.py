"""Serve the stand-in over HTTP: ``python -m gateway.standin --host 127.0.0.1 --port 9100``."""

from __future__ import annotations

import argparse

import uvicorn

from gateway.standin.app import (
    CREDIT_TYPES_PATH,
    CUSTOMER_BALANCES_PATH,
    SEAT_BALANCES_PATH,
    create_standin_app,
)
from gateway.standin.data import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    build_dataset,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.standin",
        description="Serve the billing API stand-in (List seat balances) over seeded demo data.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the demo data")
    args = parser.parse_args(argv)

    app = create_standin_app(build_dataset(args.seed))
    base = f"http://{args.host}:{args.port}"
    print(f"Billing API stand-in: POST {base}{SEAT_BALANCES_PATH}")
    print(f"                      POST {base}{CUSTOMER_BALANCES_PATH}")
    print(f"                      GET  {base}{CREDIT_TYPES_PATH}")
    print(
        f"  demo:  token={DEMO_TOKEN} customer_id={DEMO_CUSTOMER_ID} contract_id={DEMO_CONTRACT_ID}"
    )
    print(
        f"  other: token={OTHER_TOKEN} customer_id={OTHER_CUSTOMER_ID} "
        f"contract_id={OTHER_CONTRACT_ID}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

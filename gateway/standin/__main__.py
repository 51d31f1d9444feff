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
    parser.add_argument(
        "--callers",
        type=int,
        default=1,
        help="demo callers: N-1 more tokens (demo-token-2 .. demo-token-N) that see the demo "
        "customer, as many callers' traffic is (bench/run.py --callers)",
    )
    args = parser.parse_args(argv)

    dataset = build_dataset(args.seed)
    for number in range(2, args.callers + 1):
        dataset["tokens"][f"{DEMO_TOKEN}-{number}"] = [DEMO_CUSTOMER_ID]
    app = create_standin_app(dataset)
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

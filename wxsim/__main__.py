"""``python -m wxsim``: run the simulator until interrupted.

Every option can also come from the environment (``WXSIM_*``), so scripts and CI can
configure it without building a command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from wxsim.config import (
    DEMO_APIV3_KEY,
    DEMO_APPID,
    DEMO_MCH_ID,
    DEMO_MCH_KEY,
    DEMO_SECRET,
    V3_KEY_MODES,
    Config,
)
from wxsim.server import SimHTTPServer, Simulator, make_server


def parse_args(argv: list[str] | None = None) -> tuple[Config, str]:
    config, ready_file, _ = parse_all(argv)
    return config, ready_file


def parse_all(argv: list[str] | None = None) -> tuple[Config, str, str]:
    """(config, ready file, v3 dir) from the command line and ``WXSIM_*``."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m wxsim",
        description="Local WeChat simulator: code2Session + WeChat Pay v2 and v3 + notifies, "
        "access_token, order shipping management, subscribe messages, message push.",
    )
    # String defaults go through type=, so a bad WXSIM_PORT gets a usage error, not a trace.
    parser.add_argument("--host", default=env("WXSIM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=env("WXSIM_PORT", "0"),
                        help="0 picks a free port (default)")
    parser.add_argument("--appid", default=env("WXSIM_APPID", DEMO_APPID))
    parser.add_argument("--secret", default=env("WXSIM_SECRET", DEMO_SECRET))
    parser.add_argument("--mch-id", default=env("WXSIM_MCH_ID", DEMO_MCH_ID))
    parser.add_argument("--mch-key", default=env("WXSIM_MCH_KEY", DEMO_MCH_KEY),
                        help="the 32-character API v2 key")
    parser.add_argument("--retry-scale", type=float, default=env("WXSIM_RETRY_SCALE", "1"),
                        help="multiplies the notify retry schedule and refund delay")
    parser.add_argument("--close-min-seconds", type=float,
                        default=env("WXSIM_CLOSE_MIN_SECONDS", "300"),
                        help="closeorder is refused this long after unifiedorder")
    parser.add_argument("--trade-managed", type=_flag, metavar="{1,0}",
                        default=env("WXSIM_TRADE_MANAGED", "1"),
                        help="what is_trade_managed answers (1: payments wait for shipping)")
    parser.add_argument("--token-ttl", type=int, default=env("WXSIM_TOKEN_TTL", "7200"),
                        help="seconds an access_token from stable_token lives")
    parser.add_argument("--ready-file", default=env("WXSIM_READY_FILE", ""),
                        help="write the base URL here once listening")
    v3 = parser.add_argument_group("WeChat Pay v3 (wxsim/README.md)")
    v3.add_argument("--v3-keys", choices=V3_KEY_MODES, type=_mode,
                    default=env("WXSIM_V3_KEYS", "public-key"),
                    help="what signs answers and notifies: the WeChat Pay public key "
                    "(default), platform certificates, or both (a merchant migrating)")
    v3.add_argument("--v3-dir", default=env("WXSIM_V3_DIR", ""),
                    help="write the files the shop needs here (default: a new temp dir)")
    v3.add_argument("--v3-merchant-key", default=env("WXSIM_V3_MERCHANT_KEY", ""),
                    metavar="PATH", help="the merchant's apiclient_key.pem (or its "
                    "certificate or public key); default: one is made and written out")
    v3.add_argument("--v3-merchant-serial", default=env("WXSIM_V3_MERCHANT_SERIAL", ""),
                    help="the merchant certificate's serial (hex)")
    v3.add_argument("--apiv3-key", default=env("WXSIM_APIV3_KEY", DEMO_APIV3_KEY),
                    help="the 32-character APIv3 key")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    try:
        config = Config(
            appid=args.appid, secret=args.secret, mch_id=args.mch_id, mch_key=args.mch_key,
            host=args.host, port=args.port, retry_scale=args.retry_scale,
            close_min_seconds=args.close_min_seconds, verbose=args.verbose,
            trade_managed=args.trade_managed, token_ttl=args.token_ttl,
            v3_keys=args.v3_keys, apiv3_key=args.apiv3_key,
            v3_merchant_key=args.v3_merchant_key, v3_merchant_serial=args.v3_merchant_serial,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config, args.ready_file, args.v3_dir


def _mode(value: str) -> str:
    # A type, so a bad WXSIM_V3_KEYS default is a usage error too (see _flag).
    if value not in V3_KEY_MODES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(V3_KEY_MODES)}")
    return value


def _flag(value: str) -> bool:
    # A type, not choices=: argparse checks choices against the command line only, so a bad
    # WXSIM_TRADE_MANAGED would slip through as a default.
    if value not in ("1", "0"):
        raise argparse.ArgumentTypeError("must be 1 or 0")
    return value == "1"


def _write_ready_file(path: str, base_url: str) -> None:
    # Write then rename, so a watcher never reads a half-written URL.
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(base_url + "\n", encoding="utf-8")
    partial.replace(target)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _start(argv: list[str] | None) -> tuple[SimHTTPServer, str, str]:
    config, ready_file, v3_dir = parse_all(argv)
    try:
        simulator = Simulator(config)  # reads the merchant key: its errors are usage errors
    except ValueError as exc:
        print(f"python -m wxsim: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    server = make_server(config, simulator)
    folder = v3_dir or tempfile.mkdtemp(prefix="wxsim-v3-")
    simulator.v3.write_dir(folder, config=config, mode=config.v3_keys, base_url=server.base_url)
    return server, ready_file, folder


def main(argv: list[str] | None = None) -> int:
    server, ready_file, v3_dir = _start(argv)
    signal.signal(signal.SIGTERM, _stop)
    print(f"wxsim listening on {server.base_url}", flush=True)
    # A path only: the keys stay in the files (0600 for the secret ones).
    print(f"wxsim v3 files for the shop in {v3_dir} (shop.env, wxsim-v3.json)", flush=True)
    if ready_file:
        _write_ready_file(ready_file, server.base_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

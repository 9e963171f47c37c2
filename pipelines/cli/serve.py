"""Serve the local model store with TF-Serving's gRPC and REST APIs (offline stand-in for TF-Serving;
on a cluster the real TF-Serving serves)."""

import argparse
import signal
import sys
import threading
from pathlib import Path

from components.common.errors import InputError
from pipelines.local.interrupts import EXIT_CODES

HELP = "serve the local model store with TF-Serving's APIs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-base-path", type=Path, default=Path("model_store"),
                        help="the store: <model-base-path>/<model-name>/<N>/ (default: model_store)")
    parser.add_argument("--model-name", default=None, help="serve only this model (default: every model in the store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions")
    parser.add_argument("--wait", action="store_true",
                        help="start even if the store or the model is not there yet, and serve its first version")


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGINT or SIGTERM: exit 1 when refused (one error line),
    130 or 143 when stopped by that signal."""
    from components.common.quiet_tensorflow import import_tensorflow_quietly
    from components.serving import server

    try:
        # Checked before TensorFlow is imported, which takes seconds.
        server.check_arguments(args.model_base_path, args.model_name, args.poll_seconds, args.wait)
        import_tensorflow_quietly()
        running = server.serve(args.model_base_path, args.model_name, args.host, args.grpc_port, args.rest_port,
                               args.poll_seconds, wait=args.wait)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    received: list[signal.Signals] = []

    def stop_serving(signum, _frame) -> None:
        received.append(signal.Signals(signum))
        stop.set()

    for signum in EXIT_CODES:  # before the description says "Ctrl-C stops"
        signal.signal(signum, stop_serving)
    print(server.describe(running, args.host), flush=True)
    stop.wait()
    running.stop()
    print(f"interrupted: the server stopped on {received[0].name}", file=sys.stderr, flush=True)
    return EXIT_CODES[received[0]]

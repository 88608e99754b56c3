"""`netcheck fix NODE FIX_ID [--param KEY=VALUE ...] [--dry-run] [--yes] [--config PATH]`.

Prints the plan, asks for confirmation on a terminal (`--yes` skips; no terminal and no `--yes`
refuses), then applies through `fixes.runner.FixRunner`, which verifies and rolls back on failure.
The plan and the outcome go to stdout, errors and refusals to stderr (one line each).
Exit status: 0 applied and verified (or nothing to do), 1 verification failed and rolled back (or
the fix failed), 2 refused or invalid, 3 could not plan: the cluster API or the node unreachable,
the config file or kubeconfig missing. Registered by `bot/cli.py` through `add_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from bot.catalogs import fix_registry, one_of
from bot.commands import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNCHECKED,
    EXIT_USAGE,
    UNREACHABLE,
    add_config_argument,
    build_engine,
    error_status,
    fail,
    load_config,
)
from fixes.model import Approval, Outcome
from fixes.runner import FixRunner
from probes.api import EngineAPI
from probes.errors import InvalidInput, NetcheckError
from probes.transports.commands import param_key, shown

if TYPE_CHECKING:
    from bot.config import Config

EXIT_ROLLED_BACK, EXIT_REFUSED = EXIT_PROBLEM, EXIT_USAGE
_EXIT = {
    Outcome.APPLIED: EXIT_OK,
    Outcome.NOTHING_TO_DO: EXIT_OK,
    Outcome.ROLLED_BACK: EXIT_ROLLED_BACK,
    Outcome.FAILED: EXIT_ROLLED_BACK,
    Outcome.REFUSED: EXIT_REFUSED,
    Outcome.BUSY: EXIT_REFUSED,
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fix", help="plan, confirm, apply and verify a fix on a node (rolled back if it does not verify)"
    )
    parser.add_argument("node", help="node name")
    parser.add_argument("fix_id", metavar="FIX_ID", help=one_of(fix_registry().ids()))
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a fix parameter, e.g. --param mtu=1400 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


def parse_params(pairs: list[str]) -> dict[str, str | int]:
    """KEY=VALUE pairs; a key given twice is an error (never "the last one wins"). Values are
    validated by the fix itself, in `plan`."""
    params: dict[str, str | int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"invalid --param {shown(pair)}: expected KEY=VALUE")
        param_key(key)
        if key in params:
            raise InvalidInput(f"--param {key} given twice; give each parameter once")
        params[key] = value
    return params


def local_approver() -> str:
    """The CLI's approver: the local user at this host (who typed yes, or --yes)."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


async def execute(
    args: argparse.Namespace, engine: EngineAPI, *, stdin: TextIO, stdout: TextIO,
    stderr: TextIO | None = None, runner: FixRunner | None = None,
) -> int:
    """The command, given an engine (tests pass a fake one) and the runner over it (default: plain)."""
    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    def error(text: str) -> None:
        print(f"netcheck fix: {text}", file=stderr or sys.stderr, flush=True)

    async def progress(line: str) -> None:  # how the fix advances, e.g. "calico-node 2/3 updated"
        say(f"  … {line}")

    runner = runner or FixRunner(engine)
    try:
        params = parse_params(args.param)
        plan = await runner.plan(args.node, args.fix_id, params)
    except InvalidInput as exc:
        error(str(exc))
        return EXIT_REFUSED
    except UNREACHABLE as exc:
        error(f"cannot plan {args.fix_id} on {args.node}: {exc}")
        return EXIT_UNCHECKED
    except NetcheckError as exc:
        error(f"cannot plan {args.fix_id} on {args.node}: {exc}")
        return EXIT_ROLLED_BACK
    say(plan.render())
    if args.dry_run:
        say("\n--dry-run: nothing was changed.")
        return EXIT_OK
    if not args.yes:
        if not stdin.isatty():
            error("refusing to apply without confirmation: no terminal; pass --yes to approve.")
            return EXIT_REFUSED
        print("\nApply this change? [y/N] ", end="", file=stdout, flush=True)
        answer = await asyncio.to_thread(stdin.readline)
        if answer.strip().lower() not in ("y", "yes"):
            say("Not applied.")
            return EXIT_REFUSED
    who = local_approver()
    approval = Approval(approver=who, approved_at=datetime.now(UTC), requested_by=who)
    say("")
    result = await runner.apply(args.node, args.fix_id, params, approval, progress=progress)
    say(f"\n{result.outcome.value}: {result.message}")
    for finding in result.verification:
        say(f"  {finding.probe:<14} {finding.status.value:<5} {finding.summary}")
    return _EXIT[result.outcome]


async def _main(args: argparse.Namespace, config: Config) -> int:
    from bot import wiring

    engine = build_engine(args, config)
    try:
        runner = wiring.build_fix_runner(config, engine)  # with the node's fix Lease, as the bot's
        return await execute(args, engine, stdin=sys.stdin, stdout=sys.stdout, runner=runner)
    finally:
        await engine.aclose()


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args, load_config(args)))
    except NetcheckError as exc:
        return fail("fix", str(exc), error_status(exc))

"""The ``advx`` command line.

Each subcommand lives in its own module of this package and exposes a click
command named ``command``; :data:`SUBCOMMANDS` lists them. Errors print one line
and exit 1 (failure) or 2 (bad usage); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

#: subcommand name -> module under advx.cli defining ``command``
SUBCOMMANDS = {
    "demo": "demo",
    "attack": "attack",
    "train": "train",
    "evaluate": "evaluate",
    "transfer": "transfer",
    "certify": "certify",
    "text": "text",
    "audio": "audio",
    "attacks": "attacks",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, mod in SUBCOMMANDS.items() if self._load(mod) is not None]

    def get_command(self, ctx, name):
        mod = SUBCOMMANDS.get(name)
        return None if mod is None else self._load(mod)

    @staticmethod
    def _load(mod: str):
        try:
            module = importlib.import_module(f"advx.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name == f"advx.cli.{mod}":
                return None  # not built yet
            raise
        return module.command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="advx")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """advx: craft adversarial examples, defend models, measure robustness honestly.

    \b
    Example:
      advx demo
      advx attack --model fmnist-cnn --data fashion-mnist --attack pgd --threat linf:0.1 --n 1000 --out runs/x
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI with clean one-line errors and exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    from advx.jobs.config import set_argv  # noqa: PLC0415

    set_argv(["advx", *args])  # results.json records the exact command line
    try:
        cli.main(args=args, prog_name="advx", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("advx: interrupted", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2 if isinstance(e, click.UsageError) else 1
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        if debug:
            raise
        click.echo(f"advx: error: {e}", err=True)
        return 2 if isinstance(e, (ValueError, TypeError)) else 1
    except Exception as e:  # noqa: BLE001 -- the CLI's last line of defence
        if debug:
            raise
        click.echo(f"advx: failed: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    finally:
        set_argv(None)
    return 0

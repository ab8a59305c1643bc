"""What every command shares: option types that Typer validates before anything loads, and the rule
that a user's mistake is one clear line with exit 2 (a traceback only for real bugs, or with --debug)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import typer

from llm2vec_plugins.config import PoolingMode

# Literal option types: Typer lists the choices in --help and rejects others at parse time.
DtypeName = Literal["float32", "bfloat16", "float16"]
__all__ = ["DtypeName", "PoolingMode", "check_model_or_fail", "check_output_file", "fail", "user_errors"]

DEBUG_ENV = "LLM2VEC_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, cause: BaseException | None = None) -> None:
    """Stop the command: `error: message` on stderr, exit 2; with --debug, re-raise `cause` instead."""
    if cause is not None and debug_enabled():
        raise cause
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2) from cause


@contextmanager
def user_errors(what: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Turn the given exception kinds (default: a missing file, a bad value, an unreadable model)
    raised inside the block into `what: message`, exit 2."""
    try:
        yield
    except (kinds or (FileNotFoundError, ValueError, OSError)) as err:
        fail(f"{what}: {err}", err)


def check_model_or_fail(model: str, peft_model: str | None = None) -> None:
    """Refuse a model or adapter that cannot load, in a second and before any other work."""
    from llm2vec_plugins.loading import check_model

    with user_errors(f"cannot use model {model!r}"):
        check_model(model, peft_model)


def check_output_file(output: Path) -> None:
    """Refuse an output path whose folder is missing or not writable, before the work that fills it."""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        fail(f"cannot write {output}: folder {folder} does not exist (create it first)")
    if output.is_dir():
        fail(f"cannot write {output}: it is a folder; name a file")
    if not os.access(folder, os.W_OK):
        fail(f"cannot write {output}: folder {folder} is not writable")

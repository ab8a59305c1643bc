"""`llm2vec train mntp|simcse|supervised` and `llm2vec merge`: parse options, call the training backend.

The options of each stage are generated from its settings dataclass (llm2vec_plugins.training.config),
so the CLI, the Python API and JSON/YAML config files accept exactly the same names.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal, Optional

import typer

from llm2vec_plugins.training.config import PRESET_STAGE, config_fields

train_app = typer.Typer(help="Train an LLM2Vec adapter: MNTP, then SimCSE, supervised contrastive and/or distillation.",
                        no_args_is_help=True)

_REQUIRED = {"model", "data", "output_dir", "teacher"}


def _option_type(annotation) -> type:
    text = str(annotation)
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name) or f"[{name}]" in text or text == f"{name} | None":
            return kind
    return str


def _stage_command(stage: str):
    """A Typer command whose options are the stage's settings (all optional: unset = preset/file/default)."""

    def command(**options) -> None:
        from llm2vec_plugins.training import train

        preset, config_file = options.pop("preset"), options.pop("config")
        try:
            result = train(stage, preset=preset, config_file=config_file, **options)
        except (ValueError, FileNotFoundError) as err:
            raise typer.BadParameter(str(err)) from err
        loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
        typer.echo(f"{stage}: {result.global_step} steps, final loss {loss}, {result.train_seconds:.0f} s, "
                   f"peak RSS {result.peak_rss_mb:.0f} MB; adapter in {result.output_dir}")

    presets = [p for p, s in PRESET_STAGE.items() if s == stage]
    parameters = [
        inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, help=f"Paper settings: {', '.join(presets)}.")),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, help="JSON or YAML file of options (CLI flags win).")),
    ]
    for f in config_fields(stage):
        kind = _option_type(f.type)
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        help_text = f.metadata.get("help", "") + ("" if f.name in _REQUIRED else f" [default: {f.default}]")
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind],
                                            default=typer.Option(None, *decls, help=help_text, show_default=False)))
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    command.__doc__ = {
        "mntp": "Masked next-token prediction (first stage): teaches the bidirectional model to use both sides.",
        "simcse": "Unsupervised SimCSE on plain sentences (second stage, on top of an MNTP adapter).",
        "supervised": "Supervised contrastive training on E5-style JSONL (query, positive, negative(s), instruction).",
        "distill": "Distillation from a teacher encoder on plain texts (match its in-batch similarities).",
    }[stage]
    return command


for _stage in ("mntp", "simcse", "supervised", "distill"):
    train_app.command(_stage)(_stage_command(_stage))


def merge(
    model: str = typer.Option(..., help="Base model (hub id, folder, .gguf, alias) or an adapter folder whose base is merged."),
    adapter: Optional[str] = typer.Option(None, help="Adapter to merge on top (e.g. the SimCSE stage)."),
    output_dir: Path = typer.Option(..., help="Where to write the merged full model."),
    dtype: Literal["float32", "bfloat16"] = typer.Option("float32", help="Dtype of the saved weights."),
) -> None:
    """Merge LoRA adapter(s) into the base weights and save a full model folder (+ llm2vec_config.json)."""
    from llm2vec_plugins.training.merge import merge_to_full_model

    try:
        path = merge_to_full_model(model, adapter, output_dir, dtype=dtype)
    except (ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"merged model written to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command()(merge)

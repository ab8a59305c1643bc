"""`llm2vec eval`: score an encoder on local STS / retrieval benchmark files, print a table, write JSON."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from llm2vec_plugins.cli.common import DtypeName, PoolingMode, check_model_or_fail
from llm2vec_plugins.loading import DEFAULT_ENCODER

DEFAULT_TASKS = "sts-b,sts12,sts13,sts14,sts15,sts16,sick-r,cranfield"


def _parse_overrides(values: list[str], option: str) -> dict[str, str]:
    overrides = {}
    for value in values:
        task, sep, text = value.partition("=")
        if not sep or not task.strip():
            raise typer.BadParameter(f"{option} expects TASK=TEXT (TEXT may be empty), got {value!r}")
        overrides[task.strip()] = text.strip()
    return overrides


def eval_command(
    model: str = typer.Option(DEFAULT_ENCODER, help="Hub id, local folder, .gguf file or alias."),
    peft_model: str | None = typer.Option(None, help="LoRA adapter to apply on top."),
    tasks: str = typer.Option(DEFAULT_TASKS, help="Comma-separated task names, or the groups 'sts' / 'all'."),
    data_dir: Path = typer.Option(
        Path(os.environ.get("LLM2VEC_DATA_DIR", "../shared/data")),
        help="Benchmark folder holding sts/ and retrieval/ (env LLM2VEC_DATA_DIR).",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Write the full report (scores + settings) here."),
    instruction: list[str] = typer.Option(
        [], "--instruction", help="Override a task's instruction: TASK=TEXT (repeatable; TASK may be 'sts')."
    ),
    document_instruction: list[str] = typer.Option(
        [], "--document-instruction", help="Instruction for a retrieval task's documents: TASK=TEXT."
    ),
    no_instructions: bool = typer.Option(False, "--no-instructions", help="Encode every text without instruction."),
    limit: int | None = typer.Option(None, min=1, help="Keep N evenly spaced pairs / queries of each task (quick runs)."),
    bidirectional: bool = typer.Option(True, help="--no-bidirectional keeps the model's causal attention."),
    pooling_mode: PoolingMode | None = typer.Option(None, help="Default: the model's llm2vec_config.json, else mean."),
    batch_size: int = typer.Option(32, min=1),
    dtype: DtypeName = typer.Option("float32"),
    device: str | None = typer.Option(None, help="Default: CUDA when available, else CPU."),
    num_layers: int | None = typer.Option(None, min=1, help="Keep only the first N decoder layers (layer pruning)."),
) -> None:
    """Evaluate an encoder MTEB-style on local files: STS Spearman x100, retrieval nDCG@10 x100."""
    from rich.console import Console

    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.evaluation import DataFileError, UnknownTaskError, evaluate, get_tasks

    console = Console(stderr=True)
    try:
        selected = [t.name for t in get_tasks(tasks)]
        instructions = _parse_overrides(instruction, "--instruction")
        document_instructions = _parse_overrides(document_instruction, "--document-instruction")
        if no_instructions:
            instructions = {name: "" for name in selected} | instructions
        get_tasks(list(instructions) + list(document_instructions) or selected)  # typos fail before loading
    except UnknownTaskError as err:
        raise typer.BadParameter(str(err)) from err
    if not data_dir.is_dir():
        raise typer.BadParameter(f"data directory {data_dir} does not exist (it should hold sts/ and retrieval/)")
    check_model_or_fail(model, peft_model)

    console.print(f"loading {model}" + (f" + {peft_model}" if peft_model else ""))
    encoder = LLM2Vec.from_pretrained(model, peft_model, enable_bidirectional=bidirectional,
                                      pooling_mode=pooling_mode, dtype=dtype, device=device,
                                      num_layers=num_layers)

    def progress(result) -> None:
        console.print(f"  {result.task:<10} {result.score:6.2f}  ({result.num_examples} examples, {result.seconds:.0f} s)")

    try:
        report = evaluate(
            encoder, selected, data_dir, instructions=instructions, document_instructions=document_instructions,
            limit=limit, batch_size=batch_size, show_progress_bar=True, model_name=model, adapter=peft_model,
            settings={"requested_bidirectional": bidirectional}, on_result=progress,
        )
    except DataFileError as err:
        raise typer.BadParameter(str(err)) from err
    Console().print(report.to_table())
    if json_path is not None:
        report.to_json(json_path)
        console.print(f"wrote {json_path}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)

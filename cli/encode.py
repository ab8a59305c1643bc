"""`llm2vec encode`: embed the lines of a text file (or stdin) into a .npy file."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import typer

from llm2vec_plugins.cli.common import DtypeName, PoolingMode, check_model_or_fail, check_output_file, fail
from llm2vec_plugins.loading import DEFAULT_ENCODER


def read_lines(input_file: Path) -> list[str]:
    """The lines of INPUT_FILE ('-': stdin), one text each; an empty line is refused with its number,
    since every line must give the row of the same number."""
    try:
        raw = sys.stdin.read() if str(input_file) == "-" else input_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read {input_file}: {err}", err)
    lines = raw.splitlines()
    if not lines:
        fail(f"{input_file} has no line to encode")
    empty = [i for i, line in enumerate(lines, start=1) if not line]
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
        fail(f"{input_file}: line {shown} is empty; every line becomes the output row of the same number, "
             "and an empty text has no embedding (remove the empty lines)")
    return lines


def save_npy(array, output: Path) -> None:
    """Write `array` in .npy format to exactly `output` (np.save would add a .npy suffix), atomically."""
    import numpy as np

    with tempfile.NamedTemporaryFile(dir=output.parent or ".", prefix=f".{output.name}.", delete=False) as tmp:
        np.save(tmp, array)
    os.replace(tmp.name, output)


def encode(
    input_file: Path = typer.Argument(..., help="UTF-8 text file, one text per line; '-' reads stdin."),
    output: Path = typer.Option(..., "--output", "-o", help="The .npy file to write (float32, one row per line)."),
    model: str = typer.Option(DEFAULT_ENCODER, help="Hub id, local folder, .gguf file or alias."),
    peft_model: str | None = typer.Option(None, help="LoRA adapter to apply on top."),
    instruction: str = typer.Option("", help="Instruction attended to by every text (not pooled)."),
    pooling_mode: PoolingMode | None = typer.Option(None, help="Default: the model's llm2vec_config.json, else mean."),
    batch_size: int = typer.Option(32, min=1),
    dtype: DtypeName = typer.Option("float32", help="bfloat16 is faster on GPUs and CPUs with AMX."),
    device: str | None = typer.Option(None, help="Default: CUDA when available, else CPU."),
    normalize: bool = typer.Option(False, help="L2-normalize the embeddings."),
) -> None:
    """Embed each line of INPUT_FILE and save the matrix (row i = line i; whitespace-only lines are texts too)."""
    from llm2vec_plugins import LLM2Vec

    # Everything that can be wrong with the arguments fails here, before the model loads.
    check_output_file(output)
    texts = read_lines(input_file)
    check_model_or_fail(model, peft_model)
    encoder = LLM2Vec.from_pretrained(model, peft_model, pooling_mode=pooling_mode, dtype=dtype, device=device)
    sentences = [[instruction, t] for t in texts] if instruction else texts
    embeddings = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True,
                                normalize_embeddings=normalize)
    save_npy(embeddings, output)
    typer.echo(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} float32 embeddings (.npy format) to {output}")


def register(app: typer.Typer) -> None:
    app.command()(encode)

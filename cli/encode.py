"""`llm2vec encode`: embed lines of a text file (or stdin) into a .npy file."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from llm2vec_plugins.loading import DEFAULT_ENCODER


def encode(
    input_file: Path = typer.Argument(..., help="UTF-8 text file, one text per line; '-' reads stdin."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the float32 .npy matrix."),
    model: str = typer.Option(DEFAULT_ENCODER, help="Hub id, local folder, .gguf file or alias."),
    peft_model: str | None = typer.Option(None, help="LoRA adapter to apply on top."),
    instruction: str = typer.Option("", help="Instruction attended to by every text (not pooled)."),
    pooling_mode: str | None = typer.Option(None, help="mean | weighted_mean | eos_token | last_token | bos_token"),
    batch_size: int = typer.Option(32),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 (faster on CPUs with AMX / on GPUs)."),
    device: str | None = typer.Option(None),
    normalize: bool = typer.Option(False, help="L2-normalize the embeddings."),
) -> None:
    """Embed each non-empty line of INPUT_FILE and save the matrix (row i = i-th non-empty line)."""
    from llm2vec_plugins import LLM2Vec

    try:
        raw = sys.stdin.read() if str(input_file) == "-" else input_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise typer.BadParameter(f"cannot read {input_file}: {err}") from err
    texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise typer.BadParameter(f"{input_file} has no non-empty line to encode")
    encoder = LLM2Vec.from_pretrained(model, peft_model, pooling_mode=pooling_mode, dtype=dtype, device=device)
    sentences = [[instruction, t] for t in texts] if instruction else texts
    embeddings = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=True,
                                normalize_embeddings=normalize)
    import numpy as np

    np.save(output, embeddings)
    typer.echo(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {output}")


def register(app: typer.Typer) -> None:
    app.command()(encode)

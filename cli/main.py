"""The `llm2vec` command: each sub-command lives in its own module and only parses arguments."""
from __future__ import annotations

import os

import typer

from llm2vec_plugins.cli import encode, index
from llm2vec_plugins.cli.common import DEBUG_ENV
from llm2vec_plugins.cli import eval as eval_cli
from llm2vec_plugins.cli import serve as serve_cli
from llm2vec_plugins.cli import train as train_cli

app = typer.Typer(
    name="llm2vec",
    help="Turn decoder-only LLMs into text encoders (LLM2Vec): encode, train, evaluate, index into Qdrant.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show a traceback for every error, user mistakes too.")) -> None:
    """Turn decoder-only LLMs into text encoders (LLM2Vec)."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


encode.register(app)
train_cli.register(app)
eval_cli.register(app)
index.register(app)  # index + search
serve_cli.register(app)
# Sub-command modules register themselves here, one line each.


if __name__ == "__main__":
    app()

"""The encoder settings saved next to a model as `llm2vec_config.json` (same file and keys as the reference)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal, get_args

PoolingMode = Literal["mean", "weighted_mean", "eos_token", "last_token", "bos_token"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)
CONFIG_NAME = "llm2vec_config.json"


@dataclass
class LLM2VecConfig:
    """How a decoder's hidden states become one vector per text.

    Example:
        >>> cfg = LLM2VecConfig(pooling_mode="mean", max_length=512)
        >>> cfg.save("my-encoder")  # writes my-encoder/llm2vec_config.json
    """

    pooling_mode: PoolingMode = "mean"
    max_length: int = 512
    doc_max_length: int = 400
    skip_instruction: bool = True

    def __post_init__(self) -> None:
        if self.pooling_mode not in POOLING_MODES:
            raise ValueError(
                f"unknown pooling_mode {self.pooling_mode!r}; choose one of {', '.join(POOLING_MODES)}"
            )
        for name in ("max_length", "doc_max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=4) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path, **hub_kwargs) -> LLM2VecConfig | None:
        """Read `llm2vec_config.json` from a folder or hub repo; None when it has none."""
        from llm2vec_plugins.loading import repo_file

        found = repo_file(str(directory), CONFIG_NAME, **hub_kwargs)
        if found is None:
            return None
        path = Path(found)
        known = {f.name for f in fields(cls)}
        # Unknown keys are ignored so that files written by newer versions still load.
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})

"""llm2vec-plugins: any decoder-only LLM as a text encoder (LLM2Vec), for LangChain, LlamaIndex and Qdrant.

Example:
    >>> from llm2vec_plugins import LLM2Vec
    >>> model = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
    >>> model.encode(["hello world"]).shape
    (1, 576)
"""
from llm2vec_plugins.attention import BidirectionalReport, check_bidirectional, set_bidirectional
from llm2vec_plugins.config import LLM2VecConfig, PoolingMode
from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.loading import ALIASES, DEFAULT_ENCODER

__version__ = "0.1.0"
__all__ = [
    "ALIASES",
    "DEFAULT_ENCODER",
    "BidirectionalReport",
    "LLM2Vec",
    "LLM2VecConfig",
    "LLM2VecEmbeddings",
    "PoolingMode",
    "check_bidirectional",
    "set_bidirectional",
]


def __getattr__(name: str):
    # Lazy: langchain-core is an optional extra and must not be imported with the core.
    if name == "LLM2VecEmbeddings":
        from llm2vec_plugins.integrations.langchain import LLM2VecEmbeddings

        return LLM2VecEmbeddings
    raise AttributeError(f"module 'llm2vec_plugins' has no attribute {name!r}")
